#!/usr/bin/env bash
# Creates the pinned Python reference environment (torch + transformers) used to write the
# golden fixtures and to run the side-by-side benchmarks. CI never needs it: fixtures are committed.
# Usage: bash reference/setup.sh   -> prints the venv's python path on the last line.
set -euo pipefail
cache="${BERT4RS_CACHE:-$HOME/.cache/bert4rs}"
venv="$cache/ref-venv"
stamp="$venv/.pinned-v3"
if [ ! -f "$stamp" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r "$(dirname "$0")/requirements.txt"
  touch "$stamp"
fi
echo "$venv/bin/python"
