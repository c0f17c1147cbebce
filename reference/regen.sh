#!/usr/bin/env bash
# Regenerates every golden fixture under tests/fixtures from the pinned reference stack.
#   bash reference/regen.sh
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(bash reference/setup.sh | tail -1)
cargo build -q --bin bert4rs
minilm=$(./target/debug/bert4rs fetch minilm | cut -f2)
zh=$(./target/debug/bert4rs fetch bert-base-chinese-vocab | cut -f2)
"$py" reference/make_fixtures.py --minilm "$minilm" --zh-vocab "$zh/vocab.txt" --out tests/fixtures
bpe=$(./target/debug/bert4rs fetch gpt2-bpe | cut -f2)
"$py" reference/make_gpt2_fixtures.py --bpe "$bpe" --out tests/fixtures/gpt2
"$py" reference/make_train_fixtures.py --out tests/fixtures/train
"$py" reference/make_head_fixtures.py --out tests/fixtures/heads
"$py" reference/make_token_fixtures.py --out tests/fixtures/token
"$py" reference/make_tokenizer_fixtures.py --bin ./target/debug/bert4rs
"$py" reference/make_mlm_fixtures.py
"$py" reference/make_nsp_fixtures.py
"$py" reference/make_position_fixtures.py
"$py" reference/make_nezha_fixtures.py
"$py" reference/make_pruning_fixtures.py --out tests/fixtures/pruning
"$py" reference/make_norm_fixtures.py --out tests/fixtures/norm/norm.safetensors
"$py" reference/word2vec_step.py > tests/fixtures/word2vec/steps.json
"$py" reference/make_simcse_fixtures.py --out tests/fixtures/simcse
"$py" reference/make_prompt_fixtures.py
"$py" reference/make_seq2seq_fixtures.py --out tests/fixtures/seq2seq
"$py" reference/make_rouge_fixtures.py > tests/fixtures/seq2seq/rouge.json
