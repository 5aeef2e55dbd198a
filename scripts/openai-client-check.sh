#!/usr/bin/env bash
# Starts inferd on a free 127.0.0.1 port with the default model and runs the official
# `openai` Python client against it (scripts/openai_client_check.py).
# Usage: scripts/openai-client-check.sh [PATH_TO_INFERD_BINARY]   (default: target/debug/inferd)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${1:-target/debug/inferd}"
VENV="${OPENAI_CHECK_VENV:-target/openai-venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check "openai>=1.40,<3"

log="$(mktemp)"
"$BIN" serve --host 127.0.0.1 --port 0 --threads 1 >/dev/null 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT

base=""
for _ in $(seq 1 600); do
  base="$(grep -o 'listening on http://[0-9.:]*' "$log" | head -n1 | sed 's/listening on //')" || true
  if [ -n "$base" ] && curl -fs "$base/ready" >/dev/null 2>&1; then break; fi
  if ! kill -0 $pid 2>/dev/null; then cat "$log" >&2; echo "inferd exited" >&2; exit 1; fi
  sleep 0.1
done
if [ -z "$base" ]; then cat "$log" >&2; echo "inferd did not start" >&2; exit 1; fi
"$VENV/bin/python" scripts/openai_client_check.py "$base/v1"
