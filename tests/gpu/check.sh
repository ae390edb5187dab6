#!/usr/bin/env bash
# The GPU check on a lent machine (see tests/gpu/check.py and ../shared/docs/DEVICE.md): the project on
# PYTHONPATH (no install there), tomli-w from a carried wheel folder if given, results under $OUT.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -d .whl ]; then python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site; fi
# The package as pyproject.toml maps it (zoo.export <- export/, zoo.serve <- serve/, zoo.weights <- weights/),
# from links, without installing: the lent machine has no network and may lack setuptools.
site=$(mktemp -d)/src && mkdir -p "$site/zoo"
for f in zoo/*; do ln -s "$PWD/$f" "$site/zoo/"; done
for d in export serve weights; do ln -s "$PWD/$d" "$site/zoo/$d"; done
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec timeout 470 python3 tests/gpu/check.py "${OUT:-gpu-check}" "$@"
