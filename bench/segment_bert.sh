#!/usr/bin/env bash
# Chinese word segmentation with BERT + CRF: our small Chinese BERT (configs/zh-bert-small.toml's
# shape and recipe) pre-trained by masked LM on `prepare zh-mlm`'s text *without* the
# segmentation dev and test sentences, then fine-tuned with a CRF on `prepare zh-seg`'s BIOES
# tags (configs/zh-seg-bert-crf.toml) and scored like bench/segment.sh, against jieba.
#   bash bench/segment_bert.sh [PRETRAIN_STEPS=0]
# PRETRAIN_STEPS > 0 stops pre-training after that many steps (resume later with `bert4rs
# pretrain ... --resume`, the same --sets); 0 runs the recipe's whole schedule (4 epochs,
# 4,560 steps, about 2 h of 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-0}"
cargo build -q --release --bin bert4rs
b=./target/release/bert4rs
d=runs/zh-seg-data
[ -f $d/test.jsonl ] || $b prepare zh-seg --output $d
timed() { local s; s=$(date +%s); "$@"; echo "  ($(( ($(date +%s) - s) / 60 )) min $(( ($(date +%s) - s) % 60 )) s)" >&2; }
if [ ! -f runs/zh-bert-seg/best/config.json ]; then
  $b prepare zh-mlm --output runs/zh-mlm.txt
  python3 - <<'PY'
import json
held = set()
for split in ("dev", "test"):
    for line in open(f"runs/zh-seg-data/{split}.jsonl"):
        held.add("".join(json.loads(line)["text"].split(" ")))
kept = dropped = 0
with open("runs/zh-mlm-seg.txt", "w") as out:
    for line in open("runs/zh-mlm.txt"):
        if line.rstrip("\n") in held:
            dropped += 1
        else:
            out.write(line)
            kept += 1
print(f"pre-training text: {kept} lines kept, {dropped} segmentation dev/test sentences dropped")
PY
  $b train-tokenizer --input runs/zh-mlm-seg.txt --vocab-size 8000 --output runs/zh-vocab-seg >/dev/null
  timed $b pretrain --config configs/zh-bert-small.toml --set 'tokenizer="runs/zh-vocab-seg"' \
    --set 'data.file="runs/zh-mlm-seg.txt"' --set 'output_dir="runs/zh-bert-seg"' \
    --set "train.stop_after_steps=$steps" >runs/zh-bert-seg.json 2>runs/zh-bert-seg.log
fi
timed $b train --config configs/zh-seg-bert-crf.toml >runs/zh-seg-bert-crf.json 2>runs/zh-seg-bert-crf.log
bash bench/segment.sh runs/zh-seg-bert-crf/best 128   # its training windows (data.max_length)
