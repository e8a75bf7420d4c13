-- The audit trail in sixteen lanes, each its own gapless hash chain.
--
-- One chain head made every audited write in the cluster (each login, refresh
-- and revoke) wait for the previous one's commit, since the head's row lock
-- is held to the commit: pgbench, 16 clients, a write plus its audit row,
-- measured 534-875 tx/s with one head against 2,470-2,961 without a chain and
-- 1,922-2,510 with 32 heads. A transaction appends to its connection's lane;
-- each lane is verified on its own, as the single chain was.
ALTER TABLE audit_chain DROP CONSTRAINT audit_chain_id_check;
ALTER TABLE audit_chain ADD CONSTRAINT audit_chain_lane CHECK (id BETWEEN 1 AND 16);
INSERT INTO audit_chain
    SELECT g, 0, decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex') FROM generate_series(2, 16) g;

ALTER TABLE audit_checkpoint DROP CONSTRAINT audit_checkpoint_id_check;
ALTER TABLE audit_checkpoint ADD CONSTRAINT audit_checkpoint_lane CHECK (id BETWEEN 1 AND 16);
INSERT INTO audit_checkpoint
    SELECT g, 0, decode(repeat('00', 32), 'hex'), NULL FROM generate_series(2, 16) g;

-- seq stays the trail's order for reading and paging (from a sequence: no
-- longer gapless); (lane, lane_seq) is a row's place in its chain. The rows
-- written so far are lane 1, where they already are.
ALTER TABLE audit_log ADD COLUMN lane smallint NOT NULL DEFAULT 1;
ALTER TABLE audit_log ADD COLUMN lane_seq bigint;
UPDATE audit_log SET lane_seq = seq;
ALTER TABLE audit_log ALTER COLUMN lane_seq SET NOT NULL;
ALTER TABLE audit_log ALTER COLUMN lane DROP DEFAULT;
CREATE UNIQUE INDEX audit_log_lane ON audit_log (lane, lane_seq);
CREATE SEQUENCE audit_log_seq OWNED BY audit_log.seq;
SELECT setval('audit_log_seq', (SELECT coalesce(max(seq), 0) + 1 FROM audit_log), false);
ALTER TABLE audit_log ALTER COLUMN seq SET DEFAULT nextval('audit_log_seq');
