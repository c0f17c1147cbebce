#!/usr/bin/env python3
"""PyTorch half of the training-step benchmark (bench/train.sh): forward (train mode,
dropout on) + cross-entropy on a CLS-pooled linear head + backward + AdamW (torch's default
CPU implementation), the same step examples/bench_train.rs times.

    $PY bench/torch_train_bench.py --model-dir DIR --batch 8 --seq 128 --threads 2

Prints one JSON line: median ms per step and its forward / backward / optimiser parts.
"""
import argparse
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from transformers import AutoModel  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    bert = AutoModel.from_pretrained(a.model_dir, attn_implementation="eager")
    head = torch.nn.Linear(bert.config.hidden_size, 2)
    bert.train()
    params = list(bert.named_parameters()) + [("classifier." + n, p) for n, p in head.named_parameters()]
    no_decay = ("bias", "LayerNorm.weight")
    opt = torch.optim.AdamW([
        {"params": [p for n, p in params if not any(d in n for d in no_decay)], "weight_decay": 0.01},
        {"params": [p for n, p in params if any(d in n for d in no_decay)], "weight_decay": 0.0},
    ], lr=1e-5)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, bert.config.vocab_size, (a.batch, a.seq), generator=g)
    mask = torch.ones_like(ids)
    y = torch.arange(a.batch) % 2
    fwd, bwd, upd, total = [], [], [], []
    for i in range(a.warmup + a.iters):
        t0 = time.perf_counter()
        h = bert(input_ids=ids, attention_mask=mask).last_hidden_state
        loss = F.cross_entropy(head(torch.nn.functional.dropout(h[:, 0], 0.1, True)), y)
        loss.item()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad()
        t3 = time.perf_counter()
        if i >= a.warmup:
            fwd.append((t1 - t0) * 1e3)
            bwd.append((t2 - t1) * 1e3)
            upd.append((t3 - t2) * 1e3)
            total.append((t3 - t0) * 1e3)
    med = statistics.median
    print(json.dumps({"impl": "torch", "batch": a.batch, "seq": a.seq, "threads": a.threads,
                      "ms": round(med(total), 1), "forward_ms": round(med(fwd), 1),
                      "backward_ms": round(med(bwd), 1), "optimizer_ms": round(med(upd), 1)}))


if __name__ == "__main__":
    main()
