#!/usr/bin/env bash
# Distillation on Pang & Lee polarity (configs/polarity.toml): the fine-tuned 6-layer MiniLM
# (teacher, the README's main job; trained first if runs/polarity/best is missing), a 3-layer
# student from its layers 1, 3, 5 trained with the teacher's soft labels, and the same student
# trained on the gold labels alone. Prints test accuracy and test-set eval time of each, and
# the teacher's accuracy with --int8.
#   bash bench/distill.sh [ALPHA=0.5] [T=2.0]
set -euo pipefail
cd "$(dirname "$0")/.."
alpha="${1:-0.5}"
temp="${2:-2.0}"
cargo build -q --release --bin bert4rs
b=./target/release/bert4rs
[ -f runs/polarity/best/config.json ] || $b train --config configs/polarity.toml >/dev/null
test=runs/polarity/split/test.jsonl
student=(--set "task.student_layers=[1, 3, 5]")
[ -f runs/distill-kd/best/config.json ] || $b train --config configs/polarity.toml "${student[@]}" \
  --set 'task.distill_from="runs/polarity/best"' --set "task.distill_alpha=$alpha" \
  --set "task.distill_temperature=$temp" --set 'output_dir="runs/distill-kd"' >/dev/null
[ -f runs/distill-plain/best/config.json ] || $b train --config configs/polarity.toml "${student[@]}" \
  --set 'output_dir="runs/distill-plain"' >/dev/null
row() {
  local t0 t1 acc
  t0=$(date +%s%N)
  acc=$($b eval --model "$1" --data "$test" "${@:3}" | python3 -c "import json,sys; print(json.load(sys.stdin)['classification']['accuracy'])")
  t1=$(date +%s%N)
  printf "%-38s %8.4f %8d ms\n" "$2" "$acc" $(( (t1 - t0) / 1000000 ))
}
printf "%-38s %8s %11s\n" "model (test: 400 sentences)" "accuracy" "eval (load+run)"
row runs/polarity/best "teacher, 6 layers, f32"
row runs/polarity/best "teacher, 6 layers, --int8" --int8
row runs/distill-kd/best "student, 3 layers, distilled"
row runs/distill-plain/best "student, 3 layers, gold labels only"
row runs/distill-kd/best "student, 3 layers, distilled, int8" --int8
