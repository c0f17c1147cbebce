#!/usr/bin/env bash
# int8 accuracy against ONNX Runtime's on the main job's classifier (Pang & Lee, MiniLM,
# mean pooling): bert4rs predict in f32, --int8 (12-bit activation codes),
# --int8 --int8-activations 8 and 7 over the dev and test splits, then ORT f32 / int8 of the same
# weights (bench/ort_int8_accuracy.py). Prints mean/max change of p(positive) against each
# implementation's own f32, label flips, and the dev and test accuracy.
#   bash bench/int8_accuracy.sh [MODEL_DIR] [SPLIT_DIR]
# (defaults: runs/polarity/best and runs/polarity/split, written by the README's main job)
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-runs/polarity/best}"
split="${2:-runs/polarity/split}"
py=$(bash reference/setup.sh | tail -1)
cargo build -q --release --bin bert4rs
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat "$split/dev.jsonl" "$split/test.jsonl" >"$tmp/texts.jsonl"
sizes="$(wc -l <"$split/dev.jsonl"),$(wc -l <"$split/test.jsonl")"
for v in "f32:" "int8:--int8" "int8-a8:--int8 --int8-activations 8" "int8-a7:--int8 --int8-activations 7"; do
  # shellcheck disable=SC2086 # the options are words
  ./target/release/bert4rs predict --model "$model" --input "$tmp/texts.jsonl" \
    --output "$tmp/${v%%:*}.jsonl" ${v#*:} 2>/dev/null
done
echo "splits: dev, test ($sizes lines)"
"$py" bench/ort_int8_accuracy.py "$model" "$tmp/texts.jsonl" "$sizes" \
  "bert4rs f32=$tmp/f32.jsonl" "bert4rs --int8=$tmp/int8.jsonl" \
  "bert4rs --int8 --int8-activations 8=$tmp/int8-a8.jsonl" \
  "bert4rs --int8 --int8-activations 7=$tmp/int8-a7.jsonl"
