#!/usr/bin/env python3
"""Writes a random-weight HF BertModel directory for benchmarks (no download needed).

    $PY reference/make_bench_model.py --out DIR --preset bert-base|minilm-shape --seed 0 [--vocab vocab.txt]

Weights are random (HF's own _init_weights, initializer_range 0.02) because speed does not depend
on the values; only the shape matters. The directory holds config.json, model.safetensors,
vocab.txt (30522 tokens) and tokenizer_config.json, i.e. what bert4rs and transformers load.
"""
import argparse
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import BertConfig, BertModel  # noqa: E402

PRESETS = {
    # bert-base-uncased
    "bert-base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072),
    # sentence-transformers/all-MiniLM-L6-v2
    "minilm-shape": dict(num_hidden_layers=6, hidden_size=384, num_attention_heads=12, intermediate_size=1536),
}
VOCAB_SIZE = 30522


def synthetic_vocab():
    """bert-base-uncased's layout of the specials (so ids 0/100/101/102/103 mean the same
    thing as in real checkpoints); every other line is a placeholder [unusedN]."""
    toks = [f"[unused{i}]" for i in range(VOCAB_SIZE)]
    for i, s in {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]"}.items():
        toks[i] = s
    return toks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--preset", required=True, choices=sorted(PRESETS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocab", type=Path, help="a real 30522-line vocab.txt (e.g. MiniLM's) to copy")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    cfg = BertConfig(
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=512,
        type_vocab_size=2,
        hidden_act="gelu",
        layer_norm_eps=1e-12,
        initializer_range=0.02,
        **PRESETS[args.preset],
    )
    model = BertModel(cfg).eval()
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)

    vocab_out = args.out / "vocab.txt"
    if args.vocab:
        n = len(args.vocab.read_text(encoding="utf-8").rstrip("\n").split("\n"))  # "\n" only, see make_fixtures
        if n != VOCAB_SIZE:
            raise SystemExit(f"{args.vocab} has {n} lines, expected {VOCAB_SIZE}")
        shutil.copy(args.vocab, vocab_out)
    else:
        vocab_out.write_text("".join(t + "\n" for t in synthetic_vocab()), encoding="utf-8")
    (args.out / "tokenizer_config.json").write_text(
        '{"do_lower_case": true, "tokenizer_class": "BertTokenizer", "model_max_length": 512}\n'
    )
    n_params = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out} ({args.preset}, {n_params / 1e6:.1f}M params)")


if __name__ == "__main__":
    main()
