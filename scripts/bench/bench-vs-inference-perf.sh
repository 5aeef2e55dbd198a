#!/usr/bin/env bash
# `inferd bench` against inference-perf (PyPI), on the same release inferd server, the same load
# and the same prompt and output lengths (text completions, streaming, ignore_eos). Prints both
# tools' TTFT, TPOT, inter-token latency, throughput, and the CPU each load generator used
# (user + system, children included), side by side.
# Load: CONCURRENCY (1) requests in flight for REQUESTS (40) requests; or, with CONCURRENCY=0,
# a constant RATE (1/s) for DURATION (30 s). inferd serves one request at a time, so at a rate
# near its capacity queueing dominates TTFT, and inference-perf 0.7 sends its first requests in a
# burst (its per-request start times show it), which makes rate runs disagree on TTFT for that
# reason alone; the closed loop compares the measurement itself.
# Env also: INPUT_TOKENS (64), OUTPUT_TOKENS (32), THREADS (1), SHARED (../shared),
#      ROUNDS (1: each round runs both tools, order alternating).
set -euo pipefail
cd "$(dirname "$0")/../.."

INFERD_HOME="${INFERD_HOME:-$HOME/.cache/inferd}"
MODEL="$INFERD_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf"
SHARED="${SHARED:-../shared}"
VENV="${IP_VENV:-target/inference-perf-venv}"
TOKENIZER="target/smollm2-hf-tokenizer"
BIN="target/release/inferd"
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "default model missing: run scripts/fetch-default-model.sh" >&2; exit 1; }

# inference-perf needs Python >= 3.12 (pyenv has one on these machines).
if [ ! -x "$VENV/bin/inference-perf" ]; then
  PY="$(command -v python3.12 || true)"
  [ -n "$PY" ] || { echo "inference-perf needs python3.12 (pyenv: PYENV_VERSION=3.12.1)" >&2; exit 1; }
  PYENV_VERSION="${PYENV_VERSION:-3.12.1}" "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check inference-perf gguf
fi
if [ ! -f "$TOKENIZER/tokenizer.json" ]; then
  HF_HUB_OFFLINE=1 "$VENV/bin/python" "$SHARED/tools/gguf_to_hf_tokenizer.py" "$MODEL" "$TOKENIZER"
fi

source scripts/lib/start-inferd.sh
start_inferd "$BIN" --threads "${THREADS:-1}" --model "smollm2-135m=$MODEL"
# One request first, so neither tool pays for a cold start.
curl -fs "$INFERD_BASE/v1/completions" -H 'content-type: application/json' \
  -d '{"model":"smollm2-135m","prompt":"Hello","max_tokens":4}' >/dev/null

HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$VENV/bin/python" scripts/bench/bench_vs_inference_perf.py \
  --url "$INFERD_BASE" --inferd "$BIN" --inference-perf "$VENV/bin/inference-perf" \
  --tokenizer "$TOKENIZER" --rate "${RATE:-1}" --duration "${DURATION:-30}" \
  --concurrency "${CONCURRENCY:-1}" --requests "${REQUESTS:-40}" \
  --input-tokens "${INPUT_TOKENS:-64}" --output-tokens "${OUTPUT_TOKENS:-32}" \
  --rounds "${ROUNDS:-1}" --work "target/bench-vs-inference-perf"
