-- A withdrawn signing key travels on the revocation log, like a revoked token:
-- every replica and every local verifier drops it the moment the entry
-- arrives, instead of on its next key-set refresh (minutes later).
ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check;
ALTER TABLE revocations ADD CONSTRAINT revocations_kind_check
    CHECK (kind IN ('jti', 'session', 'subject', 'key'));

-- When a retired key's withdrawal (its leaving the JWKS) was logged; NULL
-- until then. Revoked keys log theirs in the revoking transaction.
ALTER TABLE signing_keys ADD COLUMN withdrawn_at timestamptz;

-- An audience that accepts only nested (encrypted) tokens: Verify refuses a
-- bare signed token for it, and tokens for it are encrypted whatever
-- AUTHSVC_ENCRYPT_TOKENS says.
ALTER TABLE audience_keys ADD COLUMN require_encrypted boolean NOT NULL DEFAULT false;
