"""Golden fixtures for the encoder–decoder (tests/seq2seq.rs), from HF `EncoderDecoderModel`.

A random bert2bert (a 2-layer BERT encoder, a 3-layer BERT decoder with `is_decoder` and
`add_cross_attention`, the vocabulary of tests/fixtures/models/bert-a), seeded; the decoder's
`cls.predictions.bias` of `[SEP]` is raised by 2.5 so that some generated sequences end
early and some run to the limit. Writes, under --out:
- `model/`: the model as `save_pretrained` writes it, plus the tokenizer files of bert-a;
- `golden.json`: sources, targets (ids, each ending in `[SEP]`), the teacher-forcing loss
  (`labels` with -100 padding), greedy and beam-search outputs (batched, and greedy per
  input alone) with `max_new_tokens` 10;
- `warm_start_keys.json`: the tensor names `save_pretrained` writes for
  `EncoderDecoderModel.from_encoder_decoder_pretrained(bert-a, bert-a)` (a warm start);
- `golden.safetensors`: the logits `[batch, tgt, vocab]` of that forward pass and the
  gradients of a few parameters of the loss.

    python reference/make_seq2seq_fixtures.py --out tests/fixtures/seq2seq
"""

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertTokenizerFast, EncoderDecoderConfig, EncoderDecoderModel

SOURCES = ["hello world", "the quick brown fox is over the lazy dog", "how are you today"]
TARGETS = ["hello", "a quick fox jumps over", "i love to play the world"]
GRADS = [
    "encoder.encoder.layer.0.attention.self.query.weight",
    "decoder.bert.encoder.layer.1.crossattention.self.key.weight",
    "decoder.bert.encoder.layer.2.attention.self.value.bias",
    "decoder.bert.embeddings.word_embeddings.weight",
    "decoder.cls.predictions.transform.dense.weight",
    "decoder.cls.predictions.bias",
]
NEW = 10


def build(vocab):
    common = dict(vocab_size=vocab, hidden_size=32, num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=64, initializer_range=0.2)
    enc = BertConfig(num_hidden_layers=2, **common)
    dec = BertConfig(num_hidden_layers=3, is_decoder=True, add_cross_attention=True, **common)
    cfg = EncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    torch.manual_seed(0)
    return cfg, EncoderDecoderModel(config=cfg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, type=Path)
    out = ap.parse_args().out
    src = Path(__file__).resolve().parent.parent / "tests/fixtures/models/bert-a"
    tok = BertTokenizerFast.from_pretrained(str(src))
    cfg, model = build(tok.vocab_size)
    ids = dict(decoder_start_token_id=tok.cls_token_id, pad_token_id=tok.pad_token_id,
               eos_token_id=tok.sep_token_id)
    for k, v in ids.items():
        setattr(model.config, k, v)
        setattr(model.generation_config, k, v)
    with torch.no_grad():
        model.decoder.cls.predictions.bias[tok.sep_token_id] += 2.5
    model.eval()
    (out / "model").mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out / "model"))
    for f in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(src / f, out / "model" / f)

    enc = tok(SOURCES, padding=True, return_tensors="pt")
    targets = [tok(t, add_special_tokens=False)["input_ids"] + [tok.sep_token_id] for t in TARGETS]
    t = max(map(len, targets))
    labels = torch.tensor([y + [-100] * (t - len(y)) for y in targets])
    res = model(**enc, labels=labels)
    res.loss.backward()
    params = dict(model.named_parameters())
    tensors = {"logits": res.logits.detach()}
    for name in GRADS:
        tensors[f"grad.{name}"] = params[name].grad.detach().clone()
    save_file(tensors, str(out / "golden.safetensors"))

    def trim(row):
        row = row.tolist()
        if tok.sep_token_id in row[1:]:
            row = row[: row.index(tok.sep_token_id, 1) + 1]
        return row

    with torch.no_grad():
        greedy = model.generate(**enc, max_new_tokens=NEW, do_sample=False, num_beams=1)
        alone = [model.generate(**tok([s], return_tensors="pt"), max_new_tokens=NEW)[0]
                 for s in SOURCES]
        beam = model.generate(**enc, max_new_tokens=NEW, num_beams=3, num_return_sequences=2,
                              output_scores=True, return_dict_in_generate=True)
    golden = {
        "sources": SOURCES,
        "targets": targets,
        "ids": ids,
        "loss": res.loss.item(),
        "grads": GRADS,
        "max_new_tokens": NEW,
        "greedy": [trim(r) for r in greedy],
        "greedy_alone": [trim(r) for r in alone],
        "beam": {"num_beams": 3, "num_return_sequences": 2,
                 "sequences": [trim(r) for r in beam.sequences],
                 "scores": beam.sequences_scores.tolist()},
    }
    (out / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    warm_start_keys(src, out)


def warm_start_keys(src, out):
    import tempfile

    from safetensors import safe_open

    m = EncoderDecoderModel.from_encoder_decoder_pretrained(str(src), str(src))
    with tempfile.TemporaryDirectory() as d:
        m.save_pretrained(d)
        keys = sorted(safe_open(f"{d}/model.safetensors", "pt").keys())
    (out / "warm_start_keys.json").write_text(json.dumps(keys, indent=0) + "\n")


if __name__ == "__main__":
    main()
