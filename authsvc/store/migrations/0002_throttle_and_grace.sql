-- Throttle counters shared by every replica, and the refresh grace window.

CREATE TABLE throttle (
    key          text PRIMARY KEY,             -- "pwd-account:<username>", "pwd-peer:<addr>", "mfa:<user id>"
    failures     integer NOT NULL DEFAULT 0,   -- attempts reserved since the window opened
    window_start timestamptz NOT NULL,
    lockouts     integer NOT NULL DEFAULT 0,   -- each lockout doubles the next
    locked_until timestamptz
);

-- With the grace window on, the successor pair of a spent refresh token is
-- kept sealed under the KEK for a few seconds, so that a client that lost the
-- answer gets the same pair back instead of tripping reuse detection.
ALTER TABLE refresh_tokens ADD COLUMN grace_kek_id text;
ALTER TABLE refresh_tokens ADD COLUMN grace_sealed bytea;
