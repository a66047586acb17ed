#!/usr/bin/env bash
# One-shot device check, run from anywhere in the repository on a CUDA machine without internet:
#
#   1. installs the wheels of .whl/ (dependencies the machine lacks: dependencies, importlib-metadata,
#      qonnx and theirs) and the five distributions of this repository, non-editable, into $SITE;
#   2. prints python, torch, CUDA and the loaded brevitas plugins (every one must be "loaded");
#   3. runs every test that takes the `device` fixture (found by reading the test files), which
#      includes tests/integration/test_cuda.py, on cpu and cuda, with pytest-xdist.
#
# Exits non-zero when anything fails, when pytest runs past $TIMEOUT, or, with REQUIRE_CUDA=1,
# when CUDA is unavailable or no cuda test case passed. Without a GPU the cuda cases are not
# generated, so the same script is a dry run on a CPU machine:
#
#   PY=.venv/bin/python SITE=/tmp/dry-site JOBS=2 scripts/gpu_check.sh
#
# Environment (defaults in brackets):
#   PY [python3]          the Python that installs and runs the tests
#   PYTEST_PY [$PY]       another Python for the pytest part only
#   SITE [/tmp/site]      install target, put on PYTHONPATH (emptied first when under /tmp/)
#   JOBS [8]              pytest-xdist workers
#   TIMEOUT [300]         seconds allowed to pytest
#   PYTEST_ARGS [-x]      extra pytest arguments ("" runs every case instead of stopping at the first failure)
#   REQUIRE_CUDA [1 when nvidia-smi is on PATH, else 0]
#   OUT                   when set: $OUT/gpu_check.log (everything printed) and $OUT/gpu_check.xml (JUnit)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-python3}
PYTEST_PY=${PYTEST_PY:-$PY}
SITE=${SITE:-/tmp/site}
JOBS=${JOBS:-8}
TIMEOUT=${TIMEOUT:-300}
if [[ -z "${REQUIRE_CUDA:-}" ]]; then
  if command -v nvidia-smi >/dev/null 2>&1; then REQUIRE_CUDA=1; else REQUIRE_CUDA=0; fi
fi
DISTRIBUTIONS=(brevitas_core brevitas_plugins brevitas_export_onnx brevitas_export_finn brevitas_export_pyxir)

if [[ -n "${OUT:-}" ]]; then
  mkdir -p "$OUT"
  LOG=$OUT/gpu_check.log
  JUNIT=$OUT/gpu_check.xml
else
  LOG=/dev/null
  JUNIT=$(mktemp /tmp/gpu_check.XXXXXX.xml)
fi

