#!/usr/bin/env python3
"""Checks that `transformers` loads an encoder–decoder directory bert4rs trained and saved
(e.g. runs/email-subjects/best) and generates what bert4rs generated for the test split
(`test_generations.jsonl`, greedy): the same text for the first N sources.

    PY=$(bash reference/setup.sh | tail -1)
    $PY reference/check_seq2seq_saved.py DIR GENERATIONS.jsonl [N] [MAX_LENGTH] [MAX_NEW]
"""
import json
import sys

import torch
from transformers import BertTokenizerFast, EncoderDecoderModel

d, gens = sys.argv[1:3]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 50
max_length = int(sys.argv[4]) if len(sys.argv) > 4 else 128
max_new = int(sys.argv[5]) if len(sys.argv) > 5 else 25
model = EncoderDecoderModel.from_pretrained(d).eval()
tok = BertTokenizerFast.from_pretrained(d)
rows = [json.loads(line) for line in open(gens)][:n]
same = 0
for r in rows:
    enc = tok([r["source"]], truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new, num_beams=1, do_sample=False)
    text = tok.decode(out[0], skip_special_tokens=True)
    if text == r["generated"]:
        same += 1
    else:
        print(f"differs: transformers {text!r} vs bert4rs {r['generated']!r}")
print(f"{same}/{len(rows)} generations identical")
assert same == len(rows)
