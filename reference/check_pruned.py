#!/usr/bin/env python3
"""Checks that transformers loads a directory written by `bert4rs prune-heads` (its
`pruned_heads` config builds the narrower attention layers, every weight is used) and that
the classifier on top gives the probabilities `bert4rs predict` gave.

The classifier is bert4rs' mean-pooling head (`bert4rs_pooling: "mean"` in its config; HF has no
such class), so it is applied here by hand to `BertModel`'s output: mean over real tokens,
then the `classifier` linear layer, softmax.

    bert4rs prune-heads --model RUN/best --data DEV --fraction 0.5 --output PRUNED
    bert4rs predict --model PRUNED --input DATA.jsonl --output PRED.jsonl
    $PY reference/check_pruned.py PRUNED DATA.jsonl PRED.jsonl
"""
import json
import sys
import warnings

import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, BertModel

warnings.filterwarnings("ignore")
model_dir, data, pred = sys.argv[1:4]
bert, info = BertModel.from_pretrained(model_dir, add_pooling_layer=False, output_loading_info=True)
bert.eval()
missing = [k for k in info["missing_keys"]]
mismatched = info["mismatched_keys"]
assert not missing and not mismatched, (missing, mismatched)
cfg = json.load(open(f"{model_dir}/config.json"))
assert cfg.get("bert4rs_pooling") == "mean", cfg.get("bert4rs_pooling")
heads = [bert.encoder.layer[i].attention.self.num_attention_heads for i in range(cfg["num_hidden_layers"])]
sd = load_file(f"{model_dir}/model.safetensors")
w, b = sd["classifier.weight"], sd["classifier.bias"]
tok = AutoTokenizer.from_pretrained(model_dir)
texts = [json.loads(line)["text"] for line in open(data) if line.strip()]
ours = [json.loads(line) for line in open(pred) if line.strip()]
with torch.no_grad():
    enc = tok(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    h = bert(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    pooled = (h * m).sum(1) / m.sum(1)
    probs = (pooled @ w.T + b).softmax(-1)
labels = [cfg["id2label"][str(i)] for i in range(probs.shape[1])]
diff = max(abs(probs[i][j].item() - ours[i]["probabilities"][labels[j]])
           for i in range(len(texts)) for j in range(len(labels)))
print(f"BertModel heads per layer {heads}: {len(texts)} texts, "
      f"max |p_transformers - p_bert4rs| = {diff:.2e}")
sys.exit(0 if diff < 1e-5 else 1)
