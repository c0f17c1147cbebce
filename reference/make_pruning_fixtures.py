"""Golden fixtures for attention-head importance and pruning (tests/head_pruning.rs).

Writes, under --out:
- `full/`: a tiny random `BertForSequenceClassification` saved by `save_pretrained`;
- `pruned/`: the same model after HF's `prune_heads(PRUNE)` (Michel et al.'s pruning as
  `transformers` does it: the Q/K/V rows and the attention output's columns of those heads
  removed, `pruned_heads` in `config.json`), saved by `save_pretrained`;
- `pruned-twice/`: `pruned/` loaded back and pruned again by `AGAIN` (head numbers of the
  original model, as HF's `prune_heads` takes them);
- `expected.json`: a labelled batch; the eval-mode logits of all three models on it; and the
  gradient of the mean cross-entropy loss with respect to a head mask of ones (HF's
  `head_mask`, eager attention), for the full model and the pruned one: what
  `run_bertology.py` sums (in absolute value) as head importance.

    python reference/make_pruning_fixtures.py --out tests/fixtures/pruning
"""

import argparse
import json
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification

VOCAB = 64
PRUNE = {0: [1, 3], 2: [0]}
AGAIN = {0: [0], 1: [2]}


def scramble_(model):
    """Every parameter random, weights scaled by 1/sqrt(fan_in) (as make_head_fixtures.py)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 and "embeddings" in name:
                p.normal_(0.0, 1.0)
            elif p.dim() == 2:
                p.normal_(0.0, 1.0 / p.shape[1] ** 0.5)
            else:
                p.normal_(0.0, 0.2)
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.add_(1.0)


def batch(gen, lengths):
    """Rows `[CLS]=2 content [SEP]=3`, right-padded with 0; content ids avoid 0..4."""
    rows = [[2] + torch.randint(5, VOCAB, (n,), generator=gen).tolist() + [3] for n in lengths]
    t = max(len(r) for r in rows)
    ids = [r + [0] * (t - len(r)) for r in rows]
    mask = [[1] * len(r) + [0] * (t - len(r)) for r in rows]
    return ids, mask


def inputs(ids, mask):
    return dict(
        input_ids=torch.tensor(ids),
        attention_mask=torch.tensor(mask),
        token_type_ids=torch.zeros(len(ids), len(ids[0]), dtype=torch.long),
    )


def logits(model, ids, mask):
    with torch.no_grad():
        return model(**inputs(ids, mask)).logits.tolist()


def mask_grad(model, ids, mask, labels):
    """d(mean CE)/d(head_mask) at a mask of ones, one row per layer (its remaining heads)."""
    cfg = model.config
    rows = []
    masks = []
    for i in range(cfg.num_hidden_layers):
        heads = cfg.num_attention_heads - len(cfg.pruned_heads.get(i, []))
        masks.append(torch.ones(heads, requires_grad=True))
    # HF takes one [layers, heads] tensor; with pruned layers of different widths, hand each
    # layer its own mask through the layer call instead.
    for i, layer in enumerate(model.bert.encoder.layer):
        att = layer.attention.self
        orig = att.forward

        def fwd(*a, _orig=orig, _m=masks[i], **kw):
            kw["head_mask"] = _m.view(1, -1, 1, 1)
            return _orig(*a, **kw)

        att.forward = fwd
    out = model(**inputs(ids, mask), labels=torch.tensor(labels))
    out.loss.backward()
    for i, layer in enumerate(model.bert.encoder.layer):
        del layer.attention.self.forward
        rows.append(masks[i].grad.tolist())
    return rows, out.loss.item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, type=Path)
    out = ap.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(7)

    torch.manual_seed(21)
    cfg = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_attention_heads=4,
        num_hidden_layers=3,
        intermediate_size=64,
        max_position_embeddings=40,
        hidden_act="gelu",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=2,
        id2label={0: "neg", 1: "pos"},
        label2id={"neg": 0, "pos": 1},
        problem_type="single_label_classification",
        pad_token_id=0,
    )
    cfg._attn_implementation = "eager"
    model = BertForSequenceClassification(cfg).eval()
    scramble_(model)
    ids, mask = batch(gen, [6, 11, 2, 9])
    labels = [1, 0, 0, 1]
    model.save_pretrained(out / "full", safe_serialization=True)
    full_logits = logits(model, ids, mask)
    full_grad, full_loss = mask_grad(model, ids, mask, labels)

    model.prune_heads(PRUNE)
    model.save_pretrained(out / "pruned", safe_serialization=True)
    pruned = BertForSequenceClassification.from_pretrained(out / "pruned").eval()
    pruned.config._attn_implementation = "eager"
    pruned_logits = logits(pruned, ids, mask)
    pruned_grad, pruned_loss = mask_grad(pruned, ids, mask, labels)

    pruned.prune_heads(AGAIN)
    pruned.save_pretrained(out / "pruned-twice", safe_serialization=True)
    twice_logits = logits(pruned, ids, mask)

    (out / "expected.json").write_text(
        json.dumps(
            {
                "input_ids": ids,
                "attention_mask": mask,
                "labels": labels,
                "prune": {str(k): v for k, v in PRUNE.items()},
                "again": {str(k): v for k, v in AGAIN.items()},
                "full_logits": full_logits,
                "pruned_logits": pruned_logits,
                "twice_logits": twice_logits,
                "full_loss": full_loss,
                "pruned_loss": pruned_loss,
                "full_mask_grad": full_grad,
                "pruned_mask_grad": pruned_grad,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
