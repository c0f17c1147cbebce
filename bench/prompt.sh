#!/usr/bin/env bash
# Prompt-based classification (PET) vs a classifier head, on Pang & Lee sentence polarity:
# zero-shot, and 16 training sentences per label (three draws: split_seed 42, 43, 44), the
# same sentences for both; dev picks the best epoch, test is scored once.
# Needs runs/minilm-mlm/best (configs/minilm-mlm.toml) and runs/polarity/split (configs/polarity.toml).
#   bash bench/prompt.sh [SHOTS=16]
set -euo pipefail
cd "$(dirname "$0")/.."
shots=${1:-16}
bin=./target/release/bert4rs
split=runs/polarity/split
[ -d "$split" ] || $bin train --config configs/polarity.toml --dry-run > /dev/null
acc() { python3 -c "import json,sys; d=json.load(sys.stdin); print(f\"{100*d['classification']['accuracy']:.2f}\")"; }
test_acc() { tail -1 "$1/metrics.jsonl" | python3 -c "import json,sys; d=json.load(sys.stdin)['evaluation']; print(f\"{100*d['classification']['accuracy']:.2f}\")"; }
echo "zero-shot PET test accuracy: $($bin prompt --model runs/minilm-mlm/best --data $split/test.jsonl \
  --template '{text} It was [MASK].' --verbalizer '{"1": "great", "-1": "terrible"}' | acc) %"
for s in 42 43 44; do
  out=runs/prompt-bench/pet-$shots-$s
  $bin train --config configs/polarity-prompt.toml --set data.shots=$shots --set data.split_seed=$s \
    --set output_dir="\"$out\"" > "$out.log" 2>&1
  pet=$(test_acc "$out")
  out2=runs/prompt-bench/head-$shots-$s
  $bin train --config configs/polarity.toml --set model='"runs/minilm-mlm/best"' \
    --set data.text_field='"text"' --set data.label_field='"label"' --set data.train="\"$split/train.jsonl\"" --set data.dev="\"$split/dev.jsonl\"" \
    --set data.test="\"$split/test.jsonl\"" --set data.shots=$shots --set data.split_seed=$s \
    --set train.epochs=10 --set train.batch_size=4 --set optimizer.lr=1e-5 \
    --set output_dir="\"$out2\"" > "$out2.log" 2>&1
  echo "split_seed $s: $shots-shot PET test $pet % · classifier head on the same sentences $(test_acc "$out2") %"
done
