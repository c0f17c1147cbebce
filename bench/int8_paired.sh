#!/usr/bin/env bash
# bert4rs int8 (8-bit activation codes by default) against ONNX Runtime's dynamic int8 of the
# same weights, in PAIRS: each round times ours, then ORT, seconds apart, and the ratio of
# each pair's medians is printed (and of each pair's fastest runs, the least disturbed
# ones), then the median ratio over the rounds. On a shared host
# whose speed drifts for minutes, a pair shares its minute where `bench/int8.sh`'s rounds
# (five of ours, then ORT's) do not.
#   bash bench/int8_paired.sh [MODEL=bert-base|minilm] [BATCH=8] [SEQ=128] [ROUNDS=7] [ITERS=10] [BITS=8]
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-bert-base}" batch="${2:-8}" seq="${3:-128}" rounds="${4:-7}" iters="${5:-10}" bits="${6:-8}"
py=$(bash reference/setup.sh | tail -1)
cache="${BERT4RS_CACHE:-$HOME/.cache/bert4rs}"
cargo build -q --release --bin bert4rs --example bench_encoder
case "$model" in
  bert-base)
    dir="$cache/bench/bert-base"
    [ -f "$dir/model.safetensors" ] || "$py" reference/make_bench_model.py --out "$dir" --preset bert-base --seed 0 >&2 ;;
  minilm) dir=$(./target/release/bert4rs fetch minilm | cut -f2) ;;
  *) echo "int8_paired.sh: MODEL is bert-base or minilm, not '$model'" >&2; exit 2 ;;
esac
common=(--model-dir "$dir" --batch "$batch" --seq "$seq" --threads 2 --warmup 3 --iters "$iters")
out=$(mktemp)
for round in $(seq "$rounds"); do
  ./target/release/examples/bench_encoder "${common[@]}" --int8 --int8-activations "$bits" >>"$out"
  "$py" bench/torch_bench.py "${common[@]}" --onnx --int8 --int8-only 2>/dev/null >>"$out"
done
"$py" - "$out" "$model $batch x $seq, $bits-bit codes, 2 threads" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ours = [r["ms"] for r in rows if r["impl"].startswith("bert4rs")]
ort = [r["ms"] for r in rows if r["impl"] == "onnxruntime-int8"]
fastest = [(r["min_ms"], s["min_ms"]) for r, s in zip(
    (r for r in rows if r["impl"].startswith("bert4rs")),
    (r for r in rows if r["impl"] == "onnxruntime-int8"))]
ratios = [o / b for b, o in zip(ours, ort)]
fast_ratios = [o / b for b, o in fastest]
print(f"{sys.argv[2]}: ms per batch, ours / ORT int8 -> ratio (median of each run; fastest run)")
for i, (b, o, q, (fb, fo), fq) in enumerate(zip(ours, ort, ratios, fastest, fast_ratios), 1):
    print(f"  round {i}: {b:8.1f} / {o:8.1f} -> {q:.3f}x;  {fb:8.1f} / {fo:8.1f} -> {fq:.3f}x")
print(f"median ratio {statistics.median(ratios):.3f}x (range {min(ratios):.3f}-{max(ratios):.3f}); "
      f"medians {statistics.median(ours):.1f} vs {statistics.median(ort):.1f} ms")
print(f"fastest runs: median ratio {statistics.median(fast_ratios):.3f}x; "
      f"fastest of all {min(f for f, _ in fastest):.1f} vs {min(f for _, f in fastest):.1f} ms")
PY
