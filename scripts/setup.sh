#!/usr/bin/env bash
# Prepare this checkout: a virtualenv with the project installed, and, for the
# tests when run as root, the Debian packages the tests need. Idempotent: a
# second run only checks and returns.
#
#   scripts/setup.sh          # runtime only (for the demo)
#   scripts/setup.sh test     # plus test tools and test peers
set -euo pipefail

cd "$(dirname "$0")/.."
mode="${1:-run}"
venv=".venv"
python="${PYTHON:-python3}"

log() { printf '==> %s\n' "$*" >&2; }

apt_install() {
    # Install the named Debian packages that are missing (root only).
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        log "missing Debian packages (install them as root): ${missing[*]}"
        return 0
    fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    log "Python 3.11 or newer is needed (found: $("$python" --version 2>&1))"
    exit 1
fi
if ! "$python" -m venv --help >/dev/null 2>&1 || ! "$python" -c 'import ensurepip' 2>/dev/null; then
    apt_install python3-venv
fi

# The server speaks its IVR prompts with espeak-ng, the demo too.
# shellcheck disable=SC2046
apt_install $(grep -v '^#' deploy/debian-packages.txt)
if [ "$mode" = test ]; then
    # shellcheck disable=SC2046
    apt_install $(grep -v '^#' deploy/debian-test-packages.txt)
    if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432 && [ "$(id -u)" -eq 0 ]; then
        log "starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
    fi
fi

if [ ! -x "$venv/bin/python" ]; then
    log "creating virtualenv $venv"
    "$python" -m venv "$venv"
fi

extras=""
[ "$mode" = test ] && extras="[test]"
stamp="$venv/.setup-stamp"
want="$(sha256sum pyproject.toml | cut -c1-16)$extras"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "installing Python packages"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q -e ".$extras"
    echo "$want" > "$stamp"
fi
