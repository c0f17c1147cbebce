#!/usr/bin/env python3
"""The PyTorch / transformers side of bert4rs' fine-tuning comparison: the same recipe as a
bert4rs run config (same split files, pooling, lr, schedule, epochs, batch size, weight-decay
groups, clipping), so the README can put both accuracies side by side.

    PY=$(bash reference/setup.sh | tail -1)
    $PY reference/train_reference.py --split-dir runs/polarity/split --model DIR \
        [--pooling mean|cls|pooler] [--lr 5e-5] [--epochs 3] [--batch-size 32] [--seed 42]

The split files are the JSON lines bert4rs writes (`text`, optional `text_pair`, `label`).
Prints one JSON object: dev (best epoch) and test accuracy / macro-F1, seconds per step.
"""
import argparse
import json
import math
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from transformers import AutoModel, AutoTokenizer, get_scheduler  # noqa: E402


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class Classifier(torch.nn.Module):
    """Encoder → pooling → dropout → linear, as bert4rs' SequenceClassifier."""

    def __init__(self, model_dir, n_labels, pooling):
        super().__init__()
        self.bert = AutoModel.from_pretrained(model_dir, attn_implementation="eager")
        cfg = self.bert.config
        self.pooling = pooling
        p = getattr(cfg, "classifier_dropout", None) or cfg.hidden_dropout_prob
        self.dropout = torch.nn.Dropout(p)
        self.classifier = torch.nn.Linear(cfg.hidden_size, n_labels)
        self.classifier.weight.data.normal_(0.0, cfg.initializer_range)
        self.classifier.bias.data.zero_()

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                        token_type_ids=token_type_ids)
        h = out.last_hidden_state
        if self.pooling == "mean":
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        elif self.pooling == "cls":
            pooled = h[:, 0]
        elif self.pooling == "pooler":
            pooled = out.pooler_output
        else:
            raise SystemExit(f"pooling {self.pooling} not in the reference script")
        return self.classifier(self.dropout(pooled))


def batches(examples, tok, labels, bs, max_len, shuffle, gen):
    order = torch.randperm(len(examples), generator=gen).tolist() if shuffle else list(
        range(len(examples)))
    for i in range(0, len(order), bs):
        chunk = [examples[j] for j in order[i:i + bs]]
        texts = [e["text"] for e in chunk]
        pairs = [e["text_pair"] for e in chunk] if "text_pair" in chunk[0] else None
        enc = tok(texts, pairs, padding="longest", truncation=True, max_length=max_len,
                  return_tensors="pt")
        y = torch.tensor([labels.index(str(e["label"])) for e in chunk])
        yield enc, y


def evaluate(model, examples, tok, labels, max_len):
    model.eval()
    preds, gold = [], []
    with torch.no_grad():
        for enc, y in batches(examples, tok, labels, 64, max_len, False, None):
            preds += model(**enc).argmax(-1).tolist()
            gold += y.tolist()
    model.train()
    acc = sum(p == g for p, g in zip(preds, gold)) / len(gold)
    f1s = []
    for c in range(len(labels)):
        tp = sum(p == c and g == c for p, g in zip(preds, gold))
        npred = sum(p == c for p in preds)
        ngold = sum(g == c for g in gold)
        prec = tp / npred if npred else 0.0
        rec = tp / ngold if ngold else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return {"accuracy": acc, "macro_f1": sum(f1s) / len(f1s)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--split-dir", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--pooling", default="mean")
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--warmup-ratio", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--max-grad-norm", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    train = read(os.path.join(args.split_dir, "train.jsonl"))
    dev = read(os.path.join(args.split_dir, "dev.jsonl"))
    test = read(os.path.join(args.split_dir, "test.jsonl"))
    labels = sorted({str(e["label"]) for e in train})
    tok = AutoTokenizer.from_pretrained(args.model)
    model = Classifier(args.model, len(labels), args.pooling)
    model.train()
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters()
                    if not any(nd in n for nd in no_decay)], "weight_decay": args.weight_decay},
        {"params": [p for n, p in model.named_parameters()
                    if any(nd in n for nd in no_decay)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=args.lr)
    steps_per_epoch = math.ceil(len(train) / args.batch_size)
    total = steps_per_epoch * args.epochs
    sched = get_scheduler("linear", opt, num_warmup_steps=math.ceil(args.warmup_ratio * total),
                          num_training_steps=total)
    gen = torch.Generator().manual_seed(args.seed)
    best, best_state, step_times = None, None, []
    for epoch in range(args.epochs):
        for enc, y in batches(train, tok, labels, args.batch_size, args.max_length, True, gen):
            t0 = time.perf_counter()
            loss = F.cross_entropy(model(**enc), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad()
            step_times.append(time.perf_counter() - t0)
        m = evaluate(model, dev, tok, labels, args.max_length)
        if best is None or m["accuracy"] > best["accuracy"]:
            best = {**m, "epoch": epoch + 1}
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    result = {
        "dev": best,
        "test": evaluate(model, test, tok, labels, args.max_length),
        "seconds_per_step": sum(step_times) / len(step_times),
        "steps": len(step_times),
        "torch": torch.__version__,
        "recipe": vars(args),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
