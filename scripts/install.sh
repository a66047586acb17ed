#!/usr/bin/env bash
# Create ./.venv (if missing) and install all five distributions, editable,
# with torch==2.13.0 (CPU build) and the test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
# torch first and alone, pinned: a looser request could pull a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet "torch==2.13.0" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install --quiet -r requirements.txt 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import torch, brevitas, brevitas_plugins; assert torch.__version__.startswith('2.13.0'), torch.__version__"
