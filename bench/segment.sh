#!/usr/bin/env bash
# Chinese word segmentation on People's Daily (January 1998; `bert4rs prepare zh-seg`: 80/10/10
# by sentence, seed 42): the dictionary-free character BiLSTM-CRF (configs/zh-seg-bilstm-crf.toml,
# trained if missing) against jieba (PyPI, default dictionary + HMM) on the same test split;
# word precision / recall / F1, a word right when its character span is a gold word's.
# MODEL (default the BiLSTM-CRF) scores another segmentation model on the same split, with
# windows of MAX_LENGTH tokens (default 256, the BiLSTM-CRF's training windows; give a model
# the windows it was trained with: a BERT never saw positions past its pre-training length).
#   bash bench/segment.sh [MODEL] [MAX_LENGTH]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release --bin bert4rs
b=./target/release/bert4rs
py=$(bash reference/setup.sh | tail -1)
"$py" -c "import jieba" 2>/dev/null || "$py" -m pip install -q jieba
d=runs/zh-seg-data
[ -f $d/test.jsonl ] || $b prepare zh-seg --output $d
model="${1:-runs/zh-seg-bilstm-crf/best}"
max_length="${2:-256}"
[ -f "$model/config.json" ] || $b train --config configs/zh-seg-bilstm-crf.toml >/dev/null 2>&1
python3 -c "
import json
with open('$d/test.txt', 'w') as f:
    for line in open('$d/test.jsonl'):
        f.write(''.join(json.loads(line)['text'].split(' ')) + '\n')
"
t0=$(date +%s%N)
$b segment --model "$model" --input $d/test.txt --output $d/test.ours.txt --max-length "$max_length" 2>/dev/null
t1=$(date +%s%N)
echo "bert4rs segment ($model): $(( (t1 - t0) / 1000000 )) ms for $(wc -l < $d/test.txt) sentences (load included)"
"$py" reference/jieba_seg.py $d/test.jsonl $d/test.ours.txt
