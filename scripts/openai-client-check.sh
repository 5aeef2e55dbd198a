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

source scripts/lib/start-inferd.sh
# A job store of its own (files and batches of check_batches), emptied on each run.
JOBS_DIR="target/openai-check-jobs"
rm -rf "$JOBS_DIR"
start_inferd "$BIN" --threads 1 --api-key sk-openai-client-check --jobs-dir "$JOBS_DIR"
"$VENV/bin/python" scripts/openai_client_check.py "$INFERD_BASE/v1"
