#!/usr/bin/env bash
# Gateway overhead (issue #6): one fast stand-in OpenAI-compatible upstream (aiohttp, single
# process, no generation; fixed or per-request answers, see STANDIN_WORK) reached three ways
# with the same wrk load:
#   direct         wrk -> stand-in
#   inferd-off     wrk -> inferd --upstream (release, --telemetry off)   -> stand-in
#   inferd-local   wrk -> inferd --upstream (release, --telemetry local) -> stand-in
#   litellm        wrk -> LiteLLM proxy (model openai/standin, api_base)  -> stand-in
#   nginx          wrk -> nginx reverse proxy (1 worker process, upstream keep-alive, access
#                  log on)                                                  -> stand-in
#                  a reference, not a gateway: what one proxy hop written in C costs here
# Runs are interleaved (direct, inferd-off, inferd-local, litellm; ROUNDS times) so drift
# affects all paths alike; each has a short warm-up. Two loads: CONNECTIONS (16) connections
# on THREADS (2) wrk threads, saturating, and one connection (unloaded: the added latency of
# one request). Then a streamed request through inferd (curl -N) and streaming time to first
# chunk over TTFT_REQUESTS sequential requests per path, once as a plain client and once with
# the client acknowledging every segment at once (TCP_QUICKACK), which shows delayed-ACK/Nagle
# stalls. Each load run also records the CPU time per request of the stand-in and of the
# gateway process (/proc), a figure that other load on the machine barely changes.
#
# Everything runs on this one machine: load generator, gateways and stand-in share its cores,
# so a gateway's CPU use is taken from the stand-in and wrk too. PIN=1 pins wrk to the last
# CPU and the servers to the others (taskset), so wrk does not compete with them.
#
# Env: SECONDS_PER_RUN (15), WARMUP_SECONDS (3), ROUNDS (3), CONNECTIONS (16), THREADS (2),
#      UNLOADED_SECONDS (8; 0 skips the one-connection runs), TTFT_REQUESTS (200; 0 skips TTFT),
#      PORT_BASE (19310: stand-in, +1 inferd-off, +2 inferd-local, +3 litellm, +4 nginx), PIN (0),
#      SKIP_LITELLM (0), SKIP_NGINX (0), STANDIN_WORK (minimal: fixed answer bytes; typical: each answer built
#      and serialized per request, see gateway_standin.py), GATEWAY_VENV (target/gateway-venv), INFERD_BIN (target/release/inferd).
#      inferd's own settings pass through the environment too, e.g. INFERD_HTTP_WORKERS=1.
# Needs: a release build (CMAKE_BUILD_PARALLEL_LEVEL=2 cargo build --release --workspace);
# installs wrk and nginx (apt) and a venv with aiohttp and litellm[proxy] (pip) when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

SECONDS_PER_RUN="${SECONDS_PER_RUN:-15}"
WARMUP_SECONDS="${WARMUP_SECONDS:-3}"
ROUNDS="${ROUNDS:-3}"
CONNECTIONS="${CONNECTIONS:-16}"
THREADS="${THREADS:-2}"
UNLOADED_SECONDS="${UNLOADED_SECONDS:-8}"
TTFT_REQUESTS="${TTFT_REQUESTS:-200}"
PORT_BASE="${PORT_BASE:-19310}"
PIN="${PIN:-0}"
SKIP_LITELLM="${SKIP_LITELLM:-0}"
SKIP_NGINX="${SKIP_NGINX:-0}"
STANDIN_WORK="${STANDIN_WORK:-minimal}"
VENV="${GATEWAY_VENV:-target/gateway-venv}"
BIN="${INFERD_BIN:-target/release/inferd}"
MODEL=standin
LITELLM_KEY=sk-gateway-bench
BENCH=scripts/bench

[ -x "$BIN" ] || {
  echo "build first: CMAKE_BUILD_PARALLEL_LEVEL=2 cargo build --release --workspace" >&2
  exit 1
}

