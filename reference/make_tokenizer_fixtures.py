"""Golden data for `bert4rs train-tokenizer` (tests/tokenizer_training.rs).

Writes into tests/fixtures/tokenizer_train/:
    corpus.txt, heldout.txt     a synthetic training corpus and held-out lines (seeded; no
                                real corpus is committed): CJK "words", English-like words
                                built from syllables, full-width forms, accents, emoji,
                                control characters and mixed case
    {wordpiece,bpe,unigram}/    the directories `bert4rs train-tokenizer` writes (run with
                                --bin), as transformers must load them
    expected.json               per kind: what `transformers.AutoTokenizer` gives on every
                                held-out line (ids, offsets; singles and pairs), the class it
                                loaded, and the vocabulary HF's own trainer (the Python
                                `tokenizers` package, same pipeline and settings) learns on the
                                same corpus

Usage: python reference/make_tokenizer_fixtures.py --bin target/release/bert4rs
"""

import argparse
import json
import random
import subprocess
from pathlib import Path

import tokenizers
import transformers
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import AutoTokenizer

REPO_ROOT = Path(__file__).resolve().parent.parent
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SETTINGS = {"vocab_size": 400, "min_frequency": 2}
KINDS = ["wordpiece", "bpe", "unigram"]


def synthetic_lines(rng, n, rare_chars=False):
    syllables = ["ka", "ri", "to", "men", "sha", "lun", "pe", "qui", "xo", "dra", "ne", "ble"]
    cjk_words = ["".join(chr(0x4E00 + rng.randrange(300)) for _ in range(rng.choice([1, 2, 2, 3])))
                 for _ in range(120)]
    en_words = ["".join(rng.choice(syllables) for _ in range(rng.choice([1, 2, 3])))
                for _ in range(150)]
    extras = ["Café", "naïve", "ＡＢＣ", "１９９８年", "😀", "e\u0301t\u00e9", "，", "。", "!", "?",
              "(", ")", "don't", "x\u0007y", "ŒUVRE", "İstanbul"]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randrange(3, 14)):
            r = rng.random()
            # Zipf-like: early words far more frequent, so merges have something to find.
            pick = lambda ws: ws[min(int(rng.paretovariate(1.2)) - 1, len(ws) - 1)]
            if r < 0.45:
                parts.append(pick(cjk_words))
            elif r < 0.85:
                w = pick(en_words)
                parts.append(w.capitalize() if rng.random() < 0.2 else w)
            else:
                parts.append(rng.choice(extras))
        if rare_chars:
            parts.append(chr(0x4E00 + 1000 + rng.randrange(200)))  # never seen in training
        sep = "" if rng.random() < 0.3 else " "
        out.append(sep.join(parts))
    return out


def hf_trained_vocab(kind, corpus):
    if kind == "wordpiece":
        tk = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
        tr = trainers.WordPieceTrainer(special_tokens=SPECIALS, continuing_subword_prefix="##",
                                       show_progress=False, **SETTINGS)
    elif kind == "bpe":
        tk = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##"))
        tr = trainers.BpeTrainer(special_tokens=SPECIALS, continuing_subword_prefix="##",
                                 show_progress=False, **SETTINGS)
    else:
        tk = Tokenizer(models.Unigram())
        tr = trainers.UnigramTrainer(vocab_size=SETTINGS["vocab_size"], special_tokens=SPECIALS,
                                     unk_token="[UNK]", show_progress=False)
    tk.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                               strip_accents=None, lowercase=True)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.train([str(corpus)], tr)
    vocab = tk.get_vocab()
    return [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="the bert4rs binary")
    ap.add_argument("--out", default=str(REPO_ROOT / "tests/fixtures/tokenizer_train"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20261203)
    corpus, heldout = out / "corpus.txt", out / "heldout.txt"
    corpus.write_text("\n".join(synthetic_lines(rng, 1500)) + "\n", encoding="utf-8")
    held = synthetic_lines(rng, 40, rare_chars=True)
    heldout.write_text("\n".join(held) + "\n", encoding="utf-8")

    expected = {"settings": SETTINGS, "specials": SPECIALS,
                "versions": {"transformers": transformers.__version__,
                             "tokenizers": tokenizers.__version__}, "kinds": {}}
    for kind in KINDS:
        d = out / kind
        subprocess.run([args.bin, "train-tokenizer", "--kind", kind, "--input", str(corpus),
                        "--vocab-size", str(SETTINGS["vocab_size"]),
                        "--min-frequency", str(SETTINGS["min_frequency"]), "--output", str(d)],
                       check=True, stdout=subprocess.DEVNULL)
        tok = AutoTokenizer.from_pretrained(str(d))
        singles = tok(held, return_offsets_mapping=True)
        pairs = tok(held[:-1], held[1:], return_offsets_mapping=True)
        hf_vocab = hf_trained_vocab(kind, corpus)
        ours = [t for t, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1])]
        expected["kinds"][kind] = {
            "class": type(tok).__name__,
            "special_ids": {t: tok.convert_tokens_to_ids(t) for t in SPECIALS},
            "single_ids": singles["input_ids"],
            "single_offsets": singles["offset_mapping"],
            "pair_ids": pairs["input_ids"],
            "pair_type_ids": pairs["token_type_ids"],
            "pair_offsets": pairs["offset_mapping"],
            "hf_trained_vocab": hf_vocab,
            "hf_trained_vocab_equal": hf_vocab == ours,
        }
        print(f"{kind}: {type(tok).__name__}, vocab {len(ours)}, "
              f"same vocab as HF's trainer: {hf_vocab == ours}")
    with open(out / "expected.json", "w") as f:
        json.dump(expected, f, ensure_ascii=False, indent=None)
        f.write("\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
