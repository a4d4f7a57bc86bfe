#!/usr/bin/env bash
# Set up (first run) and run the whole test suite: lint, types, tests.
# Extra arguments go to pytest (e.g. scripts/test.sh -k tickets).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test

# The tests create and drop their own databases through an admin connection.
# A fresh Debian PostgreSQL refuses password-less TCP logins, so when the
# default one fails and we are root, a test role is made for it.
if [ -z "${TEST_PG_ADMIN_URL:-}" ] && command -v psql >/dev/null; then
    default="postgresql://postgres@127.0.0.1:5432/postgres"
    if ! PGCONNECT_TIMEOUT=3 psql "$default" -tAc 'SELECT 1' >/dev/null 2>&1 \
        && [ "$(id -u)" -eq 0 ] && command -v runuser >/dev/null; then
        echo "==> creating the PostgreSQL role callcenter_test for the tests"
        runuser -u postgres -- psql -q -c "DO \$\$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'callcenter_test') THEN
                CREATE ROLE callcenter_test LOGIN CREATEDB PASSWORD 'callcenter_test';
            END IF; END \$\$;"
        export TEST_PG_ADMIN_URL="postgresql://callcenter_test:callcenter_test@127.0.0.1:5432/postgres"
        export BENCH_PG_ADMIN_URL="$TEST_PG_ADMIN_URL"
    fi
fi

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
