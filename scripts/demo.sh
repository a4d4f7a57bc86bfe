#!/usr/bin/env bash
# Set up (first run) and run the demo: SQLite, in-process state, seeded data.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh run
exec .venv/bin/callcenter demo "$@"
