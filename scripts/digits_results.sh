#!/usr/bin/env bash
# Reproduce the README's results table: float vs W/A-bit QAT on digits with the
# demo's default schedule (no export). Prints one Markdown row per setting.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
echo "| weights / activations | float test accuracy | quantized test accuracy |"
echo "|---|---|---|"
for wa in "8 8" "4 8" "2 2" "1 1"; do
  set -- $wa
  .venv/bin/brevitas demo --weight-bit-width "$1" --act-bit-width "$2" --exporters none --no-progress \
    --output "$out/w$1a$2" >/dev/null
  .venv/bin/python - "$out/w$1a$2/summary.json" "$1" "$2" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"| {sys.argv[2]} / {sys.argv[3]} | {s['float_accuracy']:.2f}% | {s['quant_accuracy']:.2f}% |")
PY
done
