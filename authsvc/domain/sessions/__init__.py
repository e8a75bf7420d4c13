"""What you hold: grants, refresh, revoke, the revocation set and its watchers, session listing."""
