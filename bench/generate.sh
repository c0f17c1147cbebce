#!/usr/bin/env bash
# Generation benchmark: bert4rs vs HF `generate` and CTranslate2 in one run, same machine,
# same threads, same weights and prompts: greedy, KV cache, 128 new tokens from 32-token
# prompts, GPT-2-small shape (12 layers, 768, 50257 vocab, random weights), batch 1 and 8.
# f32 rows against HF and CTranslate2's float32; bert4rs --int8 (int8 weights, dynamically quantised activations) against
# CTranslate2's int8_float32. Also checks that the f32 sides produce the same first tokens.
#   bash bench/generate.sh [THREADS] [ITERS]
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"
iters="${2:-3}"
py=$(bash reference/setup.sh | tail -1)
cargo build -q --release --bin bert4rs --example bench_generate
cache="${BERT4RS_CACHE:-$HOME/.cache/bert4rs}"
model="$cache/bench/gpt2-small-random"
bpe=$(./target/release/bert4rs fetch gpt2-bpe | cut -f2)
[ -f "$model/model.safetensors" ] || "$py" reference/make_gpt2_bench_model.py --out "$model" --bpe "$bpe" >&2
out=$(mktemp)
for batch in 1 8; do
  echo "== batch $batch: 32-token prompt, 128 new tokens, $threads threads" >&2
  ./target/release/examples/bench_generate --model-dir "$model" --batch "$batch" --threads "$threads" --iters "$iters" >>"$out"
  ./target/release/examples/bench_generate --model-dir "$model" --batch "$batch" --threads "$threads" --iters "$iters" --int8 >>"$out"
  for q in float32 int8_float32; do
    "$py" bench/ct2_generate_bench.py --model-dir "$model" --batch "$batch" --threads "$threads" --iters "$iters" --quant "$q" 2>/dev/null >>"$out"
  done
  "$py" bench/torch_generate_bench.py --model-dir "$model" --batch "$batch" --threads "$threads" --iters "$iters" 2>/dev/null >>"$out"
  # (prints nothing unless this is an AMD CPU with AVX-512)
  bash bench/mkl512.sh "$py" bench/torch_generate_bench.py --model-dir "$model" --batch "$batch" --threads "$threads" --iters "$iters" 2>/dev/null >>"$out"
done
"$py" - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
# Each bert4rs row against the peers of the same precision.
peers = {"bert4rs": ["torch", "torch-mkl512", "ct2-fp32"], "bert4rs-int8": ["ct2-int8"]}
print(f"{'batch':>5} {'impl':13} {'ms':>8} {'tokens/s':>9}  ratios (peer ms / bert4rs ms)")
for b in dict.fromkeys(r["batch"] for r in rows):
    group = {r["impl"]: r for r in rows if r["batch"] == b}
    torch = group.get("torch")
    for r in group.values():
        same = "" if torch is None or r["impl"].endswith("int8") else f" same-ids={r['first_row'] == torch['first_row']}"
        ratios = " ".join(f"{p} {group[p]['ms'] / r['ms']:.2f}x" for p in peers.get(r["impl"], []) if p in group)
        print(f"{b:5} {r['impl']:13} {r['ms']:8.0f} {r['tokens_per_s']:9.1f}  {ratios}{same}")
base = {r["impl"]: r for r in rows if r["batch"] == 1}
for r in rows:
    if r["batch"] != 1 and r["impl"] in base:
        print(f"{r['impl']}: batch {r['batch']} takes {r['ms'] / base[r['impl']]['ms']:.2f}x batch 1")
PY
rm -f "$out"
