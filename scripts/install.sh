#!/usr/bin/env bash
# Create .venv and install oldphoto with everything it needs (CPU torch 2.13.0 first, so that
# nothing ever pulls a newer torch).  Idempotent.  Extra pip arguments are passed through.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[test]" "$@"
.venv/bin/python -c "import torch, dlib, cv2, skimage, snakemake; print('oldphoto environment ready: torch', torch.__version__)"
