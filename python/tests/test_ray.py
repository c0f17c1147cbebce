"""examples/ray_embed.py on a local Ray cluster of 2 workers over 2,000 sentences: its
Parquet rows hold every input once, with the vectors a single-process `encode` gives."""

import csv
import subprocess
import sys

import numpy as np
import pytest

import bert4rs
from conftest import ROOT, asset


def test_ray_example_writes_the_single_process_vectors(minilm, tmp_path):
    pytest.importorskip("ray")
    pq = pytest.importorskip("pyarrow.parquet")
    corpus = asset("polarity-en")
    with open(f"{corpus}/sentences.csv", encoding="utf-8-sig") as f:
        texts = [row[-1].strip() for row in csv.reader(f)][:2000]
    src = tmp_path / "texts.txt"
    src.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "ray_embed.py"), "--model", minilm,
         "--input", str(src), "--output", str(out), "--workers", "2"],
        capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    table = pq.read_table(out).sort_by("id")
    assert table.column("id").to_pylist() == list(range(len(texts))), "every row once"
    assert table.column("text").to_pylist() == texts
    got = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
    want = bert4rs.SentenceEncoder(minilm).encode(texts)
    assert got.shape == want.shape == (2000, 384)
    assert np.abs(got - want).max() < 1e-6
