"""`bert4rs.SentenceEncoder.encode` vs sentence-transformers on MiniLM: 10,000 sentences
(the Pang & Lee polarity sentences, numbered to make 10,000 distinct texts), batch 32, the
same threads for both; prints both times, the ratio and the worst cosine between them.
    bash bench/python_encode.sh [THREADS=2] [N=10000]"""

import csv
import sys
import time

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

import bert4rs

minilm, sentences_csv, threads, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
with open(sentences_csv, encoding="utf-8-sig") as f:
    base = [row[1] for row in csv.reader(f)]
texts = [f"{base[i % len(base)]} ({i // len(base)})" for i in range(n)]

ours = bert4rs.SentenceEncoder(minilm, threads=threads)
st = SentenceTransformer(minilm, device="cpu")
ours.encode(texts[:64])
st.encode(texts[:64])
t0 = time.perf_counter()
a = ours.encode(texts, batch_size=32)
t1 = time.perf_counter()
b = st.encode(texts, batch_size=32)
t2 = time.perf_counter()
cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
print(f"{n} sentences, {threads} threads, batch 32: bert4rs {t1 - t0:.2f} s, "
      f"sentence-transformers {t2 - t1:.2f} s, ratio {(t2 - t1) / (t1 - t0):.2f}x; "
      f"min cosine {cos.min():.7f}")
