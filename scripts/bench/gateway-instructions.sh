#!/usr/bin/env bash
# Gateway cost in instructions (issue #6): inferd's user-space instructions per proxied request,
# counted by valgrind's callgrind. Unlike req/s on a shared 2-core box, the count barely moves
# between runs (±0.1%), so it shows what a change to the request path saves.
#
# For each telemetry mode (off, local): start the fast stand-in upstream, start the release
# inferd under callgrind in front of it, send WARMUP requests on one keep-alive connection,
# zero the counters, send REQUESTS more, dump, and divide. Kernel time (TCP, scheduling) is not
# counted; wall time under valgrind means nothing.
#
# Env: REQUESTS (2000), WARMUP (300), MODES ("off local"), PORT_BASE (19330: stand-in, +1 inferd),
#      GATEWAY_VENV (target/gateway-venv), INFERD_BIN (target/release/inferd); inferd's own
#      settings pass through the environment (INFERD_*). KEEP_PROFILES=DIR keeps each mode's
#      callgrind profile there as DIR/callgrind.MODE.out (read it with callgrind_annotate).
# Needs: a release build, valgrind (installed with apt when missing) and the venv of
# gateway-overhead.sh (aiohttp; created when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."

REQUESTS="${REQUESTS:-2000}"
WARMUP="${WARMUP:-300}"
MODES="${MODES:-off local}"
PORT_BASE="${PORT_BASE:-19330}"
VENV="${GATEWAY_VENV:-target/gateway-venv}"
BIN="${INFERD_BIN:-target/release/inferd}"
UP_PORT="$PORT_BASE"
GW_PORT=$((PORT_BASE + 1))

[ -x "$BIN" ] || {
  echo "build first: CMAKE_BUILD_PARALLEL_LEVEL=2 cargo build --release --workspace" >&2
  exit 1
}
if ! command -v valgrind >/dev/null 2>&1 || ! command -v callgrind_control >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends valgrind curl >/dev/null
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import aiohttp' >/dev/null 2>&1 ||
  "$VENV/bin/pip" install --quiet --disable-pip-version-check aiohttp
PY="$VENV/bin/python"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# One keep-alive connection, non-stream chat, every answer checked.
cat >"$WORK/client.py" <<'PY'
import http.client, json, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", port)
body = json.dumps({"model": "standin", "max_tokens": 16,
                   "messages": [{"role": "user", "content": "Hello there"}]})
for _ in range(count):
    conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
    answer = conn.getresponse()
    answer.read()
    if answer.status != 200:
        sys.exit(f"status {answer.status}")
PY

"$PY" scripts/bench/gateway_standin.py --port "$UP_PORT" --model standin --work minimal \
  >"$WORK/standin.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$UP_PORT/v1/models" >/dev/null && break
  sleep 0.2
done

echo "inferd user-space instructions per proxied request ($REQUESTS requests, one connection)"
for mode in $MODES; do
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$mode.out" \
    "$BIN" serve --host 127.0.0.1 --port "$GW_PORT" --telemetry "$mode" \
    --upstream "standin=http://127.0.0.1:$UP_PORT/v1" >"$WORK/inferd.$mode.log" 2>&1 &
  gw=$!
  PIDS+=("$gw")
  ready=0
  for _ in $(seq 300); do
    # Ready once the upstream is healthy and its model listed (slow under valgrind).
    if curl -sf "http://127.0.0.1:$GW_PORT/ready" >/dev/null &&
      curl -sf "http://127.0.0.1:$GW_PORT/v1/models" | grep -q '"standin"'; then
      ready=1
      break
    fi
    sleep 0.3
  done
  [ "$ready" = 1 ] || { echo "inferd ($mode) did not start; see $WORK/inferd.$mode.log" >&2; exit 1; }
  "$PY" "$WORK/client.py" "$GW_PORT" "$WARMUP"
  callgrind_control -z "$gw" >/dev/null 2>&1
  "$PY" "$WORK/client.py" "$GW_PORT" "$REQUESTS"
  callgrind_control -d "$gw" >/dev/null 2>&1
  kill "$gw"
  wait "$gw" 2>/dev/null || true
  # The dump taken after the measured requests is the numbered file (.1); the unnumbered one
  # is written at exit.
  total=$(awk '/^(summary|totals):/ {print $2; exit}' "$WORK/cg.$mode.out.1")
  if [ -n "${KEEP_PROFILES:-}" ]; then
    mkdir -p "$KEEP_PROFILES"
    cp "$WORK/cg.$mode.out.1" "$KEEP_PROFILES/callgrind.$mode.out"
  fi
  awk -v t="$total" -v n="$REQUESTS" -v m="$mode" \
    'BEGIN {printf "  %-6s %8.1f k instructions\n", m, t / n / 1000}'
done
