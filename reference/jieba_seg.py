#!/usr/bin/env python3
"""Word precision / recall / F1 of jieba (PyPI; its default dictionary and HMM for unknown
words, `jieba.lcut(text)`) on a `bert4rs prepare zh-seg` split, scored as `bert4rs eval`
scores a segmentation model: a word counts when its character span equals a gold word's.
With a second file (`bert4rs segment` output: the same sentences, words separated by spaces)
the same score is printed for it.

    $PY reference/jieba_seg.py runs/zh-seg-data/test.jsonl [OURS.txt]
"""
import json
import sys
import time

import jieba

jieba.setLogLevel(60)


def spans(words):
    out, pos = set(), 0
    for w in words:
        out.add((pos, pos + len(w)))
        pos += len(w)
    return out


def score(gold, pred):
    tp = sum(len(g & p) for g, p in zip(gold, pred))
    n_pred, n_gold = sum(map(len, pred)), sum(map(len, gold))
    prec, rec = tp / n_pred, tp / n_gold
    return {"precision": prec, "recall": rec, "f1": 2 * prec * rec / (prec + rec), "words": n_gold}


rows = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8") if line.strip()]
gold_words = [r["text"].split(" ") for r in rows]
texts = ["".join(w) for w in gold_words]
gold = [spans(w) for w in gold_words]
jieba.initialize()
t0 = time.perf_counter()
pred = [jieba.lcut(t) for t in texts]
seconds = time.perf_counter() - t0
out = {"jieba": score(gold, [spans(p) for p in pred]) | {"seconds": seconds}}
if len(sys.argv) > 2:
    ours = [line.rstrip("\n").split(" ") for line in open(sys.argv[2], encoding="utf-8")]
    assert ["".join(w) for w in ours] == texts, "the segmented file must hold the same texts"
    out["ours"] = score(gold, [spans(w) for w in ours])
print(json.dumps(out))
