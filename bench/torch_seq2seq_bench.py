"""HF `EncoderDecoderModel.generate` timing for bench/seq2seq.sh: the first N sources of a
JSON-lines file (`text`), in batches of 16, truncated to --max-length tokens; prints one JSON
line with the generation time (model loading excluded) and the generated texts' digest."""
import argparse
import hashlib
import json
import time

import torch
from transformers import BertTokenizerFast, EncoderDecoderModel

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--sources", required=True)
ap.add_argument("--n", type=int, default=64)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--beams", type=int, default=1)
ap.add_argument("--max-length", type=int, default=128)
ap.add_argument("--max-new", type=int, default=25)
a = ap.parse_args()
torch.set_num_threads(a.threads)
model = EncoderDecoderModel.from_pretrained(a.model).eval()
tok = BertTokenizerFast.from_pretrained(a.model)
texts = [json.loads(line)["text"] for line in open(a.sources)][: a.n]
out = []
t0 = time.perf_counter()
with torch.inference_mode():
    for i in range(0, len(texts), 16):
        enc = tok(texts[i : i + 16], truncation=True, max_length=a.max_length, padding=True,
                  return_tensors="pt")
        ids = model.generate(**enc, max_new_tokens=a.max_new, num_beams=a.beams, do_sample=False)
        out += tok.batch_decode(ids, skip_special_tokens=True)
secs = time.perf_counter() - t0
digest = hashlib.sha256(("\n".join(out) + "\n").encode()).hexdigest()[:12]
print(json.dumps({"impl": "torch", "beams": a.beams, "n": len(texts), "secs": secs, "digest": digest}))
