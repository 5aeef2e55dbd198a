#!/usr/bin/env bash
# Installs rotel (PyPI), a real OpenTelemetry collector written in Rust, into a venv under
# target/: its wheel carries the collector binary `rotel/rotel-agent`. tests/collector.rs runs
# it as the collector of deploy/docker-compose.yaml (the official OpenTelemetry Collector is
# not on PyPI). Prints the absolute path of rotel-agent on stdout, progress on stderr.
# Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${ROTEL_VENV:-target/rotel-venv}"
ROTEL_VERSION="0.0.1a15"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" >&2
fi
if ! "$VENV/bin/python" - "$ROTEL_VERSION" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
sys.exit(version("rotel") != sys.argv[1])
PY
then
  echo "installing rotel==$ROTEL_VERSION into $VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "rotel==$ROTEL_VERSION" >&2
fi
AGENT="$("$VENV/bin/python" -c '
import os, rotel
print(os.path.join(os.path.dirname(os.path.abspath(rotel.__file__)), "rotel-agent"))
')"
if [ ! -x "$AGENT" ]; then
  echo "rotel==$ROTEL_VERSION installed, but its collector binary is missing: $AGENT" >&2
  exit 1
fi
echo "$AGENT"
