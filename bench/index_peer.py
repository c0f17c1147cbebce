#!/usr/bin/env python3
"""Peers of bench/index.sh: exact cosine top-k over the same index file and queries with
NumPy (a brute-force matrix-vector product + argpartition) and FAISS `IndexFlatIP` (the
usual exact inner-product index), one query at a time, plus the check that bert4rs's hits
are the brute-force top-k. Reads bert4rs's JSON line on stdin; prints a table row per
implementation with the latency ratio.
"""
import json
import sys
import time

import numpy as np


def timed(fn, queries):
    times, out = [], []
    fn(queries[0])  # warm
    for q in queries:
        t0 = time.perf_counter()
        out.append(fn(q))
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times, out


def main():
    ours = json.loads(sys.stdin.readline())
    count, dim, k = ours["count"], ours["dim"], ours["k"]
    vectors = np.fromfile(ours["vectors"], dtype="<f4").reshape(count, dim)
    queries = np.fromfile(sys.argv[1], dtype="<f4").reshape(-1, dim)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)

    def brute(q):
        scores = vectors @ q
        top = np.argpartition(-scores, k)[:k]
        return top[np.lexsort((top, -scores[top]))]

    times, want = timed(brute, queries)
    # Hits must be the brute-force top-k; rows may differ only where scores tie within f32.
    worst = 0.0
    for got, exp, q in zip(ours["hits"], want, queries):
        s_got, s_exp = vectors[got] @ q, vectors[exp] @ q
        worst = max(worst, float(np.max(np.abs(s_got - s_exp))))
    same = sum(list(g) == list(e) for g, e in zip(ours["hits"], want))
    gb = count * dim * 4 / 1e9

    def row(name, p50, note=""):
        ratio = "" if name == "bert4rs" else f" bert4rs {p50 / ours['p50_ms']:.2f}x faster"
        print(f"{count:9} {dim:4} {name:11} {p50:9.2f} {gb / (p50 / 1e3):8.1f}{ratio}{note}")

    row("bert4rs", ours["p50_ms"])
    row("numpy", times[len(times) // 2],
        f"; top-k identical on {same}/{len(want)} queries, worst score gap {worst:.1e}")
    try:
        import faiss
    except ImportError:
        print("(faiss-cpu not installed: no FAISS row)")
        return
    faiss.omp_set_num_threads(int(sys.argv[2]))
    index = faiss.IndexFlatIP(dim)
    index.add(vectors)
    times, _ = timed(lambda q: index.search(q[None, :], k), queries)
    row("faiss-flat", times[len(times) // 2])


if __name__ == "__main__":
    main()
