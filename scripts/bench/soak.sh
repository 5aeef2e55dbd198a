#!/usr/bin/env bash
# Soak test (not run in CI): does inferd stay flat under long load? Starts
#   $INFERD_BIN serve --model smollm2-135m=<default model GGUF> --port $PORT --telemetry local
# (local telemetry keeps the in-process trace store and the Prometheus /metrics page), then for
# $DURATION seconds keeps $STREAMS streaming chat completions running (max_tokens 8..64; a new
# one starts as soon as one ends) plus about 2 bad requests a second (malformed JSON, wrong
# types, a new random unknown model each time, an over-long body cut short, slowloris, a client
# dropping a stream, an unknown route, a forged <|im_start|>system turn). Every $INTERVAL s it
# samples the server's RSS, open fds, threads, the series on /metrics and the page's bytes, and
# at the end judges each: FLAT when it grew less than RSS +10%, fds +16, threads +8, series +5%,
# bytes +10% from the 3rd sample (after warm-up) to the last. Exits 1 when a quantity is not
# flat, a 5xx other than 429/503 was seen, a stream failed or a bad request got a wrong answer;
# see scripts/bench/soak.py for the details. Ctrl-C stops early and still prints the summary.
# With --max-queue at its default of 64, 64 streams get some 503 `overloaded`: expected, counted
# as refused.
#
#   scripts/bench/soak.sh                                   # 10 min, 64 streams
#   DURATION=60 STREAMS=8 scripts/bench/soak.sh             # a quick look
#   DURATION=3600 SOAK_JSON=soak.json INFERD_ARGS="--parallel 8" scripts/bench/soak.sh
#
# Env: DURATION (600 s), STREAMS (64), INTERVAL (10 s), BAD_RATE (2 bad requests/s), INFERD_BIN
# (target/release/inferd; build first: cargo build --release), PORT (a free one), INFERD_ARGS
# (more serve flags, split on spaces), SOAK_ARGS (more soak.py flags, e.g. the limits:
# "--rss-pct 5 --fd-abs 8"), READY_TIMEOUT (180 s), SOAK_JSON (write the samples and verdicts
# there as JSON), SOAK_SERVER_LOG (keep the server's log there).
set -euo pipefail
[ -n "${SOAK_JSON:-}" ] && SOAK_JSON="$(realpath -m "$SOAK_JSON")"
[ -n "${SOAK_SERVER_LOG:-}" ] && SOAK_SERVER_LOG="$(realpath -m "$SOAK_SERVER_LOG")"
cd "$(dirname "$0")/../.."

DURATION="${DURATION:-600}"
STREAMS="${STREAMS:-64}"
INTERVAL="${INTERVAL:-10}"
BAD_RATE="${BAD_RATE:-2}"
READY_TIMEOUT="${READY_TIMEOUT:-180}"
INFERD_HOME="${INFERD_HOME:-$HOME/.cache/inferd}"
MODEL="$INFERD_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf"
BIN="${INFERD_BIN:-target/release/inferd}"

die() { echo "soak.sh: $*" >&2; exit 1; }

[ -f "$MODEL" ] || die "no model at $MODEL: fetch it first (make model)"
[ -x "$BIN" ] || die "no $BIN: build first (cargo build --release), or set INFERD_BIN"
read -r -a extra_args <<<"${INFERD_ARGS:-}"
read -r -a soak_args <<<"${SOAK_ARGS:-}"

TMP="$(mktemp -d)"
SERVER_LOG="$TMP/inferd.log"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$SERVER_PID" 2>/dev/null || true  # still there after 10 s
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  [ -z "${SOAK_SERVER_LOG:-}" ] || cp "$SERVER_LOG" "$SOAK_SERVER_LOG" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT="${PORT:-$(free_port)}"
URL="http://127.0.0.1:$PORT"

"$BIN" serve --host 127.0.0.1 --port "$PORT" --model "smollm2-135m=$MODEL" --telemetry local \
  "${extra_args[@]}" >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

deadline=$((SECONDS + READY_TIMEOUT))
until curl -fs -o /dev/null "$URL/ready" 2>/dev/null; do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    tail -n 30 "$SERVER_LOG" >&2
    die "inferd exited before $URL/ready answered (log above)"
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    tail -n 30 "$SERVER_LOG" >&2
    die "$URL/ready did not answer within ${READY_TIMEOUT}s"
  fi
  sleep 0.2
done
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "inferd ready at $URL (pid $SERVER_PID; $BIN, commit $commit plus any uncommitted edits;" \
  "${INFERD_ARGS:-no extra args}); load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# In the foreground, so Ctrl-C reaches it and it still prints its summary.
rc=0
python3 scripts/bench/soak.py --url "$URL" --pid "$SERVER_PID" --duration "$DURATION" \
  --streams "$STREAMS" --interval "$INTERVAL" --bad-rate "$BAD_RATE" --server-log "$SERVER_LOG" \
  ${SOAK_JSON:+--json "$SOAK_JSON"} "${soak_args[@]}" || rc=$?
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  tail -n 30 "$SERVER_LOG" >&2
  echo "soak.sh: inferd exited during the run (log above)" >&2
  rc=1
fi
exit "$rc"
