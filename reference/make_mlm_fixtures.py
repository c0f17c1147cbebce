"""Golden data for masked-LM pre-training and fill-mask (tests/mlm.rs), from
transformers' BertForMaskedLM on the committed random checkpoint tests/fixtures/models/bert-b
(a BertForPreTraining: its cls.predictions.* head is BertForMaskedLM's; the pooler and
cls.seq_relationship.* are unused by it).

Writes tests/fixtures/mlm/:
    mlm.safetensors   logits [B, T, V] of a padded batch (eval); and one training step:
                      input ids with [MASK] / random / kept tokens, labels (-100 where not
                      scored), loss, and every parameter after one AdamW step (decay groups,
                      clipping), dropout 0
    mlm.json          texts, fill-mask pipeline results (top 5 per mask), step settings,
                      library versions
"""

import json
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from transformers import BertForMaskedLM, BertTokenizerFast, pipeline

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL = REPO_ROOT / "tests/fixtures/models/bert-b"
OUT = REPO_ROOT / "tests/fixtures/mlm"
TEXTS = [
    "the quick brown [MASK] jumps over the lazy dog",
    "[MASK] is a [MASK] day",
    "我爱北京天[MASK]门",
    "hello [MASK]",
]
STEP_TEXTS = ["the quick brown fox jumps over the lazy dog today", "hello world", "我爱北京天安门"]
# (row, position, replacement): the scored positions and what the input shows there
# ("[MASK]", a token to put instead, or None to keep the original).
STEP_MASKS = [(0, 2, "[MASK]"), (0, 4, "dog"), (0, 7, None), (1, 1, "[MASK]"),
              (2, 3, "[MASK]"), (2, 4, "[MASK]")]
# Adam's first step moves each weight by lr * g / (|g| + eps). The tied decoder gives every
# vocabulary row a gradient, most of them tiny softmax tails (5,309 of the embedding's 16,608
# elements have |g| < 1e-8): at |g| ~ eps that ratio turns the float rounding of g (summed
# with cancellation, ~1e-8 absolute) into ~1e-5 weight differences in either framework: the
# step's sensitivity to g peaks at lr / (4 eps) where |g| = eps. With eps = 1e-3, far above
# that rounding, and no clipping (which would shrink every g 86x), the step is well
# conditioned everywhere; clipping and the default eps are checked by the other step fixtures.
LR, WEIGHT_DECAY, MAX_NORM, BETAS, EPS = 1e-2, 0.01, 1000.0, (0.9, 0.999), 1e-3
NO_DECAY = ("bias", "LayerNorm.weight")


OPTIMIZER_META = {"name": "torch.optim.AdamW", "lr": LR, "betas": list(BETAS), "eps": EPS,
                  "weight_decay": WEIGHT_DECAY, "no_decay_substrings": list(NO_DECAY),
                  "max_grad_norm": MAX_NORM}


def t(x):
    return x.detach().contiguous().clone()


def mask_inputs(tok, input_ids, masks):
    """Input ids and labels (-100 where not scored) for (row, position, replacement) masks:
    the replacement is a token to show there ("[MASK]" or another), or None to keep it."""
    ids = input_ids.clone()
    labels = torch.full_like(ids, -100)
    for row, pos, repl in masks:
        labels[row, pos] = ids[row, pos]
        if repl is not None:
            ids[row, pos] = tok.convert_tokens_to_ids(repl)
    return ids, labels


def adamw_step(model, loss):
    """Backward, clip to MAX_NORM, one AdamW step with the decay groups; returns the gradient
    norm, the updated parameters as `updated.<name>` tensors, and their names."""
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(nd in n for nd in NO_DECAY)],
         "weight_decay": WEIGHT_DECAY},
        {"params": [p for n, p in model.named_parameters() if any(nd in n for nd in NO_DECAY)],
         "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=EPS, foreach=False)
    loss.backward()
    total_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)
    opt.step()
    names = [n for n, _ in model.named_parameters()]
    return total_norm, {f"updated.{n}": t(p) for n, p in model.named_parameters()}, names


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tok = BertTokenizerFast.from_pretrained(str(MODEL))
    model = BertForMaskedLM.from_pretrained(str(MODEL), attn_implementation="eager").eval()
    enc = tok(TEXTS, padding="longest", return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits
    tensors = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
               "logits": t(logits)}

    fill = pipeline("fill-mask", model=str(MODEL), tokenizer=str(MODEL), top_k=5)
    fills = []
    for text in TEXTS:
        res = fill(text)
        if res and isinstance(res[0], dict):
            res = [res]  # one mask: the pipeline returns a flat list
        fills.append([[{"token": r["token"], "token_str": r["token_str"], "score": r["score"]}
                       for r in cands] for cands in res])

    step = BertForMaskedLM.from_pretrained(
        str(MODEL), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        attn_implementation="eager")
    step.train()
    senc = tok(STEP_TEXTS, padding="longest", return_tensors="pt")
    ids, labels = mask_inputs(tok, senc["input_ids"], STEP_MASKS)
    out = step(input_ids=ids, attention_mask=senc["attention_mask"],
               token_type_ids=senc["token_type_ids"], labels=labels)
    total_norm, updated, names = adamw_step(step, out.loss)
    tensors.update({"step.input_ids": ids, "step.attention_mask": senc["attention_mask"],
                    "step.labels": labels})
    tensors.update(updated)
    save_file(tensors, str(OUT / "mlm.safetensors"))
    meta = {
        "model_dir": "tests/fixtures/models/bert-b",
        "texts": TEXTS, "fill_mask": fills,
        "step": {"texts": STEP_TEXTS, "masks": STEP_MASKS, "loss": out.loss.item(),
                 "total_norm": total_norm.item(), "parameters": names,
                 "optimizer": OPTIMIZER_META,
                 "dropout": "0 (hidden and attention), model.train()",
                 "loss_rule": "CrossEntropyLoss(ignore_index=-100) over all positions, mean over "
                              "the scored ones"},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }
    with open(OUT / "mlm.json", "w") as f:
        json.dump(meta, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT}; step loss {out.loss.item():.6f}, parameters {len(names)}")


if __name__ == "__main__":
    main()
