# Sourced by scripts that need a running server: start_inferd BIN [serve flags...] starts
# `BIN serve --host 127.0.0.1 --port 0 FLAGS`, waits until /ready answers 200, sets
# INFERD_BASE (http://127.0.0.1:PORT) and INFERD_PID, and stops the server on exit.

start_inferd() {
  local bin="$1"
  shift
  INFERD_LOG_FILE="$(mktemp)"
  "$bin" serve --host 127.0.0.1 --port 0 "$@" >/dev/null 2>"$INFERD_LOG_FILE" &
  INFERD_PID=$!
  trap 'kill $INFERD_PID 2>/dev/null; wait $INFERD_PID 2>/dev/null; rm -f "$INFERD_LOG_FILE"' EXIT
  INFERD_BASE=""
  for _ in $(seq 1 600); do
    INFERD_BASE="$(grep -o 'listening on http://[0-9.:]*' "$INFERD_LOG_FILE" | head -n1 | sed 's/listening on //')" || true
    if [ -n "$INFERD_BASE" ] && curl -fs "$INFERD_BASE/ready" >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$INFERD_PID" 2>/dev/null; then
      cat "$INFERD_LOG_FILE" >&2
      echo "inferd exited before it was ready" >&2
      return 1
    fi
    sleep 0.1
  done
  cat "$INFERD_LOG_FILE" >&2
  echo "inferd was not ready after 60 s" >&2
  return 1
}
