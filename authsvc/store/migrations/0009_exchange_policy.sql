-- Token exchange (RFC 8693): the audiences a service client may exchange a
-- token it received for (a delegated access token, or a Txn-Token for the
-- trust domain). Empty, the default, means the client may exchange nothing.

ALTER TABLE clients ADD COLUMN exchange_audiences text[] NOT NULL DEFAULT '{}';