# --- dependencies: wrk (Debian), python3-venv, a venv with aiohttp and litellm[proxy] ---
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
[ "$SKIP_NGINX" = 1 ] || [ -x "$NGINX" ] || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
if ! "$VENV/bin/python" -c 'import aiohttp, litellm' >/dev/null 2>&1 || [ ! -x "$VENV/bin/litellm" ]; then
  echo "installing aiohttp and litellm[proxy] into $VENV (a few minutes)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check aiohttp 'litellm[proxy]'
fi
PY="$VENV/bin/python"

# --- CPU placement ---
ncpu="$(nproc)"
WRK_PIN=()
SRV_PIN=()
if [ "$PIN" = 1 ] && [ "$ncpu" -ge 2 ]; then
  WRK_PIN=(taskset -c "$((ncpu - 1))")
  SRV_PIN=(taskset -c "0-$((ncpu - 2))")
fi

P_STANDIN=$PORT_BASE
P_OFF=$((PORT_BASE + 1))
P_LOCAL=$((PORT_BASE + 2))
P_LITELLM=$((PORT_BASE + 3))
P_NGINX=$((PORT_BASE + 4))
for port in $P_STANDIN $P_OFF $P_LOCAL $P_LITELLM $P_NGINX; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use; set PORT_BASE to a free range" >&2
    exit 1
  fi
done

WORK="$(mktemp -d -t gateway-bench.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

CHAT_BODY="{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello.\"}],\"max_tokens\":16,\"temperature\":0}"

# wait_answers NAME PID URL [curl args...]: until a chat request to URL (a /v1 base) gets 200.
wait_answers() {
  local name="$1" pid="$2" url="$3"
  shift 3
  local started=$SECONDS
  while true; do
    if curl -fsS -o /dev/null --max-time 10 -H 'Content-Type: application/json' "$@" \
      -d "$CHAT_BODY" "$url/chat/completions" 2>/dev/null; then
      echo "$name answers at $url (after $((SECONDS - started)) s)"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name exited before it answered; its log:" >&2
      tail -n 40 "$WORK/$name.log" >&2
      exit 1
    fi
    if [ $((SECONDS - started)) -ge 300 ]; then
      echo "$name did not answer within 300 s; its log:" >&2
      tail -n 40 "$WORK/$name.log" >&2
      exit 1
    fi
    sleep 0.5
  done
}

# cpu_us PID...: CPU time (user+system, microseconds) used so far by these processes and
# their descendants (all threads).
CLK_TCK="$(getconf CLK_TCK)"
tree_pids() {
  local pid
  for pid in "$@"; do
    echo "$pid"
    # shellcheck disable=SC2046
    tree_pids $(pgrep -P "$pid" || true)
  done
}
cpu_us() {
  local ticks=0 pid t
  for pid in $(tree_pids "$@"); do
    t="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}')" || t=0
    ticks=$((ticks + ${t:-0}))
  done
  echo $((ticks * 1000000 / CLK_TCK))
}

# --- the stand-in and the three ways to reach it ---
"${SRV_PIN[@]}" "$PY" "$BENCH/gateway_standin.py" --port "$P_STANDIN" --model "$MODEL" --work "$STANDIN_WORK" >"$WORK/standin.log" 2>&1 &
pids+=($!)
pid_standin=$!
wait_answers standin $pid_standin "http://127.0.0.1:$P_STANDIN/v1"

UPSTREAM="$MODEL=http://127.0.0.1:$P_STANDIN/v1"
"${SRV_PIN[@]}" "$BIN" serve --host 127.0.0.1 --port "$P_OFF" --upstream "$UPSTREAM" --telemetry off \
  >"$WORK/inferd-off.log" 2>&1 &
pids+=($!)
pid_off=$!
"${SRV_PIN[@]}" "$BIN" serve --host 127.0.0.1 --port "$P_LOCAL" --upstream "$UPSTREAM" --telemetry local \
  >"$WORK/inferd-local.log" 2>&1 &
pids+=($!)
pid_local=$!
wait_answers inferd-off $pid_off "http://127.0.0.1:$P_OFF/v1"
wait_answers inferd-local $pid_local "http://127.0.0.1:$P_LOCAL/v1"

