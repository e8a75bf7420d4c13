-- Nested (encrypted) access tokens: authsvc's own key-agreement key, and the
-- public encryption keys services register for their audience.

CREATE TABLE encryption_keys (
    kid            text PRIMARY KEY,
    alg            text NOT NULL,
    state          text NOT NULL CHECK (state IN ('active', 'retired')),
    public_jwk     text NOT NULL,
    kek_id         text NOT NULL,
    private_sealed bytea NOT NULL,              -- PKCS#8 DER under the KEK
    created_at     timestamptz NOT NULL
);
CREATE UNIQUE INDEX encryption_keys_one_active ON encryption_keys ((true)) WHERE state = 'active';

CREATE TABLE audience_keys (
    audience   text PRIMARY KEY,
    kid        text NOT NULL,
    alg        text NOT NULL,                   -- ECDH-ES+A256KW or RSA-OAEP-256
    public_jwk text NOT NULL,
    created_at timestamptz NOT NULL
);
