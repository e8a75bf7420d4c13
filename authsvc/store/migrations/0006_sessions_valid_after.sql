-- Revoking a user's sessions (log out everywhere, a password change, an MFA
-- reset) also refuses sessions from logins that proved themselves before it
-- but commit after it: a login racing the revoke must not survive it.
ALTER TABLE users ADD COLUMN sessions_valid_after timestamptz;
