#!/usr/bin/env bash
# The watchdog's probe (issue #14, item 3): `llmpq serve --cluster` with 20 streaming requests in flight, one stage
# server stopped with SIGSTOP. Prints how long after the SIGSTOP the streams ended (and how: an error event, [DONE],
# or neither), what /health said meanwhile, and when a new request was served again.
# Usage: eng/probes/stage-freeze.sh [extra serve flags, e.g. --stage-deadline-floor-s 2]
set -euo pipefail
cd "$(dirname "$0")/../.."
LLMPQ=${LLMPQ:-src/LlmPq.Host/bin/Debug/net10.0/llmpq}
PORT=${PORT:-18431}
STREAMS=${STREAMS:-20}
WORK=$(mktemp -d)
URL="http://127.0.0.1:$PORT"
now() { date +%s.%N; }
cleanup() {
  [ -n "${STAGE:-}" ] && kill -CONT "$STAGE" 2>/dev/null || true
  [ -n "${SERVE:-}" ] && kill -TERM "$SERVE" 2>/dev/null && wait "$SERVE" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"$LLMPQ" make-model --out "$WORK/tiny.gguf" --layers 8 --embd 256 >/dev/null
"$LLMPQ" serve --model "$WORK/tiny.gguf" --cluster docs/clusters/local-cpu-3stage.json --port "$PORT" --ctx 2048 "$@" >"$WORK/serve.log" 2>&1 &
SERVE=$!
until curl -sf "$URL/health" >/dev/null; do kill -0 "$SERVE" || { cat "$WORK/serve.log"; exit 1; }; sleep 0.5; done
body() { printf '{"model":"tiny.planned","stream":%s,"max_tokens":%s,"messages":[{"role":"user","content":"%s"}]}' "$1" "$2" "$3"; }
curl -sf "$URL/v1/chat/completions" -H 'Content-Type: application/json' -d "$(body false 16 'Warm up.')" >/dev/null

PIDS=()
for i in $(seq 1 "$STREAMS"); do
  ( curl -sN "$URL/v1/chat/completions" -H 'Content-Type: application/json' -d "$(body true 1500 "Tell me story $i.")" >"$WORK/s$i" 2>/dev/null || true
    now >"$WORK/e$i" ) &
  PIDS+=($!)
done
sleep "${WARM_S:-10}" # tokens flow in every stream, and the watchdog measures their iterations

# The middle stage's server: a ggml-rpc-server child of serve (the launcher execs it, so it keeps its pid).
STAGE=$(pgrep -P "$SERVE" ggml-rpc-server | sed -n 2p)
T0=$(now)
kill -STOP "$STAGE"
echo "SIGSTOP stage server pid $STAGE"
( while :; do curl -s -o /dev/null -w '%{http_code}\n' --max-time 2 "$URL/health" >>"$WORK/health" || true; sleep 0.25; done ) &
POLL=$!
wait "${PIDS[@]}"
while :; do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 120 "$URL/v1/chat/completions" -H 'Content-Type: application/json' -d "$(body false 8 'Are you back?')" || true)
  [ "$code" = 200 ] && break
  sleep 0.2
done
OK=$(now)
kill "$POLL"

LAST=$(cat "$WORK"/e* | sort -n | tail -1)
FIRST=$(cat "$WORK"/e* | sort -n | head -1)
echo "streams: $STREAMS; ended with an error event: $(grep -l '"error"' "$WORK"/s* | wc -l); with [DONE]: $(grep -l '\[DONE\]' "$WORK"/s* | wc -l)"
grep -h -o '"message":"[^"]*' "$WORK"/s* | sort | uniq -c | head -2 | cut -c1-300
printf 'streams ended %.1f-%.1f s after SIGSTOP\n' "$(echo "$FIRST - $T0" | bc)" "$(echo "$LAST - $T0" | bc)"
printf 'a new request was served %.1f s after SIGSTOP\n' "$(echo "$OK - $T0" | bc)"
echo "/health codes seen meanwhile: $(sort "$WORK/health" | uniq -c | tr '\n' ' ')"
grep -E "\[53\]|\[116\]" "$WORK/serve.log" | cut -c1-300 || true
