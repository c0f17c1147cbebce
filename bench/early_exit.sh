#!/usr/bin/env bash
# Early exit (DeeBERT) on Pang & Lee polarity: off-ramps trained on the fine-tuned MiniLM
# (runs/polarity/best, trained first if missing) with the encoder and head frozen
# (`task.early_exit = "frozen"`, 3 epochs at lr LR, best dev loss), then the accuracy / speed
# curve over exit thresholds: test accuracy, average layers run, and the time to evaluate the
# test set five times over (2,000 sentences, load included, best of 3).
#   bash bench/early_exit.sh [LR=2e-4] [THRESHOLDS="0 0.1 0.2 0.3 0.4 0.5 0.6 0.7"]
set -euo pipefail
cd "$(dirname "$0")/.."
lr="${1:-2e-4}"
thresholds="${2:-0 0.1 0.2 0.3 0.4 0.5 0.6 0.7}"
cargo build -q --release --bin bert4rs
b=./target/release/bert4rs
[ -f runs/polarity/best/config.json ] || $b train --config configs/polarity.toml >/dev/null
out=runs/early-exit
[ -f $out/best/config.json ] || $b train --config configs/polarity.toml \
  --set 'model="runs/polarity/best"' --set "output_dir=\"$out\"" \
  --set 'task.early_exit="frozen"' --set 'train.metric="loss"' --set "optimizer.lr=$lr" \
  >/dev/null 2>&1
test=runs/polarity/split/test.jsonl
timed=runs/early-exit-timing.jsonl
for _ in 1 2 3 4 5; do cat "$test"; done > $timed
printf "%-10s %9s %15s %16s\n" "entropy <" "accuracy" "average layers" "2,000 sentences"
for e in $thresholds; do
  read -r acc layers < <($b eval --model $out/best --data "$test" --early-exit-entropy "$e" |
    python3 -c "import json,sys; d=json.load(sys.stdin); print(d['classification']['accuracy'], d['scores']['average_layers'])")
  best=999999
  for _ in 1 2 3; do
    t0=$(date +%s%N)
    $b eval --model $out/best --data $timed --early-exit-entropy "$e" >/dev/null
    t1=$(date +%s%N)
    best=$(( (t1 - t0) / 1000000 < best ? (t1 - t0) / 1000000 : best ))
  done
  printf "%-10s %9.4f %15.2f %13d ms\n" "$e" "$acc" "$layers" "$best"
done
t0=$(date +%s%N); $b eval --model runs/polarity/best --data $timed >/dev/null; t1=$(date +%s%N)
echo "without ramps (plain eval of runs/polarity/best): $(( (t1 - t0) / 1000000 )) ms"
