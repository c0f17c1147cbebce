#!/usr/bin/env bash
# Two-tower retrieval benchmark: exact cosine top-k latency of `bert4rs index` against NumPy
# brute force and FAISS IndexFlatIP (same vectors, same queries, same threads, f32), one
# query at a time, and the check that our hits are the brute-force top-k.
#   bash bench/index.sh [THREADS=2] [COUNTS="100000 1000000"] [DIM=384]
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"
counts="${2:-100000 1000000}"
dim="${3:-384}"
py=$(bash reference/setup.sh | tail -1)
cargo build -q --release --example bench_index
dir="${BERT4RS_CACHE:-$HOME/.cache/bert4rs}/bench/index"
# OPENBLAS_CORETYPE / _L2_SIZE (set on some hosts for old OpenBLAS builds) slow a current NumPy.
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
export OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"
printf '%9s %4s %-11s %9s %8s %s\n' vectors dim impl p50_ms GB/s check
for n in $counts; do
  ours=$(./target/release/examples/bench_index --count "$n" --dim "$dim" --threads "$threads" --dir "$dir")
  echo "$ours" | "$py" bench/index_peer.py "$dir/queries-$dim.f32" "$threads"
done
