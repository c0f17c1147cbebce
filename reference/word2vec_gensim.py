#!/usr/bin/env python3
"""gensim's Word2Vec on the same corpus and settings as `bert4rs word2vec train`, for
bench/word2vec.sh: prints gensim's training time and words/s, and its analogy accuracy; and
loads the bert4rs vectors with gensim's own `load_word2vec_format` to score them with
`evaluate_word_analogies` (the format check, and the same scorer on both).

    $PY reference/word2vec_gensim.py CORPUS QUESTIONS OURS.{txt,bin} [--sg] [--hs] \
        [--negative 5] [--epochs 5] [--workers 2]
"""
import argparse
import json
import logging
import time

from gensim.models import KeyedVectors, Word2Vec
from gensim.models.word2vec import LineSentence

ap = argparse.ArgumentParser()
ap.add_argument("corpus")
ap.add_argument("questions")
ap.add_argument("ours")
ap.add_argument("--sg", action="store_true")
ap.add_argument("--hs", action="store_true")
ap.add_argument("--negative", type=int, default=5)
ap.add_argument("--epochs", type=int, default=5)
ap.add_argument("--workers", type=int, default=2)
a = ap.parse_args()
logging.basicConfig(level=logging.ERROR)

sentences = list(LineSentence(a.corpus))
raw = sum(len(s) for s in sentences)
model = Word2Vec(
    vector_size=100, window=5, min_count=5, sample=1e-3, sg=int(a.sg), hs=int(a.hs),
    negative=a.negative, alpha=0.025, min_alpha=0.0001, workers=a.workers, seed=1,
)
model.build_vocab(sentences)
t0 = time.perf_counter()
model.train(sentences, total_examples=len(sentences), epochs=a.epochs)
seconds = time.perf_counter() - t0
gensim_acc = model.wv.evaluate_word_analogies(a.questions)[0]
ours = KeyedVectors.load_word2vec_format(a.ours, binary=a.ours.endswith(".bin"))
ours_acc = ours.evaluate_word_analogies(a.questions)[0]
print(json.dumps({
    "gensim_seconds": seconds,
    "gensim_words_per_second": raw * a.epochs / seconds,
    "gensim_vocab": len(model.wv),
    "gensim_analogy_accuracy": gensim_acc,
    "ours_vocab_read_by_gensim": len(ours),
    "ours_analogy_accuracy_by_gensim": ours_acc,
    "gensim_nearest_北京": [w for w, _ in model.wv.most_similar("北京", topn=5)],
}, ensure_ascii=False))
