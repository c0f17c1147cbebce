"""Golden data for NEZHA (tests/nezha.rs): transformers 4.x `NezhaModel` (removed in 5.x;
requirements.txt pins 4.57.6) on a random checkpoint with a short relative range, so a
20-token input exercises the clipping.

Writes tests/fixtures/models/nezha-a/ (config.json, model.safetensors, bert-a's vocabulary)
and tests/fixtures/nezha/nezha.safetensors: a padded batch (ids, token types, mask) and its
last_hidden_state and pooler_output.

With --check DIR: loads DIR (a directory bert4rs saved) with NezhaModel and prints the max
difference from the golden outputs (the "loadable both ways" check).
"""

import shutil
import sys
from pathlib import Path

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import NezhaConfig, NezhaModel

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "tests/fixtures/models/nezha-a"
OUT = ROOT / "tests/fixtures/nezha"


def batch():
    g = torch.Generator().manual_seed(11)
    ids = torch.randint(5, 346, (2, 20), generator=g)
    ids[:, 0] = 2
    ids[0, 19], ids[1, 11] = 3, 3
    ids[1, 12:] = 0
    mask = torch.ones(2, 20, dtype=torch.int64)
    mask[1, 12:] = 0
    types = torch.zeros(2, 20, dtype=torch.int64)
    types[0, 10:] = 1
    return ids, types, mask


def outputs(model):
    ids, types, mask = batch()
    with torch.no_grad():
        o = model(input_ids=ids, token_type_ids=types, attention_mask=mask)
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask,
            "last_hidden_state": o.last_hidden_state, "pooler_output": o.pooler_output}


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        model = NezhaModel.from_pretrained(sys.argv[2]).eval()
        want = load_file(OUT / "nezha.safetensors")
        got = outputs(model)
        for k in ["last_hidden_state", "pooler_output"]:
            print(k, (got[k] - want[k]).abs().max().item())
        return
    torch.manual_seed(0)
    cfg = NezhaConfig(vocab_size=346, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=64, max_relative_position=6,
                      initializer_range=0.5)
    model = NezhaModel(cfg).eval()
    MODEL.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(MODEL)
    for f in ["vocab.txt", "tokenizer_config.json"]:
        shutil.copy(ROOT / "tests/fixtures/models/bert-a" / f, MODEL / f)
    OUT.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in outputs(model).items()}, OUT / "nezha.safetensors")
    print("transformers", transformers.__version__, "torch", torch.__version__)


if __name__ == "__main__":
    main()
