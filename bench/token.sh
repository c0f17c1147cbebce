#!/usr/bin/env bash
# Token-layer benchmark: bert4rs vs PyTorch (torch.nn.LSTM) and pytorch-crf in one run, same
# machine, threads, f32 and shapes: a BiLSTM and a BiGRU (hidden 256) forward + backward and a CRF's NLL
# + backward and Viterbi decode at batch 32 x 128.
#   bash bench/token.sh [THREADS] [ITERS]
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"
iters="${2:-9}"
py=$(bash reference/setup.sh | tail -1)
cargo build -q --release --example bench_token
args=(--batch 32 --seq 128 --hidden 256 --tags 9 --threads "$threads" --iters "$iters")
ours=$(./target/release/examples/bench_token "${args[@]}")
theirs=$("$py" bench/torch_token_bench.py "${args[@]}" 2>/dev/null)
"$py" - "$ours" "$theirs" <<'PY'
import json, sys
ours, torch = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"{'32 x 128, 2 threads':28} {'bert4rs ms':>10} {'torch ms':>10} {'torch/ours':>10}")
for key, name in [("lstm_fwd_bwd_ms", "BiLSTM-256 forward+backward"), ("gru_fwd_bwd_ms", "BiGRU-256 forward+backward"), ("crf_nll_bwd_ms", "CRF NLL + backward (9 tags)"),
                  ("crf_viterbi_ms", "CRF Viterbi decode")]:
    print(f"{name:28} {ours[key]:10.1f} {torch[key]:10.1f} {torch[key] / ours[key]:9.2f}x")
PY
