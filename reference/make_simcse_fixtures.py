"""Golden fixtures for SimCSE (tests/simcse.rs), from the SimCSE code's formula in PyTorch.

The loss, as `cl_forward` in princeton-nlp/SimCSE `simcse/models.py` computes it:
`cos_sim = CosineSimilarity(dim=-1)(z1.unsqueeze(1), z2.unsqueeze(0)) / temp`, with hard
negatives `cat([cos_sim, cos(z1, z3) / temp], 1)`, then `CrossEntropyLoss()(cos_sim,
arange(n))` (hard_negative_weight 0, the default).

Writes, under --out:
- `loss.safetensors`: random z1, z2, z3 `[6, 16]` (one row of z2 scaled by 100, one of z3
  by 0.01: cosine must not depend on norms); the loss without and with hard negatives at
  temperature 0.05 and their gradients with respect to z1, z2 (and z3);
- `model.json` + `model.safetensors`: supervised SimCSE with hard negatives on the tiny
  random `tests/fixtures/models/bert-a` (eval mode, so no dropout), mean pooling over the
  attention mask and CLS pooling: the triples, the loss, and the gradients of a few encoder
  parameters. All 3·n rows are padded together to the longest, as one batch.

    python reference/make_simcse_fixtures.py --out tests/fixtures/simcse
"""

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import BertModel, BertTokenizerFast

TEMP = 0.05
TRIPLES = [
    ("hello world", "hello the world", "the lazy dog"),
    ("the quick brown fox is over the lazy dog", "a quick fox", "how are you today"),
    ("how do you do", "how are you", "quick brown fox"),
    ("i love to play", "play and love", "the world is unbelievable"),
]
GRADS = [
    "embeddings.LayerNorm.weight",
    "encoder.layer.0.attention.self.query.weight",
    "encoder.layer.1.output.dense.bias",
]


def simcse_loss(z1, z2, z3=None, temp=TEMP):
    sim = torch.nn.CosineSimilarity(dim=-1)
    cos = sim(z1.unsqueeze(1), z2.unsqueeze(0)) / temp
    if z3 is not None:
        cos = torch.cat([cos, sim(z1.unsqueeze(1), z3.unsqueeze(0)) / temp], 1)
    labels = torch.arange(cos.size(0)).long()
    return torch.nn.CrossEntropyLoss()(cos, labels)


def loss_cases(out):
    g = torch.Generator().manual_seed(7)
    z = {k: torch.randn(6, 16, generator=g) for k in ("z1", "z2", "z3")}
    z["z2"][1] *= 100.0
    z["z3"][4] *= 0.01
    t = {k: v.clone() for k, v in z.items()}
    for name, keys in (("pairs", ("z1", "z2")), ("hard", ("z1", "z2", "z3"))):
        leaves = {k: z[k].clone().requires_grad_(True) for k in keys}
        loss = simcse_loss(*[leaves[k] for k in keys])
        loss.backward()
        t[f"{name}.loss"] = loss.detach().reshape(1)
        for k in keys:
            t[f"{name}.d{k}"] = leaves[k].grad
    save_file(t, str(out / "loss.safetensors"))


def mean_pool(h, mask):
    m = mask.unsqueeze(-1).float()
    return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)


def model_case(out, model_dir):
    tok = BertTokenizerFast.from_pretrained(str(model_dir))
    model = BertModel.from_pretrained(str(model_dir), attn_implementation="eager")
    model.eval()
    n = len(TRIPLES)
    texts = [t[0] for t in TRIPLES] + [t[1] for t in TRIPLES] + [t[2] for t in TRIPLES]
    enc = tok(texts, padding=True, return_tensors="pt")
    params = dict(model.named_parameters())
    result = {"triples": TRIPLES, "temperature": TEMP}
    tensors = {}
    for pooling in ("mean", "cls"):
        model.zero_grad()
        h = model(**enc).last_hidden_state
        z = mean_pool(h, enc["attention_mask"]) if pooling == "mean" else h[:, 0]
        loss = simcse_loss(z[:n], z[n : 2 * n], z[2 * n :])
        loss.backward()
        result[f"{pooling}.loss"] = loss.item()
        for name in GRADS:
            tensors[f"{pooling}.{name}"] = params[name].grad.detach().clone()
    result["grads"] = GRADS
    save_file(tensors, str(out / "model.safetensors"))
    (out / "model.json").write_text(json.dumps(result, indent=1) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, type=Path)
    out = ap.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    loss_cases(out)
    model_case(out, Path(__file__).resolve().parent.parent / "tests/fixtures/models/bert-a")


if __name__ == "__main__":
    main()
