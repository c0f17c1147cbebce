"""Golden data for position tables (tests/positions.rs): the notes' formulas in torch.

- `sinusoid`: bert4torch's get_sinusoid_encoding_table(600, 32) (interleaved sin / cos).
- `extend_*`: the position tables of the committed random checkpoints grown by copy (repeat)
  and by the hierarchical decomposition  u = (p - a*p[0]) / (1 - a),  q[i*n + j] = a*u[i] + (1-a)*u[j]
  (RoBERTa: the reserved rows 0..=pad stay in front; only the trained rows are extended).
- `long_hidden`: transformers' BertModel on bert-a with the hierarchical table (300 rows) on a
  200-token input, past the 64 positions bert-a was made with.

Writes tests/fixtures/positions/positions.safetensors and positions.json.
"""

import json
import math
from pathlib import Path

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import BertConfig, BertModel

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "tests/fixtures/models"
OUT = ROOT / "tests/fixtures/positions"


def sinusoid(n_position, d_hid, base=10000.0):
    position = torch.arange(0, n_position, dtype=torch.float).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_hid, 2).float() * (-math.log(base) / d_hid))
    table = torch.zeros(n_position, d_hid)
    table[:, 0::2] = torch.sin(position * div_term)
    table[:, 1::2] = torch.cos(position * div_term)
    return table


def copy(p, to):
    return torch.cat([p] * math.ceil(to / p.shape[0]))[:to]


def hierarchical(p, to, alpha):
    n = p.shape[0]
    u = (p - alpha * p[:1]) / (1 - alpha)
    i = torch.arange(to) // n
    j = torch.arange(to) % n
    return alpha * u[i] + (1 - alpha) * u[j]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    bert = load_file(MODELS / "bert-a/model.safetensors")["embeddings.position_embeddings.weight"]
    rob = torch.load(MODELS / "roberta-a/pytorch_model.bin", weights_only=True)
    rob = rob["embeddings.position_embeddings.weight"] if "embeddings.position_embeddings.weight" in rob \
        else rob["roberta.embeddings.position_embeddings.weight"]
    out = {
        "sinusoid": sinusoid(600, 32),
        "bert_copy_150": copy(bert, 150),
        "bert_hier_300": hierarchical(bert, 300, 0.4),
        "bert_hier_300_a03": hierarchical(bert, 300, 0.3),
        "roberta_hier_100": torch.cat([rob[:2], hierarchical(rob[2:], 98, 0.4)]),
    }
    cfg = BertConfig.from_pretrained(MODELS / "bert-a")
    model = BertModel.from_pretrained(MODELS / "bert-a").eval()
    cfg.max_position_embeddings = 300
    long = BertModel(cfg).eval()
    state = model.state_dict()
    state["embeddings.position_embeddings.weight"] = out["bert_hier_300"]
    state["embeddings.position_ids"] = torch.arange(300).unsqueeze(0)
    long.load_state_dict(state, strict=False)
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(5, cfg.vocab_size, (1, 200), generator=g)
    ids[0, 0], ids[0, -1] = 2, 3  # [CLS] ... [SEP] in bert-a's vocabulary
    with torch.no_grad():
        out["long_hidden"] = long(input_ids=ids).last_hidden_state[0]
    out["long_ids"] = ids[0].to(torch.int64)
    save_file({k: v.contiguous() for k, v in out.items()}, OUT / "positions.safetensors")
    meta = {"torch": torch.__version__, "transformers": transformers.__version__,
            "alpha": 0.4, "tensors": {k: list(v.shape) for k, v in out.items()}}
    (OUT / "positions.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main()
