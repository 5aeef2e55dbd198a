#!/usr/bin/env bash
# Installs selenium (PyPI) into a venv under target/, for the trace viewer's browser test
# (tests/viewer.rs runs scripts/viewer_check.py with it against Debian's chromium and
# chromedriver, which scripts/install-deps.sh installs). Selenium Manager never runs: the check
# names /usr/bin/chromedriver itself, so nothing but PyPI is downloaded. Prints the venv's
# python; the test finds it there (or takes INFERD_TEST_SELENIUM_PYTHON). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${SELENIUM_VENV:-target/selenium-venv}"
SELENIUM_VERSION="4.51.0"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" >&2
fi
if ! "$VENV/bin/python" -c "import selenium, sys; sys.exit(selenium.__version__ != '$SELENIUM_VERSION')" 2>/dev/null; then
  echo "installing selenium==$SELENIUM_VERSION into $VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "selenium==$SELENIUM_VERSION" >&2
fi
echo "$(pwd)/$VENV/bin/python"
