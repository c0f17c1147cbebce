#!/usr/bin/env bash
# The Python package's encode against sentence-transformers (bench/python_encode.py), in the
# reference venv (torch, sentence-transformers) with our wheel on the path.
#   bash bench/python_encode.sh [THREADS=2] [N=10000]
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(bash reference/setup.sh | tail -1)
cargo build -q --release --bin bert4rs
b=./target/release/bert4rs
minilm=$($b fetch minilm | cut -f2)
pol=$($b fetch polarity-en | cut -f2)
site=target/bench-python
# pip builds the wheel with maturin in an isolated build environment (the venv is untouched).
"$py" -m pip wheel -q --no-deps ./python -w target/wheels
"$py" -m pip install -q --no-deps --upgrade --target "$site" target/wheels/bert4rs-*-abi3-*.whl
PYTHONPATH="$site" "$py" bench/python_encode.py "$minilm" "$pol/sentences.csv" "${1:-2}" "${2:-10000}"
