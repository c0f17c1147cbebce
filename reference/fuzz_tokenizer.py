"""Randomised differential check of `bert4rs tokenize` against transformers' fast tokenizer.

Writes random JSONL examples (mixed scripts, emoji and modifiers, combining marks, full-width,
zero-width and no-break spaces, ligatures, special-token look-alikes; 40 % pairs), runs the
bert4rs binary and `AutoTokenizer` on them with the same settings, and compares input ids,
token type ids, attention masks and character offsets line by line. Not part of CI (it needs
the reference venv); it checks cases no fixture holds.

  python reference/fuzz_tokenizer.py --bin target/release/bert4rs --model DIR \
      [--seeds 1 2 3] [--lines 300] [--max-length 24]

Exit status 1 when any line differs (the first few are printed).
An empty `text_pair` is left out of the generated inputs: HF's fast tokenizer, called on one
text, drops it, while its batch call and the slow tokenizer encode `[CLS] a [SEP] [SEP]`, as
bert4rs does (see docs/guide.md, Commands).
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789",
    "  ",
    "\t",
    ".,;:!?'\"()[]{}-_/\\@#$%^&*+=<>|~`",
    "我爱祖国世界人民大团结你好中文测试的一是不了",
    "ＡＢＣ１２３，。！？（）",
    "éèêëàâäôöûüçñÉÀÅØåøß",
    "😀🎉👍🏽🇨🇳❤️",
    "ﬁﬂ①②Ⅻ™…‘’“”",
    "\u00a0\u200b\u3000",
    "каждыйрусскийΑΒΓαβγ",
    "عربيעברית",
    "ひらがなカタカナ한국어",
    "[CLS][SEP][MASK][UNK]",
    "\u0301\u0308",
    "ǅǈǋ",
]


def random_text(rng):
    return "".join(rng.choice(rng.choice(POOLS)) for _ in range(rng.randint(0, 40)))


def examples(seed, lines):
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        ex = {"text": random_text(rng)}
        if rng.random() < 0.4:
            pair = random_text(rng)
            if pair:
                ex["text_pair"] = pair
        out.append(ex)
    return out


def reference(tok, ex, max_length):
    args = [ex["text"]] + ([ex["text_pair"]] if "text_pair" in ex else [])
    kw = {"truncation": "longest_first", "max_length": max_length, "padding": "max_length"}
    enc = tok(*args, return_token_type_ids=True, return_offsets_mapping=True, **(kw if max_length else {}))
    return {
        "input_ids": enc["input_ids"],
        "token_type_ids": enc["token_type_ids"],
        "attention_mask": enc["attention_mask"],
        "offsets": [list(o) for o in enc["offset_mapping"]],
    }


def ours(binary, model, path, max_length):
    cmd = [binary, "tokenize", "--model", model, "--input", path]
    if max_length:
        cmd += ["--max-length", str(max_length), "--truncation", "--padding", "max-length"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--lines", type=int, default=300)
    ap.add_argument("--max-length", type=int, default=24, help="0: no truncation or padding")
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(a.model)
    bad = total = 0
    for seed in a.seeds:
        exs = examples(seed, a.lines)
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
            for ex in exs:
                f.write(json.dumps(ex, ensure_ascii=False) + "\n")
        got = ours(a.bin, a.model, f.name, a.max_length)
        os.unlink(f.name)
        if len(got) != len(exs):
            print(f"seed {seed}: {len(got)} output lines for {len(exs)} inputs")
            bad += 1
            continue
        for i, (ex, g) in enumerate(zip(exs, got)):
            want = reference(tok, ex, a.max_length)
            total += 1
            diff = [k for k in want if g.get(k) != want[k]]
            if diff:
                bad += 1
                if bad <= 5:
                    print(f"seed {seed} line {i + 1} {diff}: {ex!r}")
                    for k in diff:
                        print(f"  ours {k}: {g.get(k)}\n  HF   {k}: {want[k]}")
    print(f"{a.model}: {total - bad} of {total} lines match transformers {__import__('transformers').__version__}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
