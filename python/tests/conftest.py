"""Paths the tests share: the repository's fixtures and the registry assets, fetched by the
`bert4rs` binary that `cargo test` / `cargo build` left in the target directory (or $BERT4RS_BIN)."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"


def _binary():
    env = os.environ.get("BERT4RS_BIN")
    if env:
        return env
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    for profile in ("release", "debug"):
        b = target / profile / "bert4rs"
        if b.is_file():
            return str(b)
    pytest.fail(f"no bert4rs binary in {target} to fetch assets with: run `cargo build` first")


def asset(name):
    out = subprocess.run([_binary(), "fetch", name], check=True, capture_output=True, text=True)
    return out.stdout.strip().split("\t")[1]


@pytest.fixture(scope="session")
def minilm():
    return asset("minilm")
