#!/usr/bin/env bash
# Set up (first run) and run the whole test suite: lint, types, tests.
# Extra arguments go to pytest (e.g. scripts/test.sh -k tickets).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test

echo "==> ruff"
.venv/bin/ruff check callcenter tests bench
.venv/bin/ruff format --check callcenter tests bench
echo "==> mypy --strict callcenter"
.venv/bin/mypy
echo "==> pytest"
status=0
PYTHONASYNCIODEBUG=1 .venv/bin/pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests" >&2
fi
exit "$status"
