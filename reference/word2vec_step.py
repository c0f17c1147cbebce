#!/usr/bin/env python3
"""A NumPy reference of one word2vec update (tests/word2vec.rs), written from the C tool's
`TrainModelThread`: skip-gram (the context word's input vector predicts the centre word) and
CBOW (the mean of the context vectors predicts it), hierarchical softmax along a Huffman path
(`g = (1 - code - σ(f))·α`, skipped where |f| ≥ 6), then negative sampling (`g = (label -
σ(f))·α`, σ saturated to 0/1 beyond ±6; a negative equal to the target is skipped); σ from
the C tool's 1000-entry table. Each case starts from the same random matrices.

    python reference/word2vec_step.py > tests/fixtures/word2vec/steps.json
"""
import json

import numpy as np

MAX_EXP, TABLE = np.float32(6.0), 1000
xs = (np.arange(TABLE, dtype=np.float32) / np.float32(TABLE) * np.float32(2) - np.float32(1)) * MAX_EXP
e = np.exp(xs)
SIGMOID = (e / (e + np.float32(1))).astype(np.float32)


def sigmoid(f):
    i = int(np.float32((f + MAX_EXP) * np.float32(TABLE / MAX_EXP / 2)))
    return SIGMOID[min(i, TABLE - 1)]


def predict(inp, word, path, negatives, alpha, syn1, syn1neg, grad):
    if path is not None:
        for code, node in zip(*path):
            f = np.float32(inp @ syn1[node])
            if f <= -MAX_EXP or f >= MAX_EXP:
                continue
            g = np.float32((1 - code - sigmoid(f)) * alpha)
            grad += g * syn1[node]
            syn1[node] += g * inp
    if syn1neg is not None:
        for target, label in [(word, 1.0)] + [(n, 0.0) for n in negatives if n != word]:
            f = np.float32(inp @ syn1neg[target])
            if f > MAX_EXP:
                g = (label - 1) * alpha
            elif f < -MAX_EXP:
                g = label * alpha
            else:
                g = (label - sigmoid(f)) * alpha
            g = np.float32(g)
            grad += g * syn1neg[target]
            syn1neg[target] += g * inp


def case(name, m, sg, contexts, word, path, negatives, alpha, hs, ns):
    syn0, syn1, syn1neg = (m["syn0"].copy(), m["syn1"].copy(), m["syn1neg"].copy())
    grad = np.zeros(syn0.shape[1], np.float32)
    a = np.float32(alpha)
    if sg:
        inp = syn0[contexts[0]]
        predict(inp, word, path if hs else None, negatives, a, syn1, syn1neg if ns else None, grad)
        syn0[contexts[0]] += grad
    else:
        inp = syn0[contexts].mean(0).astype(np.float32)
        predict(inp, word, path if hs else None, negatives, a, syn1, syn1neg if ns else None, grad)
        for c in contexts:
            syn0[c] += grad
    return {
        "name": name, "sg": sg, "contexts": contexts, "word": word, "negatives": negatives,
        "codes": path[0] if hs else None, "points": path[1] if hs else None, "alpha": alpha,
        "hs": hs, "ns": ns, "syn0": syn0.tolist(), "syn1": syn1.tolist(), "syn1neg": syn1neg.tolist(),
    }


def main():
    rng = np.random.default_rng(11)
    v, dim = 7, 21  # 21: one 16-lane block and a tail
    m = {k: rng.normal(0, 0.6, (v, dim)).astype(np.float32) for k in ("syn0", "syn1", "syn1neg")}
    m["syn0"][6] *= 8  # word 6's products pass ±6: the saturated branches
    cases = [
        case("skip-gram, negative sampling", m, True, [2], 4, None, [1, 4, 5], 0.05, False, True),
        case("skip-gram, hierarchical softmax", m, True, [0], 3, ([1, 0, 1], [4, 2, 0]), [], 0.05, True, False),
        case("skip-gram, both", m, True, [5], 1, ([0, 1], [5, 3]), [2, 0], 0.025, True, True),
        case("CBOW, negative sampling", m, False, [0, 2, 5], 1, None, [3, 1], 0.03, False, True),
        case("CBOW, hierarchical softmax", m, False, [1, 4], 0, ([1, 1, 0], [5, 1, 3]), [], 0.03, True, False),
        case("skip-gram, saturated products", m, True, [6], 2, ([0, 1], [0, 1]), [3, 4], 0.05, True, True),
    ]
    print(json.dumps({k: x.tolist() for k, x in m.items()} | {"cases": cases}))


if __name__ == "__main__":
    main()