paths=(direct inferd-off inferd-local)
declare -A URL=(
  [direct]="http://127.0.0.1:$P_STANDIN/v1"
  [inferd-off]="http://127.0.0.1:$P_OFF/v1"
  [inferd-local]="http://127.0.0.1:$P_LOCAL/v1"
  [litellm]="http://127.0.0.1:$P_LITELLM/v1"
  [nginx]="http://127.0.0.1:$P_NGINX/v1"
)
declare -A KEY=([direct]="" [inferd-off]="" [inferd-local]="" [litellm]="$LITELLM_KEY" [nginx]="")
declare -A GW_PID=([direct]="" [inferd-off]=$pid_off [inferd-local]=$pid_local [litellm]="" [nginx]="")

if [ "$SKIP_NGINX" != 1 ]; then
  mkdir -p "$WORK/nginx"
  cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log $WORK/nginx/access.log;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  upstream standin { server 127.0.0.1:$P_STANDIN; keepalive 64; }
  server {
    listen 127.0.0.1:$P_NGINX;
    location / {
      proxy_pass http://standin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
  "${SRV_PIN[@]}" "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx.conf" -e "$WORK/nginx/error.log" \
    >"$WORK/nginx.log" 2>&1 &
  pids+=($!)
  GW_PID[nginx]=$!
  wait_answers nginx $! "${URL[nginx]}"
  paths+=(nginx)
fi

if [ "$SKIP_LITELLM" != 1 ]; then
  cat >"$WORK/litellm.yaml" <<EOF
model_list:
  - model_name: $MODEL
    litellm_params:
      model: openai/$MODEL
      api_base: http://127.0.0.1:$P_STANDIN/v1
      api_key: sk-standin
EOF
  LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_MASTER_KEY="$LITELLM_KEY" LITELLM_LOG=ERROR \
    "${SRV_PIN[@]}" "$VENV/bin/litellm" --config "$WORK/litellm.yaml" --host 127.0.0.1 --port "$P_LITELLM" \
    --num_workers 1 >"$WORK/litellm.log" 2>&1 &
  pids+=($!)
  GW_PID[litellm]=$!
  wait_answers litellm $! "${URL[litellm]}" -H "Authorization: Bearer $LITELLM_KEY"
  paths+=(litellm)
fi

echo
echo "== stand-in: --work $STANDIN_WORK"
echo "== machine: $ncpu CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
if [ ${#WRK_PIN[@]} -gt 0 ]; then
  echo "   pinned: wrk on CPU $((ncpu - 1)); stand-in, inferd and LiteLLM on CPUs 0-$((ncpu - 2))"
else
  echo "   not pinned: wrk, the gateways and the stand-in share all $ncpu CPUs"
fi
echo "   (all servers stay up for the whole run; only the one under load is busy)"
echo "   load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- streamed request through inferd ---
echo
echo "== a streamed chat request through inferd (curl -N):"
STREAM_BODY="{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello.\"}],\"max_tokens\":16,\"stream\":true,\"stream_options\":{\"include_usage\":true}}"
curl -sS -N --max-time 10 -H 'Content-Type: application/json' -d "$STREAM_BODY" \
  "${URL[inferd-local]}/chat/completions" | tee "$WORK/stream.txt" | sed 's/^/   /'
if grep -q '^data: \[DONE\]' "$WORK/stream.txt" && grep -q '"usage"' "$WORK/stream.txt" \
  && grep -q '"content":"Hello"' "$WORK/stream.txt"; then
  echo "   stream OK: content chunks, usage and [DONE]"
else
  echo "   STREAM PROBLEM: missing content, usage or [DONE] (see above)"
fi

# run_wrk PATH CONNS THREADS SECONDS OUT
run_wrk() {
  local path="$1" conns="$2" threads="$3" secs="$4" out="$5"
  GW_MODEL="$MODEL" GW_KEY="${KEY[$path]}" "${WRK_PIN[@]}" wrk -t "$threads" -c "$conns" -d "${secs}s" \
    --timeout 10s --latency -s "$BENCH/gateway_chat.lua" "${URL[$path]}/chat/completions" >"$out" 2>&1 || {
    echo "wrk failed for $path:" >&2
    cat "$out" >&2
    exit 1
  }
}

# load_rounds LABEL CONNS THREADS SECONDS
load_rounds() {
  local label="$1" conns="$2" threads="$3" secs="$4"
  echo
  echo "== $label: $conns connection(s), $threads wrk thread(s), ${secs} s per run after ${WARMUP_SECONDS} s warm-up, $ROUNDS rounds"
  for round in $(seq 1 "$ROUNDS"); do
    for path in "${paths[@]}"; do
      run_wrk "$path" "$conns" "$threads" "$WARMUP_SECONDS" "$WORK/warmup.txt"
      local out="$WORK/wrk-$label-$path-$round.txt"
      local gw_pid="${GW_PID[$path]}" s0 g0=0 s1 g1=0
      s0="$(cpu_us "$pid_standin")"
      [ -n "$gw_pid" ] && g0="$(cpu_us "$gw_pid")"
      run_wrk "$path" "$conns" "$threads" "$secs" "$out"
      s1="$(cpu_us "$pid_standin")"
      [ -n "$gw_pid" ] && g1="$(cpu_us "$gw_pid")"
      local line
      line="$(grep '^GWRESULT' "$out")"
      echo "label=$label round=$round path=$path ${line#GWRESULT } standin_cpu_us=$((s1 - s0)) gw_cpu_us=$((g1 - g0))" \
        >>"$WORK/results.txt"
      printf '   round %d %-13s %10s req/s\n' "$round" "$path" "$(awk '/^Requests\/sec/ {print $2}' "$out")"
    done
  done
}

load_rounds loaded "$CONNECTIONS" "$THREADS" "$SECONDS_PER_RUN"
if [ "$UNLOADED_SECONDS" != 0 ]; then
  load_rounds unloaded 1 1 "$UNLOADED_SECONDS"
fi

echo
echo "== wrk output of the last loaded inferd-local run:"
sed 's/^/   /' "$WORK/wrk-loaded-inferd-local-$ROUNDS.txt"

echo
"$PY" "$BENCH/gateway_report.py" "$WORK/results.txt"

# --- streaming TTFT (TTFT_REQUESTS=0 skips it) ---
if [ "$TTFT_REQUESTS" != 0 ]; then
  echo
  ttft_paths=()
  for path in "${paths[@]}"; do
    spec="$path=${URL[$path]}"
    [ -n "${KEY[$path]}" ] && spec="$spec,${KEY[$path]}"
    ttft_paths+=("$spec")
  done
  "${WRK_PIN[@]}" "$PY" "$BENCH/gateway_ttft.py" --requests "$TTFT_REQUESTS" --model "$MODEL" "${ttft_paths[@]}"
  echo
  echo "   the same with the client acknowledging every segment at once (TCP_QUICKACK), which"
  echo "   takes delayed-ACK/Nagle stalls out: the gap between the two tables is such a stall"
  "${WRK_PIN[@]}" "$PY" "$BENCH/gateway_ttft.py" --quickack --requests "$TTFT_REQUESTS" --model "$MODEL" "${ttft_paths[@]}"
fi

# --- what the gateways said ---
echo
echo "== server state after the runs"
for name in inferd-off inferd-local; do
  pid=$pid_off
  [ "$name" = inferd-local ] && pid=$pid_local
  rss="$(ps -o rss= -p "$pid" | tr -d ' ')"
  echo "   $name: RSS $((rss / 1024)) MiB; log lines: $(wc -l <"$WORK/$name.log"), WARN/ERROR: $(grep -cE 'WARN|ERROR' "$WORK/$name.log" || true)"
  grep -E 'WARN|ERROR' "$WORK/$name.log" | head -n 5 | sed 's/^/      /' || true
done
echo "   stand-in log lines: $(wc -l <"$WORK/standin.log")"
[ "$SKIP_LITELLM" != 1 ] && echo "   litellm log lines: $(wc -l <"$WORK/litellm.log"), errors: $(grep -ciE 'error|exception' "$WORK/litellm.log" || true)"
echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
