"""Checks that a directory bert4rs saved loads in transformers and gives the same outputs
as the directory it came from on the original vocabulary (run with the reference venv):
    python reference/check_saved.py SAVED_DIR ORIGINAL_DIR "text with [prompt_1]" ...
"""
import sys

import torch
from transformers import AutoModel, AutoTokenizer

saved, original, texts = sys.argv[1], sys.argv[2], sys.argv[3:]
tok = AutoTokenizer.from_pretrained(saved)
model = AutoModel.from_pretrained(saved).eval()
ref = AutoModel.from_pretrained(original).eval()
print("tokenizer:", type(tok).__name__, "vocab", len(tok), "model vocab", model.config.vocab_size)
assert len(tok) == model.config.vocab_size, "tokenizer and model out of sync"
for t in texts:
    enc = tok(t, return_tensors="pt")
    print(repr(t), "->", enc["input_ids"][0].tolist())
    with torch.no_grad():
        out = model(**enc).last_hidden_state
        # Rows of the original vocabulary must be unchanged.
        ids = enc["input_ids"]
        if int(ids.max()) < ref.config.vocab_size:
            diff = (out - ref(**enc).last_hidden_state).abs().max().item()
            print("  max abs diff vs original model:", diff)
            assert diff < 1e-5
print("OK: transformers loads the saved directory")
