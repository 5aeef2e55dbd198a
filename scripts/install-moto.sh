#!/usr/bin/env bash
# Installs moto's S3-compatible server (PyPI `moto[server]`) into a venv under target/, for the
# artifact store's S3 test (crates/artifacts/tests/s3.rs). Prints the server's path; the
# Makefile passes it to the tests as INFERD_TEST_MOTO. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${MOTO_VENV:-target/moto-venv}"
MOTO_VERSION="5.2.5"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" >&2
fi
if ! "$VENV/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  echo "installing moto[server]==$MOTO_VERSION into $VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
fi
test -x "$VENV/bin/moto_server"
echo "$(pwd)/$VENV/bin/moto_server"
