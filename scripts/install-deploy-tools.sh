#!/usr/bin/env bash
# Installs the checkers of deploy/ into a venv under target/: kubernetes-validate (the
# Kubernetes API's JSON schemas, PyPI) for deploy/k8s, and PyYAML for the compose file and
# the collector configuration (scripts/check_deploy.py). Prints the venv's python; the test
# tests/deploy.rs calls it. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${DEPLOY_VENV:-target/deploy-venv}"
KUBERNETES_VALIDATE_VERSION="1.37.0"
PYYAML_VERSION="6.0.3"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" >&2
fi
if ! "$VENV/bin/python" - "$KUBERNETES_VALIDATE_VERSION" "$PYYAML_VERSION" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
sys.exit(version("kubernetes-validate") != sys.argv[1] or version("PyYAML") != sys.argv[2])
PY
then
  echo "installing kubernetes-validate==$KUBERNETES_VALIDATE_VERSION PyYAML==$PYYAML_VERSION into $VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "PyYAML==$PYYAML_VERSION" >&2
fi
echo "$(pwd)/$VENV/bin/python"
