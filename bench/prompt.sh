#!/usr/bin/env bash
# Prompt-based classification (PET) vs a classifier head, on Pang & Lee sentence polarity:
# zero-shot, and 16 training sentences per label (three draws: split_seed 42, 43, 44), the
# same sentences for both; 30 epochs of 8 steps (PET's ~250 steps), dev every 40 steps picks
# the best, test is scored once. P-tuning (two learned tokens, the masked LM frozen) on the
# first draw. Needs runs/minilm-mlm/best or MLM=DIR (configs/minilm-mlm.toml) and
# runs/polarity/split (configs/polarity.toml's split, written by its --dry-run).
#   bash bench/prompt.sh [SHOTS=16]
set -euo pipefail
cd "$(dirname "$0")/.."
shots=${1:-16}
mlm=${MLM:-runs/minilm-mlm/best}
bin=./target/release/bert4rs
split=runs/polarity/split
out=runs/prompt-bench
mkdir -p "$out"
[ -d "$split" ] || $bin train --config configs/polarity.toml --dry-run > /dev/null
acc() { python3 -c "import json,sys; d=json.load(sys.stdin); print(f\"{100*d['classification']['accuracy']:.2f}\")"; }
test_acc() { tail -1 "$1/metrics.jsonl" | python3 -c "import json,sys; d=json.load(sys.stdin)['evaluation']; print(f\"{100*d['classification']['accuracy']:.2f}\")"; }
common=(--set model="\"$mlm\"" --set data.shots=$shots --set train.epochs=30 --set train.eval_every=40
        --set optimizer.lr=2e-5)
echo "zero-shot PET test accuracy: $($bin prompt --model "$mlm" --data $split/test.jsonl \
  --template '{text} It was [MASK].' --verbalizer '{"1": "great", "-1": "terrible"}' | acc) %"
for s in 42 43 44; do
  $bin train --config configs/polarity-prompt.toml "${common[@]}" --set data.split_seed=$s \
    --set output_dir="\"$out/pet-$s\"" > "$out/pet-$s.log" 2>&1
  $bin train --config configs/polarity.toml "${common[@]}" --set data.split_seed=$s \
    --set data.text_field='"text"' --set data.label_field='"label"' --set data.train="\"$split/train.jsonl\"" \
    --set data.dev="\"$split/dev.jsonl\"" --set data.test="\"$split/test.jsonl\"" \
    --set train.batch_size=4 --set optimizer.head_lr=1e-3 \
    --set output_dir="\"$out/head-$s\"" > "$out/head-$s.log" 2>&1
  echo "split_seed $s: $shots-shot PET test $(test_acc "$out/pet-$s") % · classifier head (head lr 1e-3) on the same sentences $(test_acc "$out/head-$s") %"
done
$bin train --config configs/polarity-prompt.toml "${common[@]}" --set data.split_seed=42 \
  --set task.prompt.template='"[P0] {text} [P1] It was [MASK]."' --set task.prompt.learned_tokens=2 \
  --set optimizer.freeze='["embeddings", "encoder", "cls"]' --set optimizer.lr=1e-3 \
  --set output_dir="\"$out/ptuning-42\"" > "$out/ptuning-42.log" 2>&1
echo "split_seed 42: $shots-shot P-tuning (2 learned tokens, MLM frozen, lr 1e-3) test $(test_acc "$out/ptuning-42") %"
