"""Golden fixtures for HF's sequence-classification heads (tests/classifier_heads.rs).

Writes, for `BertForSequenceClassification` and `RobertaForSequenceClassification`, a tiny
random model saved by `save_pretrained` (safetensors: HF's own tensor names, e.g. RoBERTa's
`classifier.dense` / `classifier.out_proj` and no pooler) and the eval-mode logits of a padded
batch. The Rust test loads each directory, compares the logits, saves it again and checks the
saved names and shapes are exactly HF's.

    python reference/make_head_fixtures.py --out tests/fixtures/heads
"""

import argparse
import json
from pathlib import Path

import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
)

VOCAB = 64


def scramble_(model):
    """Every parameter random (biases and LayerNorm too, so a missing one shows), weights
    scaled by 1/sqrt(fan_in) so activations stay of order one through the layers."""
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


def common(cfg_cls, **kw):
    cfg = cfg_cls(
        vocab_size=VOCAB,
        hidden_size=32,
        num_attention_heads=4,
        num_hidden_layers=2,
        intermediate_size=64,
        max_position_embeddings=40,
        initializer_range=0.5,
        hidden_act="gelu",
        num_labels=3,
        id2label={0: "neg", 1: "neu", 2: "pos"},
        label2id={"neg": 0, "neu": 1, "pos": 2},
        problem_type="single_label_classification",
        **kw,
    )
    cfg._attn_implementation = "eager"
    return cfg


def batch(gen, bos, eos, pad, lengths):
    """Rows `bos content eos`, right-padded with `pad`; content ids avoid 0..4."""
    rows = [[bos] + torch.randint(5, VOCAB, (n,), generator=gen).tolist() + [eos] for n in lengths]
    t = max(len(r) for r in rows)
    ids = [r + [pad] * (t - len(r)) for r in rows]
    mask = [[1] * len(r) + [0] * (t - len(r)) for r in rows]
    return ids, mask


def write(out, name, model, ids, mask):
    d = out / name
    model.save_pretrained(d, safe_serialization=True)
    with torch.no_grad():
        logits = model(
            input_ids=torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            token_type_ids=torch.zeros(len(ids), len(ids[0]), dtype=torch.long),
        ).logits
    keys = {k: list(v.shape) for k, v in model.state_dict().items()}
    (d / "expected.json").write_text(
        json.dumps(
            {
                "architecture": type(model).__name__,
                "input_ids": ids,
                "attention_mask": mask,
                "logits": logits.tolist(),
                "state_dict_shapes": keys,
            },
            indent=1,
        )
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, type=Path)
    out = ap.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(2024)

    torch.manual_seed(11)
    bert = BertForSequenceClassification(common(BertConfig, pad_token_id=0)).eval()
    scramble_(bert)
    ids, mask = batch(gen, 2, 3, 0, [5, 11, 1])
    write(out, "bert-cls", bert, ids, mask)

    torch.manual_seed(12)
    rcfg = common(
        RobertaConfig,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
    )
    roberta = RobertaForSequenceClassification(rcfg).eval()
    scramble_(roberta)
    ids, mask = batch(gen, 0, 2, 1, [7, 3, 12])
    write(out, "roberta-cls", roberta, ids, mask)


if __name__ == "__main__":
    main()
