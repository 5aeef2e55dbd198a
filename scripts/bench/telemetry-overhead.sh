#!/usr/bin/env bash
# End-to-end telemetry cost: three release inferd servers (telemetry off, local, otlp to a
# live rotel OTLP receiver), the same load against each, interleaved. Each server gets one
# compute thread so the three do not fight over cores while idle ones wait.
# Env: SECONDS_PER_RUN (20), CLIENTS (2), ROUNDS (2), INFERD_BIN (target/release/inferd).
set -euo pipefail
cd "$(dirname "$0")/../.."

INFERD_HOME="${INFERD_HOME:-$HOME/.cache/inferd}"
MODEL="$INFERD_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf"
VENV="${BENCH_VENV:-target/bench-venv}"
BIN="${INFERD_BIN:-target/release/inferd}"
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check rotel
ROTEL="$(ls "$VENV"/lib/python3*/site-packages/rotel/rotel-agent)"

grpc_port=$((20000 + RANDOM % 10000))
"$ROTEL" start --otlp-grpc-endpoint "127.0.0.1:$grpc_port" --otlp-http-endpoint "127.0.0.1:$((grpc_port + 1))" \
  --exporter blackhole >/dev/null 2>&1 &
rotel_pid=$!

source scripts/lib/start-inferd.sh
common=(--threads 1 --model "smollm2-135m=$MODEL")
start_inferd "$BIN" "${common[@]}" --telemetry off; url_off="$INFERD_BASE"; pid_off=$INFERD_PID; log_off=$INFERD_LOG_FILE
start_inferd "$BIN" "${common[@]}" --telemetry local; url_local="$INFERD_BASE"; pid_local=$INFERD_PID; log_local=$INFERD_LOG_FILE
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$grpc_port" start_inferd "$BIN" "${common[@]}" --telemetry otlp
trap 'kill $pid_off $pid_local $INFERD_PID $rotel_pid 2>/dev/null; wait 2>/dev/null; rm -f "$log_off" "$log_local" "$INFERD_LOG_FILE"' EXIT

"$VENV/bin/python" scripts/bench/telemetry_overhead.py --url-off "$url_off" --url-local "$url_local" \
  --url-otlp "$INFERD_BASE" --seconds "${SECONDS_PER_RUN:-20}" --clients "${CLIENTS:-2}" --rounds "${ROUNDS:-2}"
