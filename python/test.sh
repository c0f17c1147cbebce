#!/usr/bin/env bash
# The Python package's tests: a venv (target/pyvenv) with maturin, numpy, pytest and
# safetensors from PyPI, `pip install ./python` (maturin builds the abi3 wheel in release
# mode), then pytest. The assets come through the bert4rs binary `cargo test` built, which
# also serves the HTTP client tests; Ray Data (with pyarrow) runs examples/ray_embed.py and
# huggingface_hub is text-embeddings-inference's client.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/pyvenv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check maturin numpy pytest safetensors \
  "ray[data]" pyarrow huggingface_hub
"$venv/bin/pip" install -q --disable-pip-version-check ./python
"$venv/bin/python" -m pytest -q python/tests "$@"
