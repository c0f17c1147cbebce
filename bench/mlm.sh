#!/usr/bin/env bash
# Masked-LM step benchmark: bert4rs vs PyTorch (BertForMaskedLM + HF's
# DataCollatorForLanguageModeling) in one run, same machine, threads, f32, config and batch:
# masking + forward (dropout on) + loss + backward + clipping + AdamW, on configs/zh-bert-small's
# shape and packed Chinese text.
#   bash bench/mlm.sh [THREADS] [BATCH] [SEQ] [ITERS]
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"; batch="${2:-64}"; seq="${3:-128}"; iters="${4:-5}"
py=$(bash reference/setup.sh | tail -1)
cargo build -q --release --bin bert4rs --example bench_mlm
# The pre-training text and vocabulary of bench/zh_bert.sh, else the test fixtures' corpus.
tok=runs/zh-vocab text=runs/zh-mlm.txt
[ -f "$tok/tokenizer.json" ] && [ -f "$text" ] || { tok=tests/fixtures/tokenizer_train/wordpiece; text=tests/fixtures/tokenizer_train/corpus.txt; }
ours=$(BERT4RS_LOG=warn ./target/release/examples/bench_mlm --model-dir configs/zh-bert-small --tokenizer "$tok" --text "$text" --batch "$batch" --seq "$seq" --threads "$threads" --iters "$iters" 2>/dev/null)
theirs=$("$py" bench/torch_mlm_bench.py --model-dir configs/zh-bert-small --tokenizer "$tok" --text "$text" --batch "$batch" --seq "$seq" --threads "$threads" --iters "$iters" 2>/dev/null)
"$py" - "$ours" "$theirs" <<'PY'
import json, sys
ours, torch = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"{'impl':8} {'step ms':>8} {'of it masking':>14}   shape {ours['batch']}x{ours['seq']}, {ours['threads']} threads")
for r in (ours, torch):
    print(f"{r['impl']:8} {r['ms']:8.1f} {r['masking_ms']:14.1f}")
print(f"torch / bert4rs: {torch['ms'] / ours['ms']:.2f}x")
PY
