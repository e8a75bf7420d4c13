"""Who you are: passwords, MFA, client credentials, throttling, logins."""
