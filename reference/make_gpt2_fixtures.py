#!/usr/bin/env python3
"""Writes the golden fixtures of GPT-2 and generation that bert4rs' Rust tests compare against.

    PY=$(bash reference/setup.sh | tail -1)
    $PY reference/make_gpt2_fixtures.py --bpe "$(bert4rs fetch gpt2-bpe | cut -f2)" [--out tests/fixtures/gpt2]

Tiny random GPT-2 models with the real 50257-token GPT-2 vocabulary would be megabytes each,
so their weights are not committed: every tensor is a pure function of (seed, tensor name,
element index) through SplitMix64 -- the same generator as `bert4rs::nn::rng::uniform_at` --
and the Rust tests rebuild the identical safetensors file from `weights.json`. The ranges are
wide (not HF's 0.02 init) so that the gap between the top two next-token logits stays far
above float noise along every decoded path; the script checks and prints that gap.

Layout under --out:
    bpe.json                        corpus: ids, offsets, decode round trip (GPT2TokenizerFast)
    <model>/config.json             HF config
    <model>/weights.json            seed + (name, shape, kind) of every tensor to rebuild
    <model>/cases.json              prompts, greedy/beam/processor/log-prob expectations
    <model>/logits.safetensors      left-padded batch logits, processed next-token scores
"""
import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
import transformers  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast, GPT2Tokenizer  # noqa: E402
from transformers.generation.logits_process import (  # noqa: E402
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    NoRepeatNGramLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
torch.set_num_threads(1)

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)


def hash_str(s: str) -> int:
    """FNV-1a, as `bert4rs::nn::rng::hash_str`."""
    h = 0xCBF29CE484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001B3) % (1 << 64)
    return h


def uniform_at(key: int, n: int) -> np.ndarray:
    """Elements 0..n of SplitMix64 stream `key`, 24-bit uniforms in [0, 1) (float32)."""
    with np.errstate(over="ignore"):
        i = np.arange(n, dtype=np.uint64)
        z = np.uint64(key) + i * GOLDEN
        z = (z ^ (z >> np.uint64(30))) * M1
        z = (z ^ (z >> np.uint64(27))) * M2
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def tensor_for(seed: int, name: str, shape, kind: str, scale: float) -> torch.Tensor:
    """kind: `ln_weight` -> 1 + s·(2u-1); anything else -> s·(2u-1)."""
    n = int(np.prod(shape))
    u = uniform_at((hash_str(name) ^ seed) % (1 << 64), n)
    v = u * np.float32(2.0) - np.float32(1.0)
    if kind == "ln_weight":
        v = np.float32(1.0) + v * np.float32(scale)
    else:
        v = v * np.float32(scale)
    return torch.from_numpy(v.reshape(shape).copy())


MODELS = [
    {
        "name": "gpt2-a",
        "seed": 11,
        "prefix": "transformer.",
        "config": dict(n_embd=32, n_layer=2, n_head=4, n_positions=64),
        "scales": {"embed": 0.6, "linear": 0.35, "bias": 0.1, "ln_weight": 0.2, "ln_bias": 0.1},
    },
    {
        "name": "gpt2-b",
        "seed": 12,
        "prefix": "",  # GPT2Model names, as some checkpoints store them
        "config": dict(n_embd=48, n_layer=3, n_head=3, n_positions=96, n_inner=64,
                       activation_function="gelu", scale_attn_by_inverse_layer_idx=True),
        "scales": {"embed": 0.5, "linear": 0.3, "bias": 0.1, "ln_weight": 0.2, "ln_bias": 0.1},
    },
    {
        "name": "gpt2-c",
        "seed": 13,
        "prefix": "transformer.",
        "config": dict(n_embd=24, n_layer=1, n_head=2, n_positions=48, activation_function="relu",
                       layer_norm_epsilon=1e-6),
        "scales": {"embed": 0.7, "linear": 0.4, "bias": 0.1, "ln_weight": 0.2, "ln_bias": 0.1},
    },
]

PROMPTS = [
    "Hello, my dog is cute",
    "The quick brown fox",
    "In 1998, the People's Daily reported that",
    "def main():\n    print(",
]

