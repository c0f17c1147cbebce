#!/usr/bin/env bash
# The Python package's tests: a venv (target/pyvenv) with maturin, numpy, pytest and
# safetensors from PyPI, `pip install ./python` (maturin builds the abi3 wheel in release
# mode), then pytest. The assets come through the bert4rs binary `cargo test` built.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/pyvenv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check maturin numpy pytest safetensors
"$venv/bin/pip" install -q --disable-pip-version-check ./python
"$venv/bin/python" -m pytest -q python/tests "$@"
