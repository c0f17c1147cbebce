#!/usr/bin/env bash
# Our own Chinese BERT end to end: the pre-training text (People's Daily, MSRA *training*
# sentences, the training split of the reviews), a WordPiece vocabulary, whole-word MLM
# pre-training (configs/zh-bert-small.toml), then review sentiment and MSRA NER (+ CRF) from
# the pre-trained model and from a new model of the same shape, side by side.
#   bash bench/zh_bert.sh [--skip-pretrain]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release --bin bert4rs
b=./target/release/bert4rs
mkdir -p runs
timed() { local s; s=$(date +%s); "$@"; echo "  ($(( ($(date +%s) - s) / 60 )) min $(( ($(date +%s) - s) % 60 )) s)" >&2; }
if [ "${1:-}" != "--skip-pretrain" ]; then
  $b prepare zh-mlm --output runs/zh-mlm.txt
  $b train-tokenizer --input runs/zh-mlm.txt --vocab-size 8000 --output runs/zh-vocab >/dev/null
  timed $b pretrain --config configs/zh-bert-small.toml >runs/zh-bert-small.json 2>runs/zh-bert-small.log
fi
$b prepare zh-sentiment --output runs/zh-sentiment
msra=$($b fetch msra-ner | cut -f2)
mkdir -p runs/msra-data
tr -d '\r' <"$msra/msra_train.txt" | awk -v RS= -v ORS='\n\n' \
  '{ if (NR % 20 == 0) print > "runs/msra-data/dev.txt"; else print > "runs/msra-data/train.txt" }'
awk -v RS= -v ORS='\n\n' 'NR <= 10000' runs/msra-data/train.txt >runs/msra-data/train-small.txt
# The same architecture, new: config.json and the vocabulary only.
mkdir -p runs/zh-bert-scratch
cp configs/zh-bert-small/config.json runs/zh-vocab/* runs/zh-bert-scratch/
for init in pretrained scratch; do
  model=runs/zh-bert-small/best; [ "$init" = scratch ] && model=runs/zh-bert-scratch
  for task in zh-sentiment msra-zh-bert-crf; do
    out="runs/$task-$init"
    timed $b train --config "configs/$task.toml" --set "model=\"$model\"" --set "output_dir=\"$out\"" \
      >"$out.json" 2>"$out.log"
    python3 - "$out.json" "$task" "$init" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); t, d = s["test"], s["best_dev"]
if "entities" in t:
    print(f"{sys.argv[2]} ({sys.argv[3]}): test entity micro F1 {t['entities']['micro_f1']:.4f} (dev {d['entities']['micro_f1']:.4f})")
else:
    print(f"{sys.argv[2]} ({sys.argv[3]}): test accuracy {t['classification']['accuracy']:.4f} (dev {d['classification']['accuracy']:.4f})")
PY
  done
done
