"""Golden data for prompt-based classification (tests/prompt.rs), from transformers'
BertForMaskedLM on the committed random checkpoint tests/fixtures/models/bert-b, built the
way PET builds its inputs: `[CLS] prefix text suffix [SEP]`, the pattern's parts and the text
tokenized separately (no special tokens) and only the text cut to fit `max_length`.

Writes tests/fixtures/prompt/:
    prompt.json         template, verbalizer, max_length, texts, labels, the input ids,
                        the label logits (MLM logits at the mask, at the verbalizer's tokens,
                        eval mode, one padded batch) and the mean cross-entropy
    prompt.safetensors  the gradients of that loss for a few parameters

    python reference/make_prompt_fixtures.py
"""

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import BertForMaskedLM, BertTokenizerFast

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL = REPO_ROOT / "tests/fixtures/models/bert-b"
OUT = REPO_ROOT / "tests/fixtures/prompt"
TEMPLATE = "{text} it is [MASK] ."
VERBALIZER = {"neg": "dog", "pos": "love"}  # sorted labels: column 0 = neg, 1 = pos
MAX_LENGTH = 12
TEXTS = ["hello world", "the quick brown fox is over the lazy dog today", "how are you", "play"]
LABELS = ["pos", "neg", "neg", "pos"]
GRADS = ["bert.embeddings.word_embeddings.weight", "bert.encoder.layer.1.output.dense.weight",
         "cls.predictions.transform.dense.weight", "cls.predictions.bias"]


def encode(tok, text):
    before, after = TEMPLATE.split("{text}")
    prefix = tok.encode(before, add_special_tokens=False)
    suffix = tok.encode(after, add_special_tokens=False)
    body = tok.encode(text, add_special_tokens=False)
    budget = MAX_LENGTH - len(prefix) - len(suffix) - 2
    return [tok.cls_token_id] + prefix + body[:budget] + suffix + [tok.sep_token_id]


def main():
    tok = BertTokenizerFast.from_pretrained(str(MODEL))
    model = BertForMaskedLM.from_pretrained(str(MODEL), attn_implementation="eager")
    model.eval()
    rows = [encode(tok, t) for t in TEXTS]
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    word_ids = [tok.convert_tokens_to_ids(VERBALIZER[k]) for k in sorted(VERBALIZER)]
    logits = model(input_ids=ids, attention_mask=mask).logits
    at = torch.stack([logits[b, r.index(tok.mask_token_id)] for b, r in enumerate(rows)])
    label_logits = at[:, word_ids]
    gold = torch.tensor([sorted(VERBALIZER).index(l) for l in LABELS])
    loss = torch.nn.functional.cross_entropy(label_logits, gold)
    loss.backward()
    params = dict(model.named_parameters())
    OUT.mkdir(parents=True, exist_ok=True)
    save_file({n: params[n].grad.detach().clone() for n in GRADS}, str(OUT / "prompt.safetensors"))
    meta = {
        "template": TEMPLATE, "verbalizer": VERBALIZER, "max_length": MAX_LENGTH,
        "texts": TEXTS, "labels": LABELS, "input_ids": rows,
        "label_logits": label_logits.tolist(), "loss": loss.item(), "grads": GRADS,
    }
    (OUT / "prompt.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main()
