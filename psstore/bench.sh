#!/usr/bin/env bash
# Prints psstore and Redis side by side on the same workload (see
# psstore/internal/benchcmp): 4 clients, 2,000 random keys out of 2^20,
# sparse pull + push vs MGET / MSET. Redis is Debian's redis-server, started
# on a free loopback port when it is installed (else that side is skipped).
# In the same run: pull+push p50 while a shard joins and is drained again and
# again (partitions moving online) beside the steady p50 on that cluster —
# for one partition per shard (a fixed list's placement) with 2 copies, and
# for 2 and 4 partitions per shard (serve's default is 2) with 1 and 2 copies
# (-elastic-partitions) — and the time from kill -9 of a primary to the
# first acknowledged push on its keys.
# Extra arguments go to benchcmp, e.g. -duration 10s -shards 1,2,4.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bin="$(mktemp -d)/benchcmp"
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./psstore/internal/benchcmp
exec "$bin" "$@"
