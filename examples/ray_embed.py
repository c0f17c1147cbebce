"""Embeds a corpus with Ray Data: `map_batches` over an actor pool, each actor a callable
class that loads `bert4rs.SentenceEncoder` once and encodes every batch it is given; the
vectors go to Parquet as a `fixed_size_list<float>` column beside the row id and the text.

    python examples/ray_embed.py --model DIR --input texts.txt --output out/ [--workers 2]

Locally `ray.init()` starts a cluster of `--workers` CPUs; with RAY_ADDRESS set (or
`--address`), the same script runs on an existing multi-node cluster unchanged: there,
raise --workers to the number of actors wanted (one per core, or fewer actors with more
--threads each). Rows keep their ids, so the output can be joined back in any order.
"""

import argparse
import os

import numpy as np
import pyarrow as pa
import ray


class Embedder:
    """One per actor: the model loads once, then embeds batch after batch."""

    def __init__(self, model, threads, normalize):
        import bert4rs  # imported in the actor's process

        self.encoder = bert4rs.SentenceEncoder(model, threads=threads)
        self.normalize = normalize

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts = batch.column("text").to_pylist()
        vectors = self.encoder.encode(texts, batch_size=32,
                                      normalize_embeddings=self.normalize)
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
        column = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
        return batch.append_column("embedding", column)


def read_texts(path, limit=None):
    with open(path, encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f if line.strip()]
    return texts[:limit] if limit else texts


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="bert4rs / HF model directory")
    p.add_argument("--input", required=True, help="UTF-8 text, one text per line")
    p.add_argument("--output", required=True, help="Parquet output directory")
    p.add_argument("--workers", type=int, default=2, help="actors (local cluster CPUs)")
    p.add_argument("--threads", type=int, default=1, help="compute threads per actor")
    p.add_argument("--batch-size", type=int, default=256, help="rows per map_batches call")
    p.add_argument("--normalize", action="store_true", help="L2-normalise the vectors (default: as the model declares)")
    p.add_argument("--limit", type=int, default=None, help="only the first N texts")
    p.add_argument("--address", default=os.environ.get("RAY_ADDRESS"),
                   help="an existing cluster (default: start a local one)")
    a = p.parse_args()
    if not os.path.isdir(a.model):
        p.error(f"--model {a.model}: no such directory")
    texts = read_texts(a.input, a.limit)
    if not texts:
        p.error(f"--input {a.input}: no texts")

    if a.address:
        ray.init(address=a.address)
    else:
        ray.init(num_cpus=a.workers * a.threads, include_dashboard=False)
    table = pa.table({"id": np.arange(len(texts)), "text": texts})
    # One block per batch-sized slice, so every actor has work from the start (a single
    # table is a single block; repartitioning would need a CPU the actors already hold).
    slices = [table.slice(i, a.batch_size) for i in range(0, len(texts), a.batch_size)]
    ds = ray.data.from_arrow(slices)
    ds = ds.map_batches(
        Embedder,
        fn_constructor_args=(a.model, a.threads, True if a.normalize else None),
        batch_format="pyarrow",
        batch_size=a.batch_size,
        concurrency=a.workers,
        num_cpus=a.threads,
    )
    ds.write_parquet(a.output)
    print(f"{len(texts)} texts embedded by {a.workers} actors → {a.output}")


if __name__ == "__main__":
    main()
