"""ONNX Runtime's dynamic int8 beside bert4rs's on a fine-tuned mean-pooled BERT classifier.

Rebuilds the classifier in PyTorch (transformers' BertModel + the mask-weighted mean of the
last hidden states + the linear head, as bert4rs runs it), checks it against bert4rs's f32
probabilities, exports it to ONNX, quantises it with `quantize_dynamic` (per tensor, the
default, and per channel) and prints, for every variant, the change of the positive-class
probability against its own f32, the label flips and the accuracy of each split.

    python bench/ort_int8_accuracy.py MODEL_DIR TEXTS.jsonl SPLIT_SIZES NAME=PRED.jsonl ...

TEXTS.jsonl: {"text", "label"} lines (the splits one after another, SPLIT_SIZES lines
each, e.g. 400,400); PRED.jsonl: `bert4rs predict` outputs for those lines, the first one
bert4rs's f32 (the others are compared against it).
"""
import json
import logging
import sys
import tempfile
import warnings

import numpy as np
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from safetensors.torch import load_file
from transformers import AutoTokenizer, BertConfig, BertModel

torch.set_num_threads(1)
# The exporter's tracer warnings and quantize_dynamic's pre-processing hint are expected.
warnings.filterwarnings("ignore")
logging.getLogger().setLevel(logging.ERROR)


class MeanPooledClassifier(torch.nn.Module):
    def __init__(self, cfg, labels):
        super().__init__()
        self.bert = BertModel(cfg, add_pooling_layer=False)
        self.classifier = torch.nn.Linear(cfg.hidden_size, labels)

    def forward(self, input_ids, attention_mask, token_type_ids):
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                      token_type_ids=token_type_ids).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        return self.classifier((h * m).sum(1) / m.sum(1).clamp(min=1e-9))


def positive(logits, pos):
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(-1, keepdims=True))[..., pos]


def main():
    model_dir, texts_path, sizes = sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3].split(",")]
    preds = [a.split("=", 1) for a in sys.argv[4:]]
    cfg_json = json.load(open(f"{model_dir}/config.json"))
    if cfg_json.get("bert4rs_pooling", "cls") != "mean":
        sys.exit(f"{model_dir}: this check rebuilds mean-pooled classifiers only")
    id2label = {int(k): v for k, v in cfg_json["id2label"].items()}
    pos_label = id2label[1]
    model = MeanPooledClassifier(BertConfig.from_pretrained(model_dir), len(id2label)).eval()
    weights = {k: v for k, v in load_file(f"{model_dir}/model.safetensors").items()
               if not k.startswith("bert.pooler")}
    model.load_state_dict(weights, strict=True)
    tok = AutoTokenizer.from_pretrained(model_dir)
    rows = [json.loads(l) for l in open(texts_path)]
    gold = np.array([str(r["label"]) for r in rows])
    encs = [tok(r["text"], truncation=True, max_length=128, return_tensors="np") for r in rows]
    with torch.no_grad():
        p_torch = np.array([positive(model(**{k: torch.from_numpy(v) for k, v in e.items()}).numpy(), 1)[0]
                            for e in encs])
    ours = {name: np.array([json.loads(l)["probabilities"][pos_label] for l in open(path)])
            for name, path in preds}
    first = next(iter(ours.values()))
    print(f"PyTorch f32 vs {preds[0][0]}: max |dp| {np.abs(p_torch - first).max():.2e}")

    tmp = tempfile.mkdtemp()
    f32 = f"{tmp}/f32.onnx"
    e0 = {k: torch.from_numpy(v) for k, v in encs[0].items()}
    names = ["input_ids", "attention_mask", "token_type_ids"]
    torch.onnx.export(model, tuple(e0[n] for n in names), f32, input_names=names,
                      output_names=["logits"], opset_version=14, dynamo=False,
                      dynamic_axes={n: {0: "batch", 1: "seq"} for n in names})

    def run(path):
        so = ort.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        return np.array([positive(s.run(None, {k: v.astype(np.int64) for k, v in e.items()})[0], 1)[0]
                         for e in encs])

    p_ort = run(f32)
    variants = [("ORT f32", p_ort, p_torch)]
    for name, kw in [("ORT int8 (quantize_dynamic defaults)", {}),
                     ("ORT int8 per_channel", dict(weight_type=QuantType.QInt8, per_channel=True))]:
        q = f"{tmp}/{len(variants)}.onnx"
        quantize_dynamic(f32, q, **kw)
        variants.append((name, run(q), p_ort))
    variants += [(name, p, first) for name, p in ours.items()]

    label = lambda p: np.where(p > 0.5, pos_label, id2label[0])
    bounds = np.cumsum([0] + sizes)
    print(f"\nonnxruntime {ort.__version__}; 'vs f32': against the same implementation's f32")
    print("| variant | mean abs dp vs f32 | max abs dp | flips | "
          + " | ".join(f"split {i + 1} acc." for i in range(len(sizes))) + " |")
    print("|---|---|---|---|" + "---|" * len(sizes))
    for name, p, ref in variants:
        d = np.abs(p - ref)
        accs = [(label(p)[a:b] == gold[a:b]).mean() * 100 for a, b in zip(bounds, bounds[1:])]
        print(f"| {name} | {d.mean():.4f} | {d.max():.3f} | {(label(p) != label(ref)).sum()} | "
              + " | ".join(f"{a:.2f}" for a in accs) + " |")


if __name__ == "__main__":
    main()