BPE_CORPUS = [
    "Hello, my dog is cute",
    "Hello world",
    " leading space and  double  spaces",
    "trailing spaces   ",
    "tabs\tand\nnewlines\n\n  indented",
    "fn main() { println!(\"{}\", x + 1); } // code",
    "def f(x):\n    return x**2  # comment",
    "Ünïcödé çàfé naïve résumé — em dash … ellipsis",
    "中文文本：我爱北京天安门。",
    "日本語のテキスト、カタカナ",
    "emoji 😀👍🏽 🇫🇷 family 👨‍👩‍👧",
    "numbers 1234567890 3.14159 -42 1e-5",
    "URLs https://example.com/path?q=1&b=2",
    "<|endoftext|> special token inside text",
    "   ",
    "",
    "ALL CAPS AND MiXeD CaSe",
    "e-mail: someone@example.org, #hashtag @mention",
    "Ⅻ ﬁ ligature and combining e\u0301",
    "zero\u200bwidth space and non\u00a0breaking",
]


def build_model(spec, vocab_size):
    cfg = GPT2Config(vocab_size=vocab_size, **spec["config"])
    # Eager attention: HF's default sdpa path ignores `scale_attn_by_inverse_layer_idx`
    # (transformers 4.57), the eager one follows the config as bert4rs does.
    model = GPT2LMHeadModel._from_config(cfg, attn_implementation="eager").eval()
    assert model.config._attn_implementation == "eager"
    sd = {}
    listing = []
    s = spec["scales"]
    for name, p in model.transformer.named_parameters():
        if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
            kind = "ln_weight"
        elif name.endswith(("ln_1.bias", "ln_2.bias", "ln_f.bias")):
            kind = "ln_bias"
        elif name in ("wte.weight", "wpe.weight"):
            kind = "embed"
        elif name.endswith(".bias"):
            kind = "bias"
        else:
            kind = "linear"
        full = spec["prefix"] + name
        t = tensor_for(spec["seed"], full, tuple(p.shape), kind, s[kind])
        sd[name] = t
        listing.append({"name": full, "shape": list(p.shape), "kind": kind, "scale": s[kind]})
    missing, unexpected = model.transformer.load_state_dict(sd, strict=False)
    assert not unexpected and all(m.endswith("attn.bias") or m.endswith("masked_bias") for m in missing), (missing, unexpected)
    model.tie_weights()
    return cfg, model, listing


def left_pad(rows, pad):
    t = max(len(r) for r in rows)
    ids = [[pad] * (t - len(r)) + r for r in rows]
    mask = [[0] * (t - len(r)) + [1] * len(r) for r in rows]
    return torch.tensor(ids), torch.tensor(mask)


def positions(mask):
    pos = mask.long().cumsum(-1) - 1
    return pos.masked_fill(mask == 0, 1)


def top2_gap(logits):
    v = torch.topk(logits, 2, dim=-1).values
    return float((v[..., 0] - v[..., 1]).min())


def strip(seq, prompt_len_padded, pad_len, eos):
    """HF output row -> prompt + generated ids, without left padding or trailing pads."""
    row = seq[pad_len:]
    gen_start = prompt_len_padded - pad_len
    out = row[:gen_start]
    for t in row[gen_start:]:
        out.append(t)
        if t == eos:
            break
    return out


