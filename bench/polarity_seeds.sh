#!/usr/bin/env bash
# bert4rs vs HF transformers on the polarity recipe (configs/polarity.toml), several seeds,
# same split files (written by bert4rs with split_seed 42). Appends one JSON line per run to
# runs/results/polarity.jsonl:
#   {"impl": "bert4rs"|"hf", "seed": S, "dev": acc, "test": acc}
#   bash bench/polarity_seeds.sh [SEED ...]      (default: 42 43 44)
set -euo pipefail
cd "$(dirname "$0")/.."
seeds="${*:-42 43 44}"
py=$(bash reference/setup.sh | tail -1)
cargo build -q --release --bin bert4rs
minilm=$(./target/release/bert4rs fetch minilm | cut -f2)
mkdir -p runs/results
out=runs/results/polarity.jsonl
for s in $seeds; do
  dir=runs/polarity-s$s
  ./target/release/bert4rs train --config configs/polarity.toml --set seed=$s --set "output_dir=\"$dir\"" \
    2>"$dir.log" | "$py" -c "import json,sys; r=json.load(sys.stdin); print(json.dumps({'impl':'bert4rs','seed':$s,'dev':r['best_dev']['classification']['accuracy'],'test':r['test']['classification']['accuracy']}))" >>"$out"
  "$py" reference/train_reference.py --split-dir "$dir/split" --model "$minilm" --pooling mean \
    --lr 5e-5 --epochs 3 --batch-size 32 --seed $s 2>/dev/null \
    | "$py" -c "import json,sys; r=json.load(sys.stdin); print(json.dumps({'impl':'hf','seed':$s,'dev':r['dev']['accuracy'],'test':r['test']['accuracy'],'s_per_step':r['seconds_per_step']}))" >>"$out"
done
"$py" - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for impl in ("bert4rs", "hf"):
    r = [x for x in rows if x["impl"] == impl]
    if r:
        print(f"{impl:8} seeds {[x['seed'] for x in r]} dev {statistics.mean(x['dev'] for x in r):.4f} "
              f"test {statistics.mean(x['test'] for x in r):.4f} (tests {[round(x['test'],4) for x in r]})")
PY
