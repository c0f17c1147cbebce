#!/usr/bin/env bash
# Load test of `bert4rs serve` on MiniLM over loopback: one request at a time for 20 s, then
# CLIENTS concurrent clients for SECONDS, the same request mix (texts of 1–JOIN Pang & Lee
# sentences, 1–PER texts per request); every answer is checked against its text embedded
# alone (examples/load_test.rs).
#   bash bench/serve.sh [CLIENTS=100] [SECONDS=60] [THREADS=2] [JOIN=4] [PER=4]
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-100}; seconds=${2:-60}; threads=${3:-2}; join=${4:-4}; per=${5:-4}
cargo build -q --release -p bert4rs-cli -p bert4rs-server --example load_test
b=./target/release/bert4rs
minilm=$($b fetch minilm | cut -f2)
pol=$($b fetch polarity-en | cut -f2)
port=$((20000 + RANDOM % 20000))
log=$(mktemp)
$b serve --model "$minilm" --port "$port" --threads "$threads" 2>"$log" &
server=$!
trap 'kill $server 2>/dev/null; rm -f "$log" "$texts"' EXIT
until grep -q "listening on" "$log"; do
  kill -0 $server 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.2
done
# The sentences column of the polarity CSV, one per line.
texts=$(mktemp)
python3 -c 'import csv,sys; [print(r[-1].strip()) for r in csv.reader(open(sys.argv[1], encoding="utf-8-sig"))]' \
  "$pol/sentences.csv" > "$texts"
./target/release/examples/load_test --url "http://127.0.0.1:$port" --model "$minilm" \
  --texts "$texts" --clients "$clients" --seconds "$seconds" --join "$join" --per-request "$per"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^te_batch_next_size_(sum|count)|^te_request_count'
kill -TERM $server; wait $server
