#!/usr/bin/env bash
# MSRA NER end to end: fetch the data set, hold out every 20th training sentence as dev,
# train the BiLSTM-CRF from scratch and the MiniLM + CRF, and print each one's test entity
# F1 (msra_test.txt, held out) and its wall time.
#   bash bench/msra.sh [bilstm|minilm|all] [--set key=value ...]
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-all}"; shift || true
cargo build -q --release --bin bert4rs
msra=$(./target/release/bert4rs fetch msra-ner | cut -f2)
mkdir -p runs/msra-data
# Sentences are blank-line separated (CRLF in the package).
tr -d '\r' <"$msra/msra_train.txt" | awk -v RS= -v ORS='\n\n' \
  '{ if (NR % 20 == 0) print > "runs/msra-data/dev.txt"; else print > "runs/msra-data/train.txt" }'
awk -v RS= -v ORS='\n\n' 'NR <= 10000' runs/msra-data/train.txt >runs/msra-data/train-small.txt
for run in bilstm-crf minilm-crf; do
  case "$which" in all | "${run%%-*}") ;; *) continue ;; esac
  start=$(date +%s)
  ./target/release/bert4rs train --config "configs/msra-$run.toml" "$@" >"runs/msra-$run.json" 2>"runs/msra-$run.log"
  secs=$(( $(date +%s) - start ))
  python3 - "runs/msra-$run.json" "$run" "$secs" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
t, d = s["test"]["entities"], s["best_dev"]["entities"]
per = ", ".join(f"{x['label']} {x['f1']:.4f}" for x in t["per_type"])
print(f"{sys.argv[2]}: test entity micro F1 {t['micro_f1']:.4f} (P {t['micro_precision']:.4f} R {t['micro_recall']:.4f}; {per}); "
      f"dev {d['micro_f1']:.4f}; {s['steps']} steps in {int(sys.argv[3]) / 60:.1f} min")
PY
done
