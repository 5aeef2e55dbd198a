#!/usr/bin/env bash
# Interactive time to first token with and without a large batch running (#24): one release
# inferd; rounds alternate "interactive load alone" and "the same load while a batch of long
# lines runs", and the figures of both are printed side by side with their ratio, plus the
# batch lines finished while the interactive load ran.
# Env: INFERD_BIN (target/release/inferd), PARALLEL (4), THREADS (2), CLIENTS (2), REQUESTS (12 per phase), ROUNDS (3),
#      BATCH_LINES (200), BATCH_MAX_TOKENS (64), MAX_TOKENS (32, interactive),
#      BATCH_CONCURRENCY (1: --batch-concurrency), BATCH_PREFILL_CHUNK (32).
set -euo pipefail
cd "$(dirname "$0")/../.."

INFERD_HOME="${INFERD_HOME:-$HOME/.cache/inferd}"
MODEL="$INFERD_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf"
BIN="${INFERD_BIN:-target/release/inferd}"
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
JOBS="$(mktemp -d)"

source scripts/lib/start-inferd.sh
start_inferd "$BIN" --threads "${THREADS:-2}" --parallel "${PARALLEL:-4}" \
  --model "smollm2-135m=$MODEL" --telemetry off --jobs-dir "$JOBS" \
  --batch-concurrency "${BATCH_CONCURRENCY:-1}" --batch-prefill-chunk "${BATCH_PREFILL_CHUNK:-32}"
trap 'kill $INFERD_PID 2>/dev/null; wait $INFERD_PID 2>/dev/null; rm -rf "$INFERD_LOG_FILE" "$JOBS"' EXIT

python3 scripts/bench/batch_interference.py --url "$INFERD_BASE" \
  --clients "${CLIENTS:-2}" --requests "${REQUESTS:-12}" --rounds "${ROUNDS:-3}" \
  --batch-lines "${BATCH_LINES:-200}" --batch-max-tokens "${BATCH_MAX_TOKENS:-64}" \
  --max-tokens "${MAX_TOKENS:-32}"
