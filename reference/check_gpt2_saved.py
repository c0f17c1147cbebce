#!/usr/bin/env python3
"""Checks that `transformers` loads a GPT-2 directory bert4rs saved (e.g. runs/gpt2-zh/best)
and gives the log-probabilities `bert4rs score` prints.

    PY=$(bash reference/setup.sh | tail -1)
    $PY reference/check_gpt2_saved.py DIR PROMPT CONTINUATION
"""
import json
import subprocess
import sys

import torch
from transformers import AutoTokenizer, GPT2LMHeadModel

d, prompt, cont = sys.argv[1:4]
model = GPT2LMHeadModel.from_pretrained(d).eval()
tok = AutoTokenizer.from_pretrained(d)
ours = json.loads(subprocess.check_output(
    ["target/release/bert4rs", "score", "--model", d, "--prompt", prompt, "--continuation", cont]))
p = tok(prompt, add_special_tokens=False)["input_ids"]
if tok.cls_token_id is not None:  # BERT vocabulary: [CLS] text, as bert4rs encodes prompts
    p = [tok.cls_token_id] + p
c = tok(cont, add_special_tokens=False)["input_ids"]
with torch.no_grad():
    lp = model(torch.tensor([p + c])).logits[0].log_softmax(-1)
theirs = sum(float(lp[len(p) + i - 1, t]) for i, t in enumerate(c))
print(f"transformers: {theirs:.6f}  bert4rs: {ours['logprob']:.6f}  |diff| {abs(theirs - ours['logprob']):.2e}")
assert abs(theirs - ours["logprob"]) < 1e-3
