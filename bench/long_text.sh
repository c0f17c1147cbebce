#!/usr/bin/env bash
# Long-document classification on the 1,500 full Pang & Lee reviews (configs/long-polarity.toml,
# MiniLM-L6, same split, seed and schedule for all three):
#   truncate  the first 512 tokens
#   windows   512-token windows, stride 128, at most 3 (1,280 tokens), mean-pooled, end to end
#   extended  the position table extended to 1,280 (hierarchical), max_length 1,280 directly
# Appends one JSON line per method to runs/results/long_text.jsonl: dev/test accuracy, training
# wall seconds, and the seconds `bert4rs eval` takes on the 300 test reviews.
#   bash bench/long_text.sh [METHOD ...]     (default: truncate windows extended)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release --bin bert4rs
b=./target/release/bert4rs
$b fetch minilm polarity-en >/dev/null
mkdir -p runs/results
out=runs/results/long_text.jsonl
[ -d runs/minilm-1280 ] || $b extend-positions --model asset:minilm --to 1280 --method hierarchical \
  --output runs/minilm-1280 >/dev/null

one() {
  local name=$1 len=$2; shift 2
  local dir=runs/long-$name t0 t1 t2
  t0=$(date +%s.%N)
  $b train --config configs/long-polarity.toml --set "output_dir=\"$dir\"" "$@" >"$dir.json" 2>"$dir.log"
  t1=$(date +%s.%N)
  $b eval --model "$dir/best" --data "$dir/split/test.jsonl" --max-length "$len" --batch-size 16 \
    >"$dir.eval.json" 2>/dev/null
  t2=$(date +%s.%N)
  python3 - "$name" "$dir" "$t0" "$t1" "$t2" >>"$out" <<'PY'
import json, sys
name, d, t0, t1, t2 = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:])
r = json.load(open(d + ".json"))
e = json.load(open(d + ".eval.json"))
print(json.dumps({"method": name, "dev": r["best_dev"]["classification"]["accuracy"],
                  "test": r["test"]["classification"]["accuracy"],
                  "eval_test": e["classification"]["accuracy"],
                  "train_s": round(t1 - t0, 1), "eval_s": round(t2 - t1, 1)}))
PY
  tail -1 "$out"
}

for m in ${*:-truncate windows extended}; do
  case $m in
    truncate) one truncate 512 ;;
    windows) one windows 512 --set 'task.windows={stride=128,max_windows=3,pool="mean"}' ;;
    extended) one extended 1280 --set 'model="runs/minilm-1280"' --set data.max_length=1280 ;;
    *) echo "unknown method $m (truncate, windows, extended)" >&2; exit 2 ;;
  esac
done
