#!/usr/bin/env python3
"""PyTorch half of the masked-LM step benchmark (bench/mlm.sh): HF's
DataCollatorForLanguageModeling (15 %, 80/10/10) on a batch of random [CLS] … [SEP] blocks,
BertForMaskedLM forward (train mode, dropout on) with -100 labels, backward, clipping, AdamW —
the step examples/bench_mlm.rs times, on a new model of the same config.json and the same
packed text.

    $PY bench/torch_mlm_bench.py --model-dir configs/zh-bert-small --tokenizer runs/zh-vocab \
        --text runs/zh-mlm.txt --batch 64 --seq 128 --threads 2

Prints one JSON line: median ms per step and its masking / forward / backward / optimiser parts.
"""
import argparse
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import (BertConfig, BertForMaskedLM,  # noqa: E402
                          DataCollatorForLanguageModeling, PreTrainedTokenizerFast)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--text", required=True, help="pre-training text, one document per line")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = BertConfig.from_pretrained(a.model_dir)
    model = BertForMaskedLM(cfg)
    model.train()
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(a.tokenizer, "tokenizer.json"),
                                  mask_token="[MASK]", pad_token="[PAD]", cls_token="[CLS]",
                                  sep_token="[SEP]", unk_token="[UNK]")
    collate = DataCollatorForLanguageModeling(tok, mlm_probability=0.15)
    no_decay = ("bias", "LayerNorm.weight")
    params = list(model.named_parameters())
    opt = torch.optim.AdamW([
        {"params": [p for n, p in params if not any(d in n for d in no_decay)], "weight_decay": 0.01},
        {"params": [p for n, p in params if any(d in n for d in no_decay)], "weight_decay": 0.0},
    ], lr=1e-4)
    # Packed [CLS] ... [SEP] blocks of the same text, as run_mlm's group_texts makes them.
    lines = []
    with open(a.text, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                lines.append(line.strip())
            if len(lines) >= 4 * a.batch * a.seq // 20:
                break
    stream = []
    for ids in tok(lines, add_special_tokens=False)["input_ids"]:
        stream.extend(ids + [tok.sep_token_id])
    room = a.seq - 2
    blocks = [[tok.cls_token_id] + stream[i * room:(i + 1) * room] + [tok.sep_token_id]
              for i in range(len(stream) // room)]
    examples = [{"input_ids": b} for b in blocks[:a.batch]]
    parts = {"masking_ms": [], "forward_ms": [], "backward_ms": [], "optimizer_ms": [], "ms": []}
    for i in range(a.warmup + a.iters):
        t0 = time.perf_counter()
        b = collate(examples)
        t1 = time.perf_counter()
        loss = model(input_ids=b["input_ids"], labels=b["labels"]).loss
        loss.item()
        t2 = time.perf_counter()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        t3 = time.perf_counter()
        opt.step()
        opt.zero_grad()
        t4 = time.perf_counter()
        if i >= a.warmup:
            for k, (x, y) in {"masking_ms": (t0, t1), "forward_ms": (t1, t2), "backward_ms": (t2, t3),
                              "optimizer_ms": (t3, t4), "ms": (t0, t4)}.items():
                parts[k].append((y - x) * 1e3)
    out = {"impl": "torch", "batch": a.batch, "seq": a.seq, "threads": a.threads}
    out.update({k: round(statistics.median(v), 1) for k, v in parts.items()})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
