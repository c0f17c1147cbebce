#!/usr/bin/env bash
# Encoder–decoder generation: bert4rs vs HF `EncoderDecoderModel.generate` (PyTorch) in one
# run, same machine, threads, weights and sources: the first N sources of a JSON-lines file,
# batches of 16, sources truncated to 128 tokens, at most 25 new tokens, greedy and 4 beams.
# bert4rs is timed as the whole `bert4rs generate` command minus the same command on one
# source (so model loading cancels out); HF times generate() alone. Also says whether both
# produced the same texts (sha256 digest).
#   bash bench/seq2seq.sh MODEL_DIR SOURCES.jsonl [N] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
model="$1"; sources="$2"; n="${3:-64}"; threads="${4:-2}"
py=$(bash reference/setup.sh | tail -1)
cargo build -q --release --bin bert4rs
tmp=$(mktemp -d)
"$py" -c "import json,sys; [print(json.loads(l)['text']) for l in list(open(sys.argv[1]))[:int(sys.argv[2])]]" "$sources" "$n" > "$tmp/n.txt"
head -1 "$tmp/n.txt" > "$tmp/one.txt"
secs() { local s; s=$(date +%s.%N); "$@" > "$tmp/out"; echo "$(date +%s.%N) - $s" | bc; }
for beams in 1 4; do
  args=(generate --model "$model" --threads "$threads" --max-length 128 --max-new-tokens 25 --num-beams "$beams")
  t1=$(secs ./target/release/bert4rs "${args[@]}" --input "$tmp/one.txt")
  tn=$(secs ./target/release/bert4rs "${args[@]}" --input "$tmp/n.txt")
  ours=$(echo "($tn - $t1) * $n / ($n - 1)" | bc -l)
  digest=$(sha256sum < "$tmp/out" | cut -c1-12)
  theirs=$("$py" bench/torch_seq2seq_bench.py --model "$model" --sources "$sources" --n "$n" --threads "$threads" --beams "$beams" 2>/dev/null)
  "$py" - "$ours" "$digest" "$theirs" "$n" "$beams" "$threads" <<'PY'
import json, sys
ours, digest, theirs, n, beams, threads = sys.argv[1:]
t = json.loads(theirs); ours = float(ours)
print(f"{beams} beam(s), {n} sources, {threads} threads: bert4rs {1000 * ours / int(n):.1f} ms/source, "
      f"torch {1000 * t['secs'] / int(n):.1f} ms/source → {t['secs'] / ours:.2f}x  "
      f"(outputs {'identical' if t['digest'] == digest else 'differ'})")
PY
done
rm -rf "$tmp"
