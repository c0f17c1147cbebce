"""Checks that a bert4rs token-classification directory with the `linear` head loads in
transformers as BertForTokenClassification and that its argmax tags give the same entities
(character spans and labels) as `bert4rs predict`.

    python reference/check_token_saved.py MODEL_DIR INPUT.txt PRED.jsonl
"""
import json
import sys

import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer


def entities(tags):
    """Spans (type, first, last+1) as seqeval's default mode (conlleval) reads them."""
    out, open_ = [], None
    for i, t in enumerate(tags + ["O"]):
        p, ty = ("O", "") if t == "O" else t.split("-", 1)
        continues = p in ("I", "E") and open_ is not None and open_[0] == ty
        if not continues:
            if open_:
                out.append((open_[0], open_[1], i))
            open_ = (ty, i) if p != "O" else None
        if p in ("E", "S") and open_:
            out.append((open_[0], open_[1], i + 1))
            open_ = None
    return out


def main():
    model_dir, input_txt, pred_jsonl = sys.argv[1:4]
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForTokenClassification.from_pretrained(model_dir).eval()
    texts = open(input_txt, encoding="utf-8").read().rstrip("\n").split("\n")
    preds = [json.loads(l)["entities"] for l in open(pred_jsonl, encoding="utf-8")]
    assert len(texts) == len(preds), (len(texts), len(preds))
    checked = 0
    for text, ours in zip(texts, preds):
        enc = tok(text, return_offsets_mapping=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                           token_type_ids=enc["token_type_ids"]).logits[0]
        ids = logits.argmax(-1).tolist()
        offsets = enc["offset_mapping"][0].tolist()
        words, spans = [], []
        for i, w in enumerate(enc.word_ids()):
            if w is None:
                continue
            if w == len(words):
                words.append(model.config.id2label[ids[i]])
                spans.append([offsets[i][0], offsets[i][1]])
            else:
                spans[w][1] = offsets[i][1]
        theirs = sorted((spans[s][0], spans[e - 1][1], ty) for ty, s, e in entities(words))
        mine = sorted((e["start"], e["end"], e["label"]) for e in ours)
        assert mine == theirs, f"{text!r}: bert4rs {mine} vs transformers {theirs}"
        checked += len(mine)
    print(f"ok: {len(texts)} texts, {checked} entities identical in transformers")


if __name__ == "__main__":
    main()