def model_cases(spec, tok, out_dir):
    cfg, model, listing = build_model(spec, len(tok))
    d = out_dir / spec["name"]
    d.mkdir(parents=True, exist_ok=True)
    cfg_dict = cfg.to_dict()
    cfg_dict.pop("_attn_implementation_autoset", None)
    cfg_dict["architectures"] = ["GPT2LMHeadModel"]
    (d / "config.json").write_text(json.dumps(cfg_dict, indent=2, sort_keys=True) + "\n")
    (d / "weights.json").write_text(json.dumps({"seed": spec["seed"], "tensors": listing}, indent=1) + "\n")

    prompts = [tok(p)["input_ids"] for p in PROMPTS]
    prompts = [p[: cfg.n_positions // 2] for p in prompts]
    tensors = {}
    cases = {"prompts": prompts}
    gaps = []

    # Logits of a left-padded batch (positions as generate computes them).
    ids, mask = left_pad(prompts, 50256)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions(mask)).logits
    # All 50257 columns would be megabytes: keep the first 256 and 768 random others.
    gen_cols = torch.Generator().manual_seed(spec["seed"])
    rest = 256 + torch.randperm(logits.shape[-1] - 256, generator=gen_cols)[:768]
    cols = torch.cat([torch.arange(256), rest.sort().values])
    tensors["cols"] = cols.to(torch.int64)
    tensors["batch_logits"] = logits[..., cols].contiguous()
    tensors["batch_mask"] = mask.to(torch.float32)

    # Greedy: pick an end-of-text id the model actually produces so stopping is exercised.
    with torch.no_grad():
        free = model.generate(torch.tensor([prompts[0]]), attention_mask=torch.ones(1, len(prompts[0]), dtype=torch.long),
                              max_new_tokens=12, do_sample=False, pad_token_id=50256, eos_token_id=None)[0].tolist()
    eos = free[len(prompts[0]) + 7]
    cases["eos_token_id"] = eos

    settings = {
        "greedy": dict(max_new_tokens=20),
        "greedy_penalties": dict(max_new_tokens=16, repetition_penalty=1.3, no_repeat_ngram_size=3),
        "beam3_ngram2": dict(max_new_tokens=12, num_beams=3, no_repeat_ngram_size=2),
        "beam4_lp05_early_ret2": dict(max_new_tokens=10, num_beams=4, length_penalty=0.5,
                                      early_stopping=True, num_return_sequences=2),
        "beam3_never_lp15": dict(max_new_tokens=9, num_beams=3, length_penalty=1.5, early_stopping="never"),
        "beam2_reppen": dict(max_new_tokens=8, num_beams=2, repetition_penalty=1.3),
        "beam5_ret5": dict(max_new_tokens=6, num_beams=5, num_return_sequences=5),
    }
    gen = {}
    for name, kw in settings.items():
        rows = []
        for p in prompts:
            with torch.no_grad():
                out = model.generate(torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long), do_sample=False, eos_token_id=eos,
                                     pad_token_id=eos, output_scores=True, output_logits=True,
                                     return_dict_in_generate=True, **kw)
            seqs = out.sequences.tolist()
            scores = out.sequences_scores.tolist() if getattr(out, "sequences_scores", None) is not None else None
            if kw.get("num_beams", 1) == 1:
                gaps.append(min(top2_gap(l) for l in out.logits))
            rows.append({"sequences": [strip(s, len(p), 0, eos) for s in seqs], "scores": scores})
        gen[name] = {"kwargs": kw, "results": rows}
    # The left-padded batch through HF greedy must give the singles' ids (no processors).
    with torch.no_grad():
        bout = model.generate(ids, attention_mask=mask, max_new_tokens=20, do_sample=False,
                              eos_token_id=eos, pad_token_id=eos)
    pads = [ids.shape[1] - len(p) for p in prompts]
    batched = [strip(r, ids.shape[1], pl, eos) for r, pl in zip(bout.tolist(), pads)]
    assert batched == [r["sequences"][0] for r in gen["greedy"]["results"]], "HF batch != single"
    cases["generate"] = gen

    # Processors on the model's next-token logits after each prompt.
    proc_cases = {
        "temperature_0.7": [TemperatureLogitsWarper(0.7)],
        "top_k_10": [TopKLogitsWarper(10)],
        "top_p_0.9": [TopPLogitsWarper(0.9)],
        "top_p_0.3_temp_1.5": [TemperatureLogitsWarper(1.5), TopPLogitsWarper(0.3)],
        "rep_1.3_ngram_2_temp_0.8_topk_40_topp_0.95": [
            RepetitionPenaltyLogitsProcessor(1.3), NoRepeatNGramLogitsProcessor(2),
            TemperatureLogitsWarper(0.8), TopKLogitsWarper(40), TopPLogitsWarper(0.95)],
    }
    history = prompts[1] + prompts[1][:2]  # repeats, so the penalty and the ban bite
    with torch.no_grad():
        last = model(input_ids=torch.tensor([history])).logits[:, -1, :]
    cases["proc_history"] = history
    cases["processors"] = list(proc_cases)
    cases["proc_input_top2_gap"] = top2_gap(last[0])
    for name, procs in proc_cases.items():
        out = LogitsProcessorList(procs)(torch.tensor([history]), last.clone())[0]
        kept = torch.isfinite(out).nonzero()[:, 0]
        # Where tokens were removed, the kept set and its values; else the shared columns.
        if len(kept) < 4096:
            tensors[f"proc.{name}.kept"] = kept.to(torch.int64).contiguous()
            tensors[f"proc.{name}.values"] = out[kept].contiguous()
        else:
            removed = (~torch.isfinite(out)).nonzero()[:, 0]
            tensors[f"proc.{name}.removed"] = removed.to(torch.int32).contiguous()
            tensors[f"proc.{name}.cols_values"] = out[cols].contiguous()

    # Sequence log-probs of continuations.
    pairs = [(prompts[0], tok(" and very fluffy")["input_ids"]),
             (prompts[2][:5], tok(" nothing at all.")["input_ids"]),
             (prompts[3], tok(" 42)")["input_ids"])]
    lp = []
    for p, c in pairs:
        with torch.no_grad():
            lg = model(input_ids=torch.tensor([p + c])).logits[0].log_softmax(-1)
        tl = [float(lg[len(p) + i - 1, t]) for i, t in enumerate(c)]
        lp.append({"prompt": p, "continuation": c, "token_logprobs": tl, "logprob": sum(tl)})
    cases["logprobs"] = lp

    cases["min_top2_gap_greedy"] = min(gaps)
    print(f"{spec['name']}: eos={eos} min top-2 logit gap along greedy paths = {min(gaps):.4g}")
    assert min(gaps) > 1e-3, "pick another seed: top-2 gap too close to float noise"
    (d / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")
    save_file(tensors, str(d / "logits.safetensors"))


def bpe_fixture(bpe_dir, out_dir):
    fast = GPT2TokenizerFast(vocab_file=str(bpe_dir / "vocab.json"), merges_file=str(bpe_dir / "merges.txt"))
    slow = GPT2Tokenizer(vocab_file=str(bpe_dir / "vocab.json"), merges_file=str(bpe_dir / "merges.txt"))
    rows = []
    for text in BPE_CORPUS:
        enc = fast(text, return_offsets_mapping=True)
        ids = enc["input_ids"]
        assert slow(text)["input_ids"] == ids, f"slow != fast on {text!r}"
        rows.append({
            "text": text,
            "ids": ids,
            "offsets": [list(o) for o in enc["offset_mapping"]],
            "decoded": fast.decode(ids),
            "decoded_skip_special": fast.decode(ids, skip_special_tokens=True),
        })
    assert rows[0]["ids"] == [15496, 11, 616, 3290, 318, 13779]
    (out_dir / "bpe.json").write_text(json.dumps(
        {"transformers": transformers.__version__, "cases": rows}, indent=1, ensure_ascii=False) + "\n")
    return fast


def sparse_fixture(out_dir):
    """Dense attention with the local + strided mask in torch: the reference of bert4rs'
    block-sparse kernel (outputs and input gradients)."""
    g = torch.Generator().manual_seed(5)
    b, h, t, d, stride, first = 2, 3, 37, 8, 4, [0, 5]
    q, k, v, r = (torch.randn(b, h, t, d, generator=g) for _ in range(4))
    allowed = torch.zeros(b, 1, t, t, dtype=torch.bool)
    for row in range(b):
        f = first[row]
        for i in range(f, t):
            for j in range(f, i + 1):
                p, qq = i - f, j - f
                allowed[row, 0, i, j] = (p - qq) < stride or (p - qq) % stride == 0
    q, k, v = (x.clone().requires_grad_(True) for x in (q, k, v))
    scores = q @ k.transpose(-1, -2) / d ** 0.5
    scores = scores.masked_fill(~allowed, float("-inf"))
    probs = torch.nan_to_num(scores.softmax(-1))  # pad query rows see nothing -> 0
    out = probs @ v
    (out * r).sum().backward()
    save_file({"q": q.detach(), "k": k.detach(), "v": v.detach(), "r": r, "out": out.detach(),
               "dq": q.grad, "dk": k.grad, "dv": v.grad}, str(out_dir / "sparse.safetensors"))
    (out_dir / "sparse.json").write_text(json.dumps({"stride": stride, "first": first, "scale": d ** -0.5}) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bpe", required=True, type=Path, help="dir with vocab.json + merges.txt")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "tests/fixtures/gpt2")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tok = bpe_fixture(args.bpe, args.out)
    sparse_fixture(args.out)
    for spec in MODELS:
        model_cases(spec, tok, args.out)
    (args.out / "manifest.json").write_text(json.dumps(
        {"torch": torch.__version__, "transformers": transformers.__version__,
         "models": [m["name"] for m in MODELS]}, indent=1) + "\n")


if __name__ == "__main__":
    main()
