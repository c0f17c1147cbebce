#!/usr/bin/env bash
# Encoder speed against ONNX Runtime, f32 and dynamic int8, in one run: bert4rs f32 (and
# with bf16 weights) vs ORT f32 and bert4rs --int8 (12-bit activation codes; 8-bit:
# "int8-a8"; 7-bit: "int8-a7") vs ORT's `quantize_dynamic` of the same exported weights (and bert4rs's resident memory after loading), at
# BERT-base 8 x 128 and 1 x 32 and MiniLM 32 x 64, same thread count. Prints each ratio and
# the share of the machine's measured f32 FMA peak (int8 rows: of its measured int8
# multiply-add peak, `vpdpbusd` on AVX-512 VNNI or AVX-VNNI, `vpmaddubsw` + `vpmaddwd` on AVX2).
# ROUNDS > 1 runs every measurement that many times, interleaved, and keeps each one's best
# median (on a shared host a slow minute otherwise lands on whichever side runs in it).
#   bash bench/int8.sh [THREADS] [ITERS] [ROUNDS=1]
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"
iters="${2:-20}"
rounds="${3:-1}"
py=$(bash reference/setup.sh | tail -1)
cache="${BERT4RS_CACHE:-$HOME/.cache/bert4rs}"
base="$cache/bench/bert-base"
[ -f "$base/model.safetensors" ] || "$py" reference/make_bench_model.py --out "$base" --preset bert-base --seed 0 >&2
cargo build -q --release --bin bert4rs --example bench_encoder
minilm=$(./target/release/bert4rs fetch minilm | cut -f2)
bench=./target/release/examples/bench_encoder
out=$(mktemp)
$bench --peak --threads "$threads" >>"$out"
for round in $(seq "$rounds"); do
for shape in "bert-base 8 128 $base" "bert-base 1 32 $base" "minilm 32 64 $minilm"; do
  set -- $shape
  echo "== round $round: $1 batch $2 x seq $3" >&2
  for q in "" --bf16 --int8 "--int8 --int8-activations 8" "--int8 --int8-activations 7"; do
    $bench --model-dir "$4" --batch "$2" --seq "$3" --threads "$threads" --warmup 3 --iters "$iters" $q |
      sed "s/^{/{\"model\": \"$1\", /" >>"$out"
  done
  "$py" bench/torch_bench.py --model-dir "$4" --batch "$2" --seq "$3" --threads "$threads" \
    --warmup 3 --iters "$iters" --onnx --int8 2>/dev/null | sed "s/^{/{\"model\": \"$1\", /" >>"$out"
done
done
"$py" - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
peak = next(r for r in rows if r["impl"] == "fma-peak")["gflops"]
ipeak = next((r["gflops"] for r in rows if r["impl"] == "int8-peak"), 2 * peak)
cfg = {"bert-base": (768, 3072, 12), "minilm": (384, 1536, 6)}
peer = {"bert4rs": "onnxruntime", "bert4rs-bf16": "onnxruntime", "bert4rs-int8": "onnxruntime-int8",
        "bert4rs-int8-a8": "onnxruntime-int8", "bert4rs-int8-a7": "onnxruntime-int8"}
print(f"measured peaks on {rows[0]['threads']} threads: f32 FMA {peak:.0f} GFLOP/s, int8 multiply-add {ipeak:.0f} GOP/s")
print(f"{'model':10} {'shape':>8} {'impl':17} {'ms':>9} {'vs ORT same dtype':>18} {'% peak':>7} {'RSS MB':>7}")
for key in dict.fromkeys((r["model"], r["batch"], r["seq"]) for r in rows if "model" in r):
    group = {}
    for r in rows:
        if (r.get("model"), r.get("batch"), r.get("seq")) == key and (
                r["impl"] not in group or r["ms"] < group[r["impl"]]["ms"]):
            group[r["impl"]] = r
    h, i, l = cfg[key[0]]
    b, t = key[1], key[2]
    flops = b * t * l * 2 * (4 * h * h + 2 * h * i + 2 * t * h)
    for name, r in group.items():
        p = ipeak if "int8" in name else peak
        pct = flops / (r["ms"] / 1e3) / 1e9 / p * 100
        ratio = f"{group[peer[name]]['ms'] / r['ms']:.2f}x" if name in peer and peer[name] in group else ""
        rss = f"{r['rss_mb']:.0f}" if "rss_mb" in r else ""
        print(f"{key[0]:10} {f'{b}x{t}':>8} {name:17} {r['ms']:9.1f} {ratio:>18} {pct:6.1f}% {rss:>7}")
PY
rm -f "$out"
