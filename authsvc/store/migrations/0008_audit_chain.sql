-- Issue 15: the audit trail becomes a hash chain (rules: authsvc/domain/audit/chain.py).
--
-- Rows written before the chain cannot be chained after the fact without
-- vouching for what nobody checked, so they are kept apart, as they were,
-- in audit_log_unchained; the chain starts empty.
ALTER TABLE audit_log RENAME TO audit_log_unchained;
ALTER INDEX audit_log_subject RENAME TO audit_log_unchained_subject;

CREATE TABLE audit_log (
    seq        bigint PRIMARY KEY,         -- position in the chain: 1, 2, 3, ... in commit order
    prev_hash  bytea NOT NULL,             -- the previous row's hash (32 zero bytes for seq 1)
    hash       bytea NOT NULL,             -- sha256(prev_hash || int8send(seq) || sha256(canonical event))
    at         timestamptz NOT NULL,
    event      text NOT NULL,
    outcome    text NOT NULL DEFAULT '',
    actor      text NOT NULL DEFAULT '',
    subject    text NOT NULL DEFAULT '',
    client_id  text NOT NULL DEFAULT '',
    session_id uuid,
    peer       text NOT NULL DEFAULT '',
    request_id text NOT NULL DEFAULT '',
    trace_id   text NOT NULL DEFAULT '',
    detail     text NOT NULL DEFAULT ''    -- never a secret
);
CREATE INDEX audit_log_subject ON audit_log (subject, seq);
CREATE INDEX audit_log_event ON audit_log (event, seq);
CREATE INDEX audit_log_at ON audit_log (at);

-- The chain head: one row, updated by every append under its row lock
-- (UPDATE ... RETURNING inside the appending transaction), which is what
-- serialises appends from every replica into one sequence. A row lock, not
-- an advisory lock: it holds on Postgres-wire engines without them.
CREATE TABLE audit_chain (
    id        smallint PRIMARY KEY CHECK (id = 1),
    seq       bigint NOT NULL,
    prev_hash bytea NOT NULL,
    hash      bytea NOT NULL
);
INSERT INTO audit_chain VALUES (1, 0, decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'));

-- Where the chain starts after pruning: the last pruned row's seq and hash.
CREATE TABLE audit_checkpoint (
    id        smallint PRIMARY KEY CHECK (id = 1),
    seq       bigint NOT NULL,
    hash      bytea NOT NULL,
    at        timestamptz                  -- when it was last moved
);
INSERT INTO audit_checkpoint VALUES (1, 0, decode(repeat('00', 32), 'hex'), NULL);
