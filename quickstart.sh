#!/usr/bin/env bash
# One command on a fresh machine: install everything, then run the main job.
#   ./quickstart.sh [arguments for `brevitas demo`]
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install.sh
if .venv/bin/brevitas demo --help >/dev/null 2>&1; then
  exec .venv/bin/brevitas demo "$@"
fi
# Until the demo lands, the main job is listing the installed plugins.
exec .venv/bin/brevitas plugins
