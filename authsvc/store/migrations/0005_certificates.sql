-- RFC 8705: service clients that authenticate with their mTLS certificate
-- (matched by a SAN URI such as a SPIFFE ID, or by thumbprint), and sessions
-- whose tokens are bound to the certificate they were issued over.

ALTER TABLE clients ADD COLUMN tls_san_uri text;      -- e.g. spiffe://example.org/ns/prod/sa/billing
ALTER TABLE clients ADD COLUMN tls_thumbprint text;   -- base64url SHA-256 of the DER certificate
CREATE UNIQUE INDEX clients_tls_san_uri ON clients (tls_san_uri) WHERE tls_san_uri IS NOT NULL;

ALTER TABLE sessions ADD COLUMN cert_thumbprint text NOT NULL DEFAULT '';
