#!/usr/bin/env bash
# Benchmark: concurrent streams (continuous batching) on the default model, in one run, one server
# after another (never two at once), same GGUF file, threads and total context:
#   inferd            target/release/inferd serve --parallel $SLOTS   (build first: cargo build --release)
#   llama-server      llama.cpp's own server with -np $SLOTS (LLAMA_SERVER, or built once by
#                     ../shared/tools/build-llama-server.sh into $PEERS_DIR: ~10 min on 2 cores)
#   llama-cpp-python  its OpenAI server (one request at a time), pip-installed once into a venv
#                     under target/ (compiles llama.cpp: ~10 min on 2 cores)
# For each server and level C in $STREAMS: 1 warm-up request, then REQUESTS_PER_STREAM x C
# streaming chat completions of MAX_TOKENS tokens (ignore_eos, temperature 0) from C client
# threads. Prints a markdown table (aggregate tok/s, TTFT p50/p95, TPOT p50, broken streams, peak
# RSS) and the inferd/peer ratios; see scripts/bench/batching.py for the definitions. Run it on an
# idle machine: the report flags levels during which other processes used the CPU.
#
#   scripts/bench/batching.sh
#   SERVERS=llama-server,llama-cpp-python STREAMS=1,2,4,8 BENCH_JSON=out.json scripts/bench/batching.sh
#
# Env: SERVERS (inferd,llama-server,llama-cpp-python), STREAMS (1,4,8), SLOTS (8), THREADS (all
# cores), CTX (8192, total), MAX_TOKENS (64), REQUESTS_PER_STREAM (3), GGML_NATIVE (OFF: the
# portable build the llama-cpp-2 crate makes; ON: -march=native) for both llama.cpp builds,
# LLAMA_SERVER (a llama-server binary to use instead of building one), INFERD_BIN (an inferd
# binary other than target/release/inferd, e.g. a target-cpu=native build), PEERS_DIR
# ($HOME/.cache/inferd-peers), BATCHING_VENV (target/batching-venv-native-$GGML_NATIVE),
# READY_TIMEOUT (180 s), BENCH_JSON (write the figures there as JSON).
set -euo pipefail
[ -n "${BENCH_JSON:-}" ] && BENCH_JSON="$(realpath -m "$BENCH_JSON")"
if [ -n "${LLAMA_SERVER:-}" ]; then  # resolved before the cd below
  if [[ "$LLAMA_SERVER" == */* ]]; then LLAMA_SERVER="$(realpath -m "$LLAMA_SERVER")"
  else LLAMA_SERVER="$(command -v "$LLAMA_SERVER" || echo "$LLAMA_SERVER")"; fi
fi
cd "$(dirname "$0")/../.."

SERVERS="${SERVERS:-inferd,llama-server,llama-cpp-python}"
STREAMS="${STREAMS:-1,4,8}"
SLOTS="${SLOTS:-8}"
THREADS="${THREADS:-$(nproc)}"
CTX="${CTX:-8192}"
MAX_TOKENS="${MAX_TOKENS:-64}"
REQUESTS_PER_STREAM="${REQUESTS_PER_STREAM:-3}"
GGML_NATIVE="${GGML_NATIVE:-OFF}"
PEERS_DIR="${PEERS_DIR:-$HOME/.cache/inferd-peers}"
VENV="${BATCHING_VENV:-target/batching-venv-native-$GGML_NATIVE}"
READY_TIMEOUT="${READY_TIMEOUT:-180}"
TOOLS="${INFERD_SHARED_TOOLS:-../shared/tools}"
INFERD_HOME="${INFERD_HOME:-$HOME/.cache/inferd}"
MODEL="$INFERD_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf"
BIN="${INFERD_BIN:-target/release/inferd}"
LLAMA_CPP_PYTHON="llama-cpp-python[server]==0.3.36"

die() { echo "batching.sh: $*" >&2; exit 1; }

case "$GGML_NATIVE" in ON|OFF) ;; *) die "GGML_NATIVE must be ON or OFF, not '$GGML_NATIVE'" ;; esac
IFS=',' read -r -a server_list <<<"$SERVERS"
[ "${#server_list[@]}" -gt 0 ] || die "SERVERS is empty"
for s in "${server_list[@]}"; do
  case "$s" in inferd|llama-server|llama-cpp-python) ;;
    *) die "unknown server '$s' in SERVERS (known: inferd, llama-server, llama-cpp-python)" ;; esac
done
wants() { [[ ",$SERVERS," == *",$1,"* ]]; }
[ -f "$MODEL" ] || die "no model at $MODEL: fetch it first (make model)"

# --- Everything is built before any server runs, so no build competes with a measurement. ---
if wants inferd; then
  [ -x "$BIN" ] || die "no $BIN: build first (cargo build --release)"
  help="$("$BIN" serve --help 2>&1 || true)"
  grep -q -- '--parallel' <<<"$help" \
    || die "$BIN serve has no --parallel flag yet: rebuild it, or leave inferd out of SERVERS"
fi

LLAMA_SERVER_BUILD=""
if wants llama-server; then
  if [ -n "${LLAMA_SERVER:-}" ]; then
    [ -x "$LLAMA_SERVER" ] || die "LLAMA_SERVER=$LLAMA_SERVER is not an executable"
    LLAMA_SERVER_BUILD="given by LLAMA_SERVER"
  else
    mkdir -p "$PEERS_DIR"
    log="$PEERS_DIR/build-llama-server-native-$GGML_NATIVE.log"
    if [ ! -x "$PEERS_DIR/llama-server-build-native-$GGML_NATIVE/bin/llama-server" ]; then
      echo "building llama-server with GGML_NATIVE=$GGML_NATIVE (about 10 min on 2 cores; log: $log)" >&2
    fi
    LLAMA_SERVER="$(GGML_NATIVE="$GGML_NATIVE" nice -n 19 bash "$TOOLS/build-llama-server.sh" "$PEERS_DIR" 2>"$log")" \
      || { tail -n 30 "$log" >&2; die "building llama-server failed (log: $log)"; }
    LLAMA_SERVER_BUILD="GGML_NATIVE=$GGML_NATIVE"
  fi
fi

LCP_BUILD=""
if wants llama-cpp-python; then
  if ! "$VENV/bin/python" -c "import llama_cpp.server.app" 2>/dev/null; then
    echo "installing $LLAMA_CPP_PYTHON into $VENV with GGML_NATIVE=$GGML_NATIVE (compiles llama.cpp: about 10 min on 2 cores)..." >&2
    python3 -m venv "$VENV"
    # --no-cache-dir: a wheel cached from a build with the other GGML_NATIVE would be reused.
    CMAKE_ARGS="-DGGML_NATIVE=$GGML_NATIVE" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" nice -n 19 \
      "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir "$LLAMA_CPP_PYTHON" \
      || die "installing $LLAMA_CPP_PYTHON failed"
    echo "$GGML_NATIVE" >"$VENV/ggml-native"
  fi
  LCP_BUILD="GGML_NATIVE=$(cat "$VENV/ggml-native" 2>/dev/null || echo unknown), $("$VENV/bin/python" -c 'import llama_cpp; print("llama-cpp-python", llama_cpp.__version__)')"
fi

# --- Servers, one at a time. ---
TMP="$(mktemp -d)"
SERVER_PID=""
SERVER_LOG=""
DRIVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$SERVER_PID" 2>/dev/null || true  # still there after 10 s
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
cleanup() {
  [ -z "$DRIVER_PID" ] || kill "$DRIVER_PID" 2>/dev/null || true
  stop_server
  rm -rf "$TMP"
  [ -z "${INFERD_LOG_FILE:-}" ] || rm -f "$INFERD_LOG_FILE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_ready NAME URL: polls URL until it answers 2xx while $SERVER_PID lives.
wait_ready() {
  local name="$1" url="$2" deadline=$((SECONDS + READY_TIMEOUT))
  while [ "$SECONDS" -lt "$deadline" ]; do
    curl -fs -o /dev/null "$url" 2>/dev/null && return 0
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      tail -n 30 "$SERVER_LOG" >&2
      die "$name failed to start: it exited before $url answered (log above)"
    fi
    sleep 0.2
  done
  tail -n 30 "$SERVER_LOG" >&2
  die "$name failed to start: $url did not answer within ${READY_TIMEOUT}s"
}

echo "model $MODEL; threads $THREADS; total context $CTX; slots $SLOTS; streams $STREAMS;" \
  "$REQUESTS_PER_STREAM x C requests of $MAX_TOKENS tokens per level; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
[ -z "$LLAMA_SERVER_BUILD" ] || echo "llama-server: $LLAMA_SERVER ($LLAMA_SERVER_BUILD)" >&2
[ -z "$LCP_BUILD" ] || echo "llama-cpp-python: $VENV ($LCP_BUILD)" >&2
awk '$1 > 1 { print "warning: the machine is busy (1-min load " $1 "): other work skews these figures" }' /proc/loadavg >&2
files=()
n=0
for name in "${server_list[@]}"; do
  n=$((n + 1))
  port=""
  binary=""
  build=""
  ignore_eos=()
  case "$name" in
    inferd)
      source scripts/lib/start-inferd.sh
      start_inferd "$BIN" --model "smollm2-135m=$MODEL" --threads "$THREADS" --ctx-size "$CTX" \
        --parallel "$SLOTS" || { trap cleanup EXIT; SERVER_PID="${INFERD_PID:-}"; die "inferd failed to start (log above)"; }
      trap cleanup EXIT  # start_inferd installs its own EXIT trap
      SERVER_PID="$INFERD_PID"
      url="$INFERD_BASE"
      binary="$BIN"
      build="commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown) (plus any uncommitted edits)"
      ;;
    llama-server)
      port="$(free_port)"
      SERVER_LOG="$TMP/$name.log"
      "$LLAMA_SERVER" -m "$MODEL" -t "$THREADS" -c "$CTX" -np "$SLOTS" --host 127.0.0.1 --port "$port" \
        >"$SERVER_LOG" 2>&1 &
      SERVER_PID=$!
      url="http://127.0.0.1:$port"
      wait_ready "$name" "$url/health"
      binary="$LLAMA_SERVER"
      build="$LLAMA_SERVER_BUILD"
      ;;
    llama-cpp-python)
      port="$(free_port)"
      SERVER_LOG="$TMP/$name.log"
      # --interrupt_requests False: by default it ends a running stream with [DONE] as soon as
      # another request waits, which would cut every stream short at C > 1; off, requests queue.
      # Its decode runs on whichever AnyIO worker thread is free, and its llama.cpp uses OpenMP:
      # once two threads have decoded, libgomp has more threads than cores and stops spinning,
      # so on 2 cores its speed can drop about 3x from then on (seen here: ~85 -> ~29 tok/s).
      # That is what a default install does; the figures show it as it is.
      "$VENV/bin/python" -m llama_cpp.server --model "$MODEL" --model_alias smollm2-135m \
        --n_threads "$THREADS" --n_threads_batch "$THREADS" --n_ctx "$CTX" \
        --interrupt_requests False --host 127.0.0.1 --port "$port" >"$SERVER_LOG" 2>&1 &
      SERVER_PID=$!
      url="http://127.0.0.1:$port"
      wait_ready "$name" "$url/v1/models"
      binary="$VENV/bin/python -m llama_cpp.server"
      build="$LCP_BUILD"
      # It has no ignore_eos; min_tokens = max_tokens masks EOS instead. Short answers are flagged.
      ignore_eos=(--no-ignore-eos --min-tokens)
      ;;
  esac
  echo "$name ready at $url (pid $SERVER_PID)" >&2
  python3 scripts/bench/batching.py run --name "$name" --url "$url" --pid "$SERVER_PID" \
    --out "$TMP/$n.json" --levels "$STREAMS" --requests-per-stream "$REQUESTS_PER_STREAM" \
    --max-tokens "$MAX_TOKENS" --threads "$THREADS" --ctx-size "$CTX" --slots "$SLOTS" \
    --binary "$binary" --build "$build" "${ignore_eos[@]}" &
  DRIVER_PID=$!
  wait "$DRIVER_PID" || die "the driver failed while measuring $name"
  DRIVER_PID=""
  stop_server
  files+=("$TMP/$n.json")
done

python3 scripts/bench/batching.py report "${files[@]}" --model-label "$(basename "$MODEL")" \
  ${BENCH_JSON:+--json "$BENCH_JSON"}
