#!/usr/bin/env python3
"""Writes a random-weight GPT-2-small-shaped HF directory for benchmarks (no download needed).

    $PY reference/make_gpt2_bench_model.py --out DIR --bpe BPE_DIR [--seed 0]

12 layers, n_embd 768, 12 heads, 1024 positions, the real 50257-token BPE vocabulary
(copied from BPE_DIR). Weights are HF's own random init (speed does not depend on values).
"""
import argparse
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--bpe", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    model = GPT2LMHeadModel(GPT2Config()).eval()
    a.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(a.out, safe_serialization=True)
    for f in ("vocab.json", "merges.txt"):
        shutil.copy(a.bpe / f, a.out / f)
    print(a.out)


if __name__ == "__main__":
    main()
