"""PyTorch half of the token-layer benchmark (bench/token.sh): torch.nn.LSTM and GRU forward +
backward and pytorch-crf's NLL + backward and Viterbi decode, same shapes and threads as
examples/bench_token.rs. Prints one JSON line of median milliseconds."""
import argparse
import json
import time

import torch
from torchcrf import CRF


def median(f, iters):
    f()
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t) * 1e3)
    return sorted(ts)[len(ts) // 2]


def main():
    ap = argparse.ArgumentParser()
    for k, v in [("batch", 32), ("seq", 128), ("hidden", 256), ("tags", 9), ("threads", 2), ("iters", 5)]:
        ap.add_argument(f"--{k}", type=int, default=v)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(a.hidden, a.hidden, num_layers=1, bidirectional=True, batch_first=True)
    x = torch.randn(a.batch, a.seq, a.hidden, requires_grad=True)

    gru = torch.nn.GRU(a.hidden, a.hidden, num_layers=1, bidirectional=True, batch_first=True)

    def lstm_step():
        out, _ = lstm(x)
        out.sum().backward()

    def gru_step():
        out, _ = gru(x)
        out.sum().backward()

    crf = CRF(a.tags, batch_first=True)
    e = torch.randn(a.batch, a.seq, a.tags, requires_grad=True)
    tags = torch.tensor([[(i * 7 + j * 3) % a.tags for j in range(a.seq)] for i in range(a.batch)])
    mask = torch.ones(a.batch, a.seq, dtype=torch.bool)

    def nll_step():
        (-crf(e, tags, mask, reduction="mean")).backward()

    def viterbi():
        with torch.no_grad():
            crf.decode(e, mask)

    print(json.dumps({"impl": "torch", "lstm_fwd_bwd_ms": median(lstm_step, a.iters),
                      "gru_fwd_bwd_ms": median(gru_step, a.iters),
                      "crf_nll_bwd_ms": median(nll_step, a.iters), "crf_viterbi_ms": median(viterbi, a.iters)}))


if __name__ == "__main__":
    main()
