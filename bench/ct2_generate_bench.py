#!/usr/bin/env python3
"""CTranslate2 side of bench/generate.sh: greedy decoding of NEW tokens from the same batch of
PROMPT-token prompts (the ids of examples/bench_generate.rs), end-of-text never reached (the
random model rarely emits it; `min_length` forbids it anyway), with the model converted from
the same HF directory, fp32 (`float32`) or dynamic int8 (`int8_float32`). Prints one JSON
line like bench/torch_generate_bench.py."""
import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import ctranslate2  # noqa: E402
from transformers import GPT2TokenizerFast  # noqa: E402


def prompt_ids(batch, length):
    """Same formula as examples/bench_generate.rs."""
    return [[(1 + r * 7919 + i * 104729) % 50000 for i in range(length)] for r in range(batch)]


def converted(model_dir, quant):
    out = os.path.join(model_dir, f"ct2-{quant}")
    if not os.path.exists(os.path.join(out, "model.bin")):
        from ctranslate2.converters import TransformersConverter
        TransformersConverter(model_dir).convert(out, quantization=quant, force=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--quant", default="float32", choices=["float32", "int8_float32"])
    a = ap.parse_args()
    gen = ctranslate2.Generator(converted(a.model_dir, a.quant), device="cpu",
                                intra_threads=a.threads, inter_threads=1,
                                compute_type=a.quant)
    tok = GPT2TokenizerFast.from_pretrained(a.model_dir)
    prompts = [tok.convert_ids_to_tokens(p) for p in prompt_ids(a.batch, a.prompt_len)]
    kw = dict(max_length=a.new, min_length=a.new, sampling_topk=1, beam_size=1,
              include_prompt_in_result=False, max_batch_size=a.batch)
    gen.generate_batch(prompts, **dict(kw, max_length=4, min_length=4))  # warm-up
    times = []
    for _ in range(a.iters):
        t0 = time.perf_counter()
        res = gen.generate_batch(prompts, **kw)
        times.append(time.perf_counter() - t0)
    best = min(times)
    name = "ct2-fp32" if a.quant == "float32" else "ct2-int8"
    print(json.dumps({"impl": name, "batch": a.batch, "ms": best * 1e3,
                      "tokens_per_s": a.batch * a.new / best,
                      "first_row": res[0].sequences_ids[0][:16]}))


if __name__ == "__main__":
    main()
