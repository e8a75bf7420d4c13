#!/usr/bin/env bash
# System packages the HA tests need: `ha-deps.sh pgbouncer` only what `make test`
# needs (its PgBouncer test), `ha-deps.sh` everything `make test-ha` needs:
#   pgbouncer    - Debian's 1.18, the transaction-pooling proxy authsvc must work through
#   etcd-server  - Patroni's distributed configuration store
#   patroni      - the failover manager (Debian's build, with its etcd client python3-etcd)
# Each is installed only when missing, and only when we may (root, apt-get present).
# Services the packages would start on install are not wanted: the tests start
# their own processes on free ports.
set -euo pipefail

need=()
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || need+=(pgbouncer)
if [ "${1:-all}" != pgbouncer ]; then
    command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
    command -v patroni >/dev/null 2>&1 || need+=(patroni python3-etcd)
    [ -x /usr/lib/postgresql/15/bin/pg_rewind ] || need+=(postgresql-15 postgresql-contrib)
fi

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ha-deps: missing ${need[*]} and cannot apt-get install them (need root and apt-get)" >&2
    exit 1
fi
# policy-rc.d exit 101: the packages' own services stay stopped.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1
fi
trap '[ $made_policy = 1 ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
