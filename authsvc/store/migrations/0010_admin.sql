-- Admin API. A rotated client secret keeps working for an overlap, so that a
-- client can be redeployed with the new one without an outage; then it stops.
ALTER TABLE clients ADD COLUMN previous_secret_hash bytea;               -- SHA-256, like secret_hash
ALTER TABLE clients ADD COLUMN previous_secret_expires_at timestamptz;   -- it stops working at this time

-- A disabled user (users.disabled) cannot open a session: checked in the same
-- statement that opens it, so a login racing the disable cannot slip through.
-- (See _LIVE_OWNER in store/_sessions.py; no schema change needed.)
