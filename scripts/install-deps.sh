#!/usr/bin/env bash
# Installs the system packages the build needs: llama.cpp is compiled from source by the
# llama-cpp-2 crate (cmake, a C++ compiler, libclang for bindgen); the tests lint /metrics with
# promtool and scrape inferd with Prometheus (Debian's prometheus package) and drive the trace
# viewer in Chromium (chromium, chromium-driver) and run the shared job store against a Redis of
# their own (redis-server). Debian/Ubuntu only.
set -euo pipefail

missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v clang >/dev/null 2>&1 || missing+=(clang)
dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
command -v curl >/dev/null 2>&1 || missing+=(curl)
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
# promtool lints /metrics in the tests; Prometheus itself scrapes a live inferd (tests/deploy.rs).
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# The trace viewer's test drives /debug in headless Chromium (tests/viewer.rs).
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
# The shared job store's tests start their own Redis (tests/batches_redis.rs).
[ -x /usr/bin/redis-server ] || missing+=(redis-server)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing build dependencies: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
