"""transformers' masked-LM pre-training on a plain-text file, for comparing learning pace with
`bert4rs pretrain` (same model config, tokenizer, block length, batch, AdamW, linear warm-up,
clipping, 15 % dynamic 80/10/10 masking by DataCollatorForLanguageModeling).

Lines are tokenized without special tokens, concatenated with [SEP] between documents and cut
into [CLS] ... [SEP] blocks of max_length (as `bert4rs pretrain` packs them); the last
`--dev-fraction` of the lines is held out.

  python reference/mlm_learning_curve.py --corpus F --tokenizer DIR --config DIR \
      --max-length 64 --batch-size 32 --lr 1e-3 --epochs 10 --eval-every 100
"""

import argparse
import math
import random

import torch
from transformers import (BertConfig, BertForMaskedLM, BertTokenizerFast,
                          DataCollatorForLanguageModeling, get_linear_schedule_with_warmup)


def blocks(lines, tok, max_length):
    ids = []
    for enc in tok(lines, add_special_tokens=False)["input_ids"]:
        ids.extend(enc + [tok.sep_token_id])
    n = max_length - 2
    return [[tok.cls_token_id] + ids[i:i + n] + [tok.sep_token_id]
            for i in range(0, len(ids) - n + 1, n)]


def evaluate(model, data, collator, seed):
    torch.manual_seed(seed)
    model.eval()
    loss_sum, n, right = 0.0, 0, 0
    with torch.no_grad():
        for i in range(0, len(data), 64):
            batch = collator([{"input_ids": b} for b in data[i:i + 64]])
            logits = model(input_ids=batch["input_ids"]).logits
            scored = batch["labels"] != -100
            loss_sum += torch.nn.functional.cross_entropy(
                logits[scored], batch["labels"][scored], reduction="sum").item()
            right += (logits[scored].argmax(-1) == batch["labels"][scored]).sum().item()
            n += scored.sum().item()
    model.train()
    return loss_sum / n, right / n


def main():
    ap = argparse.ArgumentParser()
    for a, t, d in [("--corpus", str, None), ("--tokenizer", str, None), ("--config", str, None),
                    ("--max-length", int, 64), ("--batch-size", int, 32), ("--lr", float, 1e-3),
                    ("--epochs", int, 10), ("--eval-every", int, 100), ("--warmup-ratio", float, 0.05),
                    ("--dev-fraction", float, 0.05), ("--threads", int, 2), ("--seed", int, 42)]:
        ap.add_argument(a, type=t, default=d, required=d is None and t is str)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    tok = BertTokenizerFast.from_pretrained(a.tokenizer)
    lines = [l.strip() for l in open(a.corpus, encoding="utf-8") if l.strip()]
    cut = int(len(lines) * (1 - a.dev_fraction))
    train, dev = blocks(lines[:cut], tok, a.max_length), blocks(lines[cut:], tok, a.max_length)
    model = BertForMaskedLM(BertConfig.from_pretrained(a.config))
    collator = DataCollatorForLanguageModeling(tok, mlm_probability=0.15)
    no_decay = ["bias", "LayerNorm.weight"]
    groups = [{"params": [p for n, p in model.named_parameters() if not any(x in n for x in no_decay)],
               "weight_decay": 0.01},
              {"params": [p for n, p in model.named_parameters() if any(x in n for x in no_decay)],
               "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=a.lr)
    steps = a.epochs * math.ceil(len(train) / a.batch_size)
    sched = get_linear_schedule_with_warmup(opt, int(a.warmup_ratio * steps), steps)
    print(f"{len(train)} training blocks, {len(dev)} dev blocks, {steps} steps", flush=True)
    step = 0
    for _ in range(a.epochs):
        random.shuffle(train)
        for i in range(0, len(train), a.batch_size):
            batch = collator([{"input_ids": b} for b in train[i:i + a.batch_size]])
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            if step % a.eval_every == 0 or step == steps:
                dl, acc = evaluate(model, dev, collator, 0)
                print(f"step {step}: train loss {loss.item():.4f} dev loss {dl:.4f} masked accuracy {acc:.4f}",
                      flush=True)


if __name__ == "__main__":
    main()
