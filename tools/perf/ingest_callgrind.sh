#!/bin/bash
# ingest_callgrind.sh - instructions per ingested message over the whole
# daemon (docs/performance.md, issue 21): omnihubd (defaults: local log,
# SQLite store, every service) under callgrind, counters zeroed once it is
# ready, N signed POST /v1/inbound from omnihub-bench (16 connections, its
# untimed read-back included), dumped 3 s after. Prints the dump's file;
# per message = its program total / N (callgrind_annotate --inclusive=yes).
# The size of the local log it left (log.db and its WAL) goes to stderr.
#
# usage: tools/perf/ingest_callgrind.sh BUILD_DIR OUT_FILE [N]
# CALLGRIND_ARGS adds options to valgrind's: "--separate-threads=yes" gives
# a dump per thread (OUT_FILE.1-01 is the main, gateway, thread).
# PRELOAD=/path/lib.so runs omnihubd alone with LD_PRELOAD set to it (an
# allocator compared, docs/performance.md); callgrind runs the program's own
# malloc, so its instructions are counted.
set -euo pipefail
B=$(cd "$1" && pwd)
OUT=$2
N=${3:-5000}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export OMNIHUB_HTTP_LISTEN=127.0.0.1:$PORT OMNIHUB_DATA_DIR=$D/data \
  OMNIHUB_AUTH_JWT_SECRET=bench-jwt-secret OMNIHUB_API_INBOUND_SECRET=bench-inbound-secret \
  OMNIHUB_LOGGING_LEVEL=warn
# shellcheck disable=SC2086 # CALLGRIND_ARGS: options, split on purpose
env ${PRELOAD:+LD_PRELOAD="$PRELOAD"} \
  valgrind --tool=callgrind --callgrind-out-file="$OUT" --dump-instr=no ${CALLGRIND_ARGS:-} \
  "$B/broker/omnihubd" \
  >"$D/log" 2>&1 &
VP=$!
for _ in $(seq 300); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 0.2
done
sleep 2
callgrind_control -z "$VP" >/dev/null
"$B/tools/omnihub-bench" ingest --url "http://127.0.0.1:$PORT" --messages "$N" --rounds 1 \
  --no-ceiling --concurrency 16 2>&1 | grep -E 'round 1:'
sleep 3
callgrind_control -d "$VP" >/dev/null
sleep 1
kill "$VP"
wait "$VP" || true
echo "log.db: $(cat "$D"/data/log.db* | wc -c) bytes" >&2
echo "$OUT.1"
