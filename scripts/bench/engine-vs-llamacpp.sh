#!/usr/bin/env bash
# Benchmark: inferd vs llama.cpp (llama-cpp-python) on the default model, same file, same
# thread count, greedy, single stream. Builds nothing itself: run `make bench`, which builds
# the release binary first.
# Env: THREADS (default: all cores), MAX_TOKENS (128), RUNS (5), BENCH_JSON (output file).
set -euo pipefail
cd "$(dirname "$0")/../.."

THREADS="${THREADS:-$(nproc)}"
INFERD_HOME="${INFERD_HOME:-$HOME/.cache/inferd}"
MODEL="$INFERD_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf"
VENV="${BENCH_VENV:-target/bench-venv}"
BIN="target/release/inferd"

[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "fetch the model first: make model" >&2; exit 1; }
if ! "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
  echo "installing llama-cpp-python (compiles llama.cpp: several minutes)..."
  python3 -m venv "$VENV"
  CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$VENV/bin/pip" install --quiet --disable-pip-version-check "llama-cpp-python==0.3.36"
fi

source scripts/lib/start-inferd.sh
start_inferd "$BIN" --threads "$THREADS" --ctx-size 8192 --model "smollm2-135m=$MODEL"

"$VENV/bin/python" scripts/bench/engine_vs_llamacpp.py --url "$INFERD_BASE" --model "$MODEL" \
  --threads "$THREADS" --ctx-size 8192 --max-tokens "${MAX_TOKENS:-128}" --runs "${RUNS:-5}" \
  ${BENCH_JSON:+--json "$BENCH_JSON"}
