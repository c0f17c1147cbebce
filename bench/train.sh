#!/usr/bin/env bash
# Training-step benchmark: bert4rs vs PyTorch in one run, same machine, same thread count,
# f32, same weights, same batch: forward (dropout on) + CE on a CLS linear head + backward +
# AdamW. BERT-base shape at 8 x 128 and the real MiniLM at 32 x 64.
#   bash bench/train.sh [THREADS] [ITERS]
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"
iters="${2:-5}"
py=$(bash reference/setup.sh | tail -1)
cache="${BERT4RS_CACHE:-$HOME/.cache/bert4rs}"
base="$cache/bench/bert-base"
[ -f "$base/model.safetensors" ] || "$py" reference/make_bench_model.py --out "$base" --preset bert-base --seed 0 >&2
cargo build -q --release --bin bert4rs --example bench_train
minilm=$(./target/release/bert4rs fetch minilm | cut -f2)
out=$(mktemp)
for shape in "minilm 32 64 $minilm" "bert-base 8 128 $base"; do
  set -- $shape
  echo "== $1 batch $2 x seq $3" >&2
  ./target/release/examples/bench_train --model-dir "$4" --batch "$2" --seq "$3" --threads "$threads" --iters "$iters" | sed "s/^{/{\"model\": \"$1\", /" >>"$out"
  "$py" bench/torch_train_bench.py --model-dir "$4" --batch "$2" --seq "$3" --threads "$threads" --iters "$iters" 2>/dev/null | sed "s/^{/{\"model\": \"$1\", /" >>"$out"
  # (prints nothing unless this is an AMD CPU with AVX-512)
  bash bench/mkl512.sh "$py" bench/torch_train_bench.py --model-dir "$4" --batch "$2" --seq "$3" --threads "$threads" --iters "$iters" 2>/dev/null | sed "s/^{/{\"model\": \"$1\", /" >>"$out"
done
"$py" - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
# "torch/ours": PyTorch as installed over this row; torch-mkl512 (AMD + AVX-512 only) is
# PyTorch with MKL's AVX-512 kernels forced (bench/mkl_intel_cpu.c).
print(f"{'model':10} {'shape':>8} {'impl':12} {'step ms':>9} {'fwd':>8} {'bwd':>8} {'optim':>7} {'torch/ours':>10}")
for key in dict.fromkeys((r["model"], r["batch"], r["seq"]) for r in rows):
    group = [r for r in rows if (r["model"], r["batch"], r["seq"]) == key]
    torch = next(r for r in group if r["impl"] == "torch")
    for r in group:
        print(f"{key[0]:10} {f'{key[1]}x{key[2]}':>8} {r['impl']:12} {r['ms']:9.1f} {r['forward_ms']:8.1f} "
              f"{r['backward_ms']:8.1f} {r['optimizer_ms']:7.1f} {torch['ms'] / r['ms']:9.2f}x")
PY
rm -f "$out"
