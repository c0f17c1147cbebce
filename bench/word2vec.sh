#!/usr/bin/env bash
# word2vec on People's Daily (January 1998, word-segmented: `bert4rs prepare zh-words`,
# 1.12 M words) against gensim (PyPI, in the reference venv) with the same settings — 100
# dimensions, window 5, min_count 5, sample 1e-3, alpha 0.025 → 0.0001, WORKERS threads, 5
# epochs — for CBOW + negative sampling (gensim's default), skip-gram + negative sampling and
# skip-gram + hierarchical softmax: training time, words/s and their ratio, and the accuracy
# on bench/data/zh_analogies.txt (bench/make_zh_analogies.py) of both models, ours scored
# by gensim's own evaluate_word_analogies after it loaded our file.
#   bash bench/word2vec.sh [WORKERS=2]
set -euo pipefail
cd "$(dirname "$0")/.."
workers="${1:-2}"
cargo build -q --release --bin bert4rs
b=./target/release/bert4rs
py=$(bash reference/setup.sh | tail -1)
"$py" -c "import gensim" 2>/dev/null || "$py" -m pip install -q gensim
mkdir -p runs/w2v
[ -f runs/w2v/pd.txt ] || $b prepare zh-words --output runs/w2v/pd.txt
q=bench/data/zh_analogies.txt
printf "%-26s %9s %9s %8s %13s %13s\n" "model" "ours s" "gensim s" "speed" "ours analogy" "gensim analogy"
for opts in "" "--sg" "--sg --hs --negative 0"; do
  name=$(echo "${opts:-cbow}" | tr -d ' -')
  f=runs/w2v/$name.bin
  ours=$($b word2vec train --input runs/w2v/pd.txt --output $f --workers "$workers" $opts)
  ref=$("$py" reference/word2vec_gensim.py runs/w2v/pd.txt $q $f --workers "$workers" $opts)
  python3 - "$name" "$ours" "$ref" <<'PY'
import json, sys
name, ours, ref = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"{name:<26} {ours['seconds']:9.2f} {ref['gensim_seconds']:9.2f} "
      f"{ref['gensim_seconds'] / ours['seconds']:7.2f}x "
      f"{100 * ref['ours_analogy_accuracy_by_gensim']:12.2f}% {100 * ref['gensim_analogy_accuracy']:12.2f}%")
print(f"  ours {ours['words_per_second'] / 1e6:.2f} M words/s, vocabulary {ours['vocab_size']} "
      f"(gensim {ref['gensim_vocab']}, read back by gensim: {ref['ours_vocab_read_by_gensim']}); "
      f"gensim 北京: {' '.join(ref['gensim_nearest_北京'])}")
PY
  echo "  ours 北京: $($b word2vec similar --vectors $f --word 北京 --top-k 5 | python3 -c "import json,sys; print(' '.join(x['word'] for x in json.load(sys.stdin)))")"
done
