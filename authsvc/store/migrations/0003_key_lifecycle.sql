-- At most one key waiting to sign: replicas racing to create it cannot both win.
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys ((true)) WHERE state = 'next';
