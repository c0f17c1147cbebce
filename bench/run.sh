#!/usr/bin/env bash
# Forward-pass benchmark: bert4rs vs PyTorch vs ONNX Runtime in one run, same machine, same
# thread count, f32, eval, no grad, same weights (a random BERT-base-shaped model and the
# real MiniLM). Prints tokens/s, the ratio to PyTorch, and the fraction of the measured FMA
# peak each reaches. Sets up its own Python venv (reference/setup.sh) on first use.
#   bash bench/run.sh [THREADS] [ITERS]
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"
iters="${2:-20}"
py=$(bash reference/setup.sh | tail -1)
cache="${BERT4RS_CACHE:-$HOME/.cache/bert4rs}"
base="$cache/bench/bert-base"
[ -f "$base/model.safetensors" ] || "$py" reference/make_bench_model.py --out "$base" --preset bert-base --seed 0 >&2
cargo build -q --release --bin bert4rs --example bench_encoder
minilm=$(./target/release/bert4rs fetch minilm | cut -f2)
bench=./target/release/examples/bench_encoder
out=$(mktemp)
$bench --peak --threads "$threads" >>"$out"
for shape in "bert-base 8 128 $base" "bert-base 1 32 $base" "minilm 32 64 $minilm"; do
  set -- $shape
  echo "== $1 batch $2 x seq $3" >&2
  $bench --model-dir "$4" --batch "$2" --seq "$3" --threads "$threads" --warmup 3 --iters "$iters" | sed "s/^{/{\"model\": \"$1\", /" >>"$out"
  "$py" bench/torch_bench.py --model-dir "$4" --batch "$2" --seq "$3" --threads "$threads" \
    --warmup 3 --iters "$iters" --onnx 2>/dev/null | sed "s/^{/{\"model\": \"$1\", /" >>"$out"
  # (prints nothing unless this is an AMD CPU with AVX-512)
  bash bench/mkl512.sh "$py" bench/torch_bench.py --model-dir "$4" --batch "$2" --seq "$3" \
    --threads "$threads" --warmup 3 --iters "$iters" 2>/dev/null | sed "s/^{/{\"model\": \"$1\", /" >>"$out"
done
"$py" - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
probe = next(r for r in rows if r["impl"] == "fma-peak")
peak = probe["gflops"]
cfg = {"bert-base": (768, 3072, 12), "minilm": (384, 1536, 6)}
print(f"measured f32 FMA peak: {peak:.0f} GFLOP/s on {rows[0]['threads']} threads; bert4rs GEMM: {probe['gemm']}")
# "vs best torch": against the faster of PyTorch as installed and PyTorch with MKL's AVX-512
# kernels forced (the latter only runs on AMD CPUs with AVX-512; see bench/mkl_intel_cpu.c).
print(f"{'model':10} {'shape':>8} {'impl':12} {'ms':>9} {'tokens/s':>10} {'vs torch':>9} "
      f"{'vs best torch':>14} {'% peak':>7}")
for key in dict.fromkeys((r["model"], r["batch"], r["seq"]) for r in rows if "model" in r):
    group = [r for r in rows if (r.get("model"), r.get("batch"), r.get("seq")) == key]
    torch = next(r for r in group if r["impl"] == "torch")
    best = min(r["ms"] for r in group if r["impl"].startswith("torch"))
    h, i, l = cfg[key[0]]
    b, t = key[1], key[2]
    flops = b * t * l * 2 * (4 * h * h + 2 * h * i + 2 * t * h)
    for r in group:
        pct = flops / (r["ms"] / 1e3) / 1e9 / peak * 100
        print(f"{key[0]:10} {f'{b}x{t}':>8} {r['impl']:12} {r['ms']:9.1f} {r['tokens_per_s']:10.0f} "
              f"{torch['ms'] / r['ms']:8.2f}x {best / r['ms']:13.2f}x {pct:6.1f}%")
PY
rm -f "$out"
