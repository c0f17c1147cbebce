#!/usr/bin/env bash
# Head pruning on Pang & Lee polarity (configs/polarity.toml): the fine-tuned 6-layer MiniLM
# (trained first if runs/polarity/best is missing; 72 heads) with 0 / 25 / 50 % of its heads
# removed by importance on the dev set (`bert4rs prune-heads`), each evaluated as pruned and
# after more fine-tuning (best dev checkpoint). Prints test accuracy and the time to evaluate
# the test set five times over (2,000 sentences, load included, best of 3), and (with the
# reference venv) checks that transformers loads each pruned directory and gives our
# probabilities.
#   bash bench/prune.sh [EPOCHS=1] [LR=2e-5]
set -euo pipefail
cd "$(dirname "$0")/.."
epochs="${1:-1}"
lr="${2:-2e-5}"
cargo build -q --release --bin bert4rs
b=./target/release/bert4rs
[ -f runs/polarity/best/config.json ] || $b train --config configs/polarity.toml >/dev/null
dev=runs/polarity/split/dev.jsonl
test=runs/polarity/split/test.jsonl
py="$HOME/.cache/bert4rs/ref-venv/bin/python"
timed=runs/prune-timing.jsonl
for _ in 1 2 3 4 5; do cat "$test"; done > $timed
row() {
  local t0 t1 acc best=999999
  acc=$($b eval --model "$1" --data "$test" | python3 -c "import json,sys; print(json.load(sys.stdin)['classification']['accuracy'])")
  for _ in 1 2 3; do
    t0=$(date +%s%N)
    $b eval --model "$1" --data $timed >/dev/null
    t1=$(date +%s%N)
    best=$(( (t1 - t0) / 1000000 < best ? (t1 - t0) / 1000000 : best ))
  done
  printf "%-46s %8.4f %8d ms\n" "$2" "$acc" $best
}
printf "%-46s %8s %11s\n" "model (test: 400 sentences)" "accuracy" "2,000 sentences"
row runs/polarity/best "0 % pruned (72 heads)"
for pct in 25 50; do
  out=runs/prune-$pct
  [ -f $out/pruned/config.json ] || $b prune-heads --model runs/polarity/best --data $dev \
    --fraction "0.$pct" --output $out/pruned >/dev/null 2>&1
  [ -f $out/tuned/best/config.json ] || $b train --config configs/polarity.toml \
    --set "model=\"$out/pruned\"" --set "output_dir=\"$out/tuned\"" \
    --set "train.epochs=$epochs" --set "optimizer.lr=$lr" >/dev/null 2>&1
  row $out/pruned "$pct % pruned, no further training"
  row $out/tuned/best "$pct % pruned, + $epochs epoch(s) at lr $lr"
  if [ -x "$py" ]; then
    $b predict --model $out/tuned/best --input "$test" --output $out/pred.jsonl 2>/dev/null
    "$py" reference/check_pruned.py $out/tuned/best "$test" $out/pred.jsonl
  fi
done
