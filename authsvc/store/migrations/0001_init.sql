-- authsvc schema, version 1. Never edit once on main: add a new numbered file.
-- Every time column is written by the application from its clock, so that tests
-- can move time; now() appears nowhere.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    username      text NOT NULL UNIQUE,
    password_hash text NOT NULL,               -- argon2id, PHC string
    scopes        text[] NOT NULL DEFAULT '{}', -- scopes this user may be granted
    audiences     text[] NOT NULL DEFAULT '{}', -- audiences beyond authsvc's own
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL
);

CREATE TABLE totp_enrolments (
    user_id        uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    kek_id         text NOT NULL,               -- which key-encryption key sealed the secret
    secret_sealed  bytea NOT NULL,              -- AES-256-GCM(nonce || ciphertext)
    confirmed_at   timestamptz,
    last_used_step bigint NOT NULL DEFAULT -1,  -- a TOTP time step is accepted once only
    created_at     timestamptz NOT NULL
);

CREATE TABLE recovery_codes (
    user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash bytea NOT NULL,                   -- SHA-256 of an 80-bit random code
    used_at   timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE clients (
    id          text PRIMARY KEY,               -- client_id
    name        text NOT NULL UNIQUE,
    secret_hash bytea NOT NULL,                 -- SHA-256 of a 256-bit random secret
    scopes      text[] NOT NULL DEFAULT '{}',
    audiences   text[] NOT NULL DEFAULT '{}',
    disabled    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL
);

CREATE TABLE signing_keys (
    kid            text PRIMARY KEY,
    alg            text NOT NULL,
    state          text NOT NULL CHECK (state IN ('next', 'active', 'retired', 'revoked')),
    public_jwk     text NOT NULL,
    kek_id         text NOT NULL,
    private_sealed bytea NOT NULL,              -- PKCS#8 DER under the KEK
    created_at     timestamptz NOT NULL,
    activated_at   timestamptz,
    retired_at     timestamptz
);
-- At most one signing key: replicas racing to create the first key cannot both win.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true)) WHERE state = 'active';

CREATE TABLE sessions (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    subject         text NOT NULL,
    audiences       text[] NOT NULL,
    scopes          text[] NOT NULL,
    amr             text[] NOT NULL,
    acr             text NOT NULL,
    auth_time       timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,       -- absolute lifetime
    last_refresh_at timestamptz,
    refresh_count   integer NOT NULL DEFAULT 0,
    peer            text NOT NULL DEFAULT '',
    user_agent      text NOT NULL DEFAULT '',
    revoked_at      timestamptz
);
CREATE INDEX sessions_subject ON sessions (subject) WHERE revoked_at IS NULL;

CREATE TABLE refresh_tokens (
    id          text PRIMARY KEY,               -- the public half of "<id>.<secret>"
    session_id  uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    secret_hash bytea NOT NULL,                 -- SHA-256 of the 256-bit secret half
    scopes      text[] NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,           -- idle timeout
    used_at     timestamptz,
    replaced_by text
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Append-only; seq is the cursor of the in-memory caches and of WatchRevocations.
CREATE TABLE revocations (
    seq        bigserial PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('jti', 'session', 'subject')),
    value      text NOT NULL,
    revoked_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL             -- after this no token it covers can be live
);
CREATE INDEX revocations_expires ON revocations (expires_at);

CREATE TABLE mfa_challenges (
    id_hash      bytea PRIMARY KEY,             -- SHA-256 of the challenge id
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    audiences    text[] NOT NULL,
    scopes       text[] NOT NULL,
    auth_time    timestamptz NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    attempts     integer NOT NULL DEFAULT 0,
    consumed_at  timestamptz
);

CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL,
    event      text NOT NULL,
    subject    text NOT NULL DEFAULT '',
    session_id uuid,
    peer       text NOT NULL DEFAULT '',
    detail     text NOT NULL DEFAULT ''         -- never a secret
);
CREATE INDEX audit_log_subject ON audit_log (subject, at);