main() {
  local start=$SECONDS
  echo "== gpu_check: $(date -u +%FT%TZ) on ${HOSTNAME:-?}; PY=$PY PYTEST_PY=$PYTEST_PY SITE=$SITE JOBS=$JOBS REQUIRE_CUDA=$REQUIRE_CUDA"
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  fi

  echo "== install into $SITE"
  if [[ "$SITE" == /tmp/?* ]]; then rm -rf "$SITE"; fi
  mkdir -p "$SITE"
  shopt -s nullglob
  local wheels=(.whl/*.whl)
  shopt -u nullglob
  if ((${#wheels[@]})); then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}"
  else
    echo "no wheels in .whl/: relying on what $PY already has"
  fi
  local dists=()
  for d in "${DISTRIBUTIONS[@]}"; do dists+=("./$d"); done
  "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "${dists[@]}"

  export PYTHONPATH=$SITE
  export PYTHONDONTWRITEBYTECODE=1
  echo "== environment"
  SITE=$SITE REQUIRE_CUDA=$REQUIRE_CUDA "$PYTEST_PY" - <<'EOF'
import os
import sys

import torch

print("python", sys.version.split()[0], "| torch", torch.__version__, "| built for CUDA", torch.version.cuda)
print("torch.cuda.is_available():", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device:", torch.cuda.get_device_name(0), "| capability", torch.cuda.get_device_capability(0))
elif os.environ["REQUIRE_CUDA"] == "1":
    sys.exit("REQUIRE_CUDA=1 but torch.cuda.is_available() is False")

import brevitas
import brevitas.export
import brevitas.plugins

site = os.path.realpath(os.environ["SITE"])
where = os.path.realpath(brevitas.__file__)
print("brevitas", brevitas.__version__, "from", where)
if not where.startswith(site + os.sep):
    sys.exit(f"brevitas was not imported from {site}")
brevitas.plugins.get_registry()
bad = []
for info in brevitas.plugins.plugin_manager().plugins.values():
    print(f"  plugin {info.name}: {info.distribution} {info.version} {info.status} {info.error or ''}")
    if info.status != "loaded":
        bad.append(info.name)
print("exporters:", ", ".join(brevitas.export.exporters()))
if bad:
    sys.exit(f"plugins not loaded: {bad}")
EOF

  echo "== tests"
  local tests=()
  mapfile -t tests < <("$PYTEST_PY" - <<'EOF'
"""Every test function (module level or in a Test class) that takes the ``device`` fixture."""
import ast
import pathlib

for path in sorted(pathlib.Path("tests").rglob("test_*.py")):
    def visit(body, prefix):
        for node in body:
            if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                visit(node.body, f"{prefix}{node.name}::")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
                a = node.args
                if any(arg.arg == "device" for arg in a.posonlyargs + a.args + a.kwonlyargs):
                    print(f"{path}::{prefix}{node.name}")

    visit(ast.parse(path.read_text(encoding="utf-8")).body, "")
EOF
  )
  if ! printf '%s\n' "${tests[@]}" | grep -q '^tests/integration/test_cuda.py::'; then
    echo "tests/integration/test_cuda.py has no device tests"
    return 1
  fi
  printf '  %s\n' "${tests[@]}"
  local rc=0
  # shellcheck disable=SC2086  # PYTEST_ARGS is split on purpose
  timeout -k 15 "$TIMEOUT" "$PYTEST_PY" -m pytest -q ${PYTEST_ARGS--x} -p no:cacheprovider -n "$JOBS" -rfEs \
    --junitxml="$JUNIT" "${tests[@]}" || rc=$?
  if ((rc == 124 || rc == 137)); then echo "pytest ran past TIMEOUT=${TIMEOUT}s"; fi

  echo "== cuda cases"
  REQUIRE_CUDA=$REQUIRE_CUDA "$PYTEST_PY" - "$JUNIT" <<'EOF' || { ((rc)) || rc=1; }
import os
import re
import sys
import xml.etree.ElementTree as ET

try:
    cases = list(ET.parse(sys.argv[1]).getroot().iter("testcase"))
except (OSError, ET.ParseError) as exc:
    sys.exit(f"no JUnit report: {exc}")
cuda = [c for c in cases if re.search(r"\[(.*-)?cuda(-.*)?\]", c.get("name", ""))]
outcome = {}
for c in cuda:
    kind = next((child.tag for child in c if child.tag in ("failure", "error", "skipped")), "passed")
    outcome.setdefault(kind, []).append(f"{c.get('classname')}::{c.get('name')}")
print(f"{len(cases)} cases, {len(cuda)} on cuda:", {k: len(v) for k, v in outcome.items()})
for kind in ("skipped", "failure", "error"):
    for name in outcome.get(kind, []):
        print(f"  cuda {kind}: {name}")
if os.environ["REQUIRE_CUDA"] == "1" and not outcome.get("passed"):
    sys.exit("REQUIRE_CUDA=1 but no cuda test case passed")
EOF
  echo "== gpu_check: pytest exit $rc, $((SECONDS - start)) s"
  return "$rc"
}

set -o pipefail
main 2>&1 | tee "$LOG"
