#!/usr/bin/env python3
"""Checks that transformers loads a bert4rs fine-tuned directory as
BertForSequenceClassification and predicts what `bert4rs predict` predicted.

    bert4rs train ... (pooling = "pooler", HF's head)
    bert4rs predict --model RUN/best --input DATA.jsonl --output PRED.jsonl
    $PY reference/check_finetuned.py RUN/best DATA.jsonl PRED.jsonl
"""
import json
import sys
import warnings

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

warnings.filterwarnings("ignore")
model_dir, data, pred = sys.argv[1:4]
m = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
tok = AutoTokenizer.from_pretrained(model_dir)
texts = [json.loads(line)["text"] for line in open(data) if line.strip()]
ours = [json.loads(line) for line in open(pred) if line.strip()]
with torch.no_grad():
    probs = m(**tok(texts, padding=True, truncation=True, return_tensors="pt")).logits.softmax(-1)
labels = [m.config.id2label[i] for i in range(probs.shape[1])]
diff = max(abs(probs[i][j].item() - ours[i]["probabilities"][labels[j]])
           for i in range(len(texts)) for j in range(len(labels)))
print(f"{type(m).__name__}: {len(texts)} texts, max |p_transformers - p_bert4rs| = {diff:.2e}")
sys.exit(0 if diff < 1e-5 else 1)
