#!/usr/bin/env bash
# The tricks table: the polarity recipe (configs/polarity.toml) with one trick at a time,
# for each seed; appends {"trick", "seed", "dev", "test"} lines to runs/results/tricks.jsonl.
#   bash bench/tricks.sh [EPOCHS=3] [SEED ...]   (default seeds: 42 43 44)
set -euo pipefail
cd "$(dirname "$0")/.."
epochs="${1:-3}"; shift || true
seeds="${*:-42 43 44}"
cargo build -q --release --bin bert4rs
mkdir -p runs/results runs/tricks
declare -A tricks=(
  [baseline]="--set schedule.warmup_ratio=0"
  [warmup]="--set schedule.warmup_ratio=0.1"
  [ema]="--set schedule.warmup_ratio=0 --set tricks.ema_decay=0.99"
  [fgm]="--set schedule.warmup_ratio=0 --set tricks.adversarial=\"fgm\" --set tricks.adv_epsilon=1.0"
  [rdrop]="--set schedule.warmup_ratio=0 --set tricks.rdrop_alpha=1.0"
  [layerwise]="--set schedule.warmup_ratio=0 --set optimizer.layer_decay=0.9"
)
for s in $seeds; do
  for t in baseline warmup ema fgm rdrop layerwise; do
    dir=runs/tricks/$t-e$epochs-s$s
    # shellcheck disable=SC2086
    ./target/release/bert4rs train --config configs/polarity.toml --set seed=$s --set train.epochs=$epochs \
      --set "output_dir=\"$dir\"" ${tricks[$t]} 2>"$dir.log" \
      | python3 -c "import json,sys; r=json.load(sys.stdin); print(json.dumps({'trick':'$t','epochs':$epochs,'seed':$s,'dev':r['best_dev']['classification']['accuracy'],'test':r['test']['classification']['accuracy']}))" \
      >>runs/results/tricks.jsonl
  done
done
python3 - <<'PY'
import json, statistics
rows = [json.loads(l) for l in open("runs/results/tricks.jsonl")]
print(f"{'trick':10} {'epochs':>6} {'seeds':>12} {'dev':>7} {'test':>7}")
for key in dict.fromkeys((r["trick"], r["epochs"]) for r in rows):
    g = [r for r in rows if (r["trick"], r["epochs"]) == key]
    print(f"{key[0]:10} {key[1]:6} {str([r['seed'] for r in g]):>12} {statistics.mean(r['dev'] for r in g):7.4f} {statistics.mean(r['test'] for r in g):7.4f}")
PY
