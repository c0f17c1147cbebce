#!/usr/bin/env bash
# Generation benchmark: bert4rs vs HF `generate` in one run, same machine, same threads, f32,
# same weights and prompts: greedy, KV cache, 128 new tokens from 32-token prompts, GPT-2-small
# shape (12 layers, 768, 50257 vocab, random weights), batch 1 and 8. Also checks that both
# produce the same first tokens.
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
  "$py" bench/torch_generate_bench.py --model-dir "$model" --batch "$batch" --threads "$threads" --iters "$iters" 2>/dev/null >>"$out"
  # (prints nothing unless this is an AMD CPU with AVX-512)
  bash bench/mkl512.sh "$py" bench/torch_generate_bench.py --model-dir "$model" --batch "$batch" --threads "$threads" --iters "$iters" 2>/dev/null >>"$out"
done
"$py" - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'batch':>5} {'impl':12} {'ms':>9} {'tokens/s':>9} {'ours/torch':>10} same-ids")
for b in dict.fromkeys(r["batch"] for r in rows):
    group = [r for r in rows if r["batch"] == b]
    torch = next(r for r in group if r["impl"] == "torch")
    for r in group:
        same = r["first_row"] == torch["first_row"]
        print(f"{b:5} {r['impl']:12} {r['ms']:9.0f} {r['tokens_per_s']:9.1f} {r['tokens_per_s'] / torch['tokens_per_s']:9.2f}x {same}")
PY
rm -f "$out"
