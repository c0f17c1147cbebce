#!/usr/bin/env python3
"""HF `generate` side of bench/generate.sh: greedy decoding of NEW tokens from a batch of
PROMPT-token prompts (the same deterministic ids as examples/bench_generate.rs), KV cache on,
end-of-text disabled so every run makes exactly NEW tokens. Prints one JSON line."""
import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402
from transformers import GPT2LMHeadModel  # noqa: E402


def prompt_ids(batch, length):
    """Same formula as examples/bench_generate.rs."""
    return [[(1 + r * 7919 + i * 104729) % 50000 for i in range(length)] for r in range(batch)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = GPT2LMHeadModel.from_pretrained(a.model_dir).eval()
    model.generation_config.eos_token_id = None
    ids = torch.tensor(prompt_ids(a.batch, a.prompt_len))
    mask = torch.ones_like(ids)
    kw = dict(attention_mask=mask, max_new_tokens=a.new, do_sample=False, pad_token_id=50256)
    with torch.inference_mode():
        model.generate(ids, **dict(kw, max_new_tokens=4))  # warm-up
        times = []
        for _ in range(a.iters):
            t0 = time.perf_counter()
            out = model.generate(ids, **kw)
            times.append(time.perf_counter() - t0)
    best = min(times)
    print(json.dumps({"impl": "torch", "batch": a.batch, "ms": best * 1e3,
                      "tokens_per_s": a.batch * a.new / best,
                      "first_row": out[0, a.prompt_len:].tolist()[:16]}))


if __name__ == "__main__":
    main()
