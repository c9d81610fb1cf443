#!/bin/bash
# resume_callgrind.sh - instructions per WebSocket resume over the whole
# daemon (docs/performance.md, issue 21): omnihubd (local log, SQLite store,
# triage off so the conversation holds exactly K events) under callgrind;
# omnihub-bench fills one conversation with K messages, the counters are
# zeroed, then N fresh clients each resume it from seq 0; dumped 2 s after.
# Prints the dump's file; per resume = its program total / N
# (callgrind_annotate --inclusive=yes).
#
# usage: tools/perf/resume_callgrind.sh BUILD_DIR OUT_FILE [N] [K]
set -euo pipefail
B=$(cd "$1" && pwd)
OUT=$2
N=${3:-20}
K=${4:-1000}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export OMNIHUB_HTTP_LISTEN=127.0.0.1:$PORT OMNIHUB_DATA_DIR=$D/data \
  OMNIHUB_AUTH_JWT_SECRET=bench-jwt-secret OMNIHUB_API_INBOUND_SECRET=bench-inbound-secret \
  OMNIHUB_LOGGING_LEVEL=warn OMNIHUB_TRIAGE_ENABLED=false
valgrind --tool=callgrind --callgrind-out-file="$OUT" --dump-instr=no "$B/broker/omnihubd" \
  >"$D/log" 2>&1 &
VP=$!
for _ in $(seq 300); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 0.2
done
"$B/tools/omnihub-bench" resume --url "http://127.0.0.1:$PORT" --events "$K" --repeat 1 \
  --rounds 1 >"$D/fill" 2>&1 || true
CONV=$(sed -n 's/^  conversation \([^ ]*\) holds.*/\1/p' "$D/fill")
[ -n "$CONV" ] || { cat "$D/fill" >&2; kill "$VP"; exit 1; }
sleep 2
callgrind_control -z "$VP" >/dev/null
"$B/tools/omnihub-bench" resume --url "http://127.0.0.1:$PORT" --conversation "$CONV" \
  --events "$K" --repeat "$N" --rounds 1 2>&1 | grep -E 'resumes' >&2
sleep 2
callgrind_control -d "$VP" >/dev/null
sleep 1
kill "$VP"
wait "$VP" || true
echo "$OUT.1"
