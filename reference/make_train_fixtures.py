#!/usr/bin/env python3
"""Writes the golden fixtures of the training engine (optimisers, schedules, losses, tricks,
one full fine-tuning step) that bert4rs' Rust tests compare against.

    PY=$(bash reference/setup.sh | tail -1)
    $PY reference/make_train_fixtures.py [--out tests/fixtures/train]

Deterministic: fixed seeds, single-threaded torch, float32. Layout under --out:
    optim.{safetensors,json}     params after each of 5 steps, per optimiser case
    schedules.json               20 learning rates per transformers schedule
    losses.{safetensors,json}    loss value + gradient w.r.t. the inputs, per loss
    tricks.{safetensors,json}    grad clipping, EMA
    tiny-cls/                    a tiny random BertForSequenceClassification (HF dir)
    step.{safetensors,json}      one training step of tiny-cls: batch, loss, updated weights
"""
import argparse
import json
import math
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
import transformers  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

SHAPES = [(4, 3), (5,), (2, 2, 2)]
STEPS = 5

OPTIM_CASES = [
    {"name": "sgd", "optimizer": "sgd", "lr": 0.1},
    {"name": "sgd_momentum", "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "dampening": 0.1},
    {"name": "sgd_nesterov_wd", "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
     "nesterov": True, "weight_decay": 0.01},
    {"name": "adagrad", "optimizer": "adagrad", "lr": 0.1, "lr_decay": 0.01,
     "weight_decay": 0.01, "initial_accumulator_value": 0.1, "eps": 1e-10},
    {"name": "adadelta", "optimizer": "adadelta", "lr": 1.0, "rho": 0.9, "eps": 1e-6,
     "weight_decay": 0.01},
    {"name": "rmsprop", "optimizer": "rmsprop", "lr": 0.01, "alpha": 0.99, "eps": 1e-8},
    {"name": "rmsprop_centered_momentum", "optimizer": "rmsprop", "lr": 0.01, "alpha": 0.9,
     "eps": 1e-8, "momentum": 0.5, "centered": True, "weight_decay": 0.01},
    {"name": "adam", "optimizer": "adam", "lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8,
     "weight_decay": 0.01},
    {"name": "adam_amsgrad", "optimizer": "adam", "lr": 0.01, "betas": [0.8, 0.99],
     "eps": 1e-6, "amsgrad": True},
    {"name": "adamw", "optimizer": "adamw", "lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8,
     "weight_decay": 0.1},
    # Two groups: p0 decays at lr 0.01, p1 and p2 at lr 0.02 without decay.
    {"name": "adamw_groups", "optimizer": "adamw", "lr": 0.01, "betas": [0.9, 0.98],
     "eps": 1e-6, "weight_decay": 0.1,
     "groups": [{"params": [0], "lr": 0.01, "weight_decay": 0.1},
                {"params": [1, 2], "lr": 0.02, "weight_decay": 0.0}]},
]


def make_optimizer(case, params):
    kw = {k: v for k, v in case.items() if k not in ("name", "optimizer", "groups")}
    if "betas" in kw:
        kw["betas"] = tuple(kw["betas"])
    if "groups" in case:
        target = [{"params": [params[i] for i in g["params"]],
                   **{k: v for k, v in g.items() if k != "params"}} for g in case["groups"]]
    else:
        target = params
    cls = {"sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad,
           "adadelta": torch.optim.Adadelta, "rmsprop": torch.optim.RMSprop,
           "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[case["optimizer"]]
    return cls(target, foreach=False, **kw)


def optim_fixtures(out):
    g = torch.Generator().manual_seed(1234)
    init = [torch.randn(s, generator=g) for s in SHAPES]
    grads = [[torch.randn(s, generator=g) for s in SHAPES] for _ in range(STEPS)]
    tensors = {f"init.{i}": t for i, t in enumerate(init)}
    for s, gs in enumerate(grads):
        for i, t in enumerate(gs):
            tensors[f"grad.{s}.{i}"] = t
    for case in OPTIM_CASES:
        params = [torch.nn.Parameter(t.clone()) for t in init]
        opt = make_optimizer(case, params)
        for s in range(STEPS):
            for p, gr in zip(params, grads[s]):
                p.grad = gr.clone()
            opt.step()
            for i, p in enumerate(params):
                tensors[f"{case['name']}.{s}.{i}"] = p.detach().clone()
    save_file(tensors, str(out / "optim.safetensors"))
    write_json(out / "optim.json", {"steps": STEPS, "shapes": SHAPES, "cases": OPTIM_CASES})


SCHEDULES = [
    ("constant", {}),
    ("constant_with_warmup", {"num_warmup_steps": 5}),
    ("linear", {"num_warmup_steps": 5, "num_training_steps": 20}),
    ("cosine", {"num_warmup_steps": 5, "num_training_steps": 20}),
    ("cosine", {"num_warmup_steps": 3, "num_training_steps": 20, "num_cycles": 1.5}),
    ("polynomial", {"num_warmup_steps": 5, "num_training_steps": 20, "lr_end": 1e-5,
                    "power": 1.0}),
    ("polynomial", {"num_warmup_steps": 2, "num_training_steps": 15, "lr_end": 1e-4,
                    "power": 2.0}),
]


def schedule_fixtures(out):
    cases = []
    for name, kw in SCHEDULES:
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=1e-3)
        sched = transformers.get_scheduler(name, opt, scheduler_specific_kwargs={
            k: v for k, v in kw.items() if k not in ("num_warmup_steps", "num_training_steps")},
            num_warmup_steps=kw.get("num_warmup_steps"),
            num_training_steps=kw.get("num_training_steps"))
        lrs = []
        for _ in range(20):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        cases.append({"schedule": name, "base_lr": 1e-3, **kw, "lrs": lrs})
    write_json(out / "schedules.json", {"cases": cases})


def focal_multiclass(logits, y, gamma, alpha):
    logp = F.log_softmax(logits, -1).gather(1, y[:, None])[:, 0]
    p = logp.exp()
    a = alpha[y] if alpha is not None else 1.0
    return (-a * (1 - p) ** gamma * logp).mean()


def focal_binary(logits, t, gamma, alpha):
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    a_t = alpha * t + (1 - alpha) * (1 - t)
    return (a_t * (1 - p_t) ** gamma * ce).mean()


def dice(logits, y, smooth):
    p = F.softmax(logits, -1)
    onehot = F.one_hot(y, logits.shape[-1]).float()
    inter = (p * onehot).sum(0)
    card = p.sum(0) + onehot.sum(0)
    return (1 - (2 * inter + smooth) / (card + smooth)).mean()


def mse_corr(pred, target, weight):
    mse = F.mse_loss(pred, target)
    pc, tc = pred - pred.mean(), target - target.mean()
    corr = (pc * tc).sum() / (pc.norm() * tc.norm())
    return mse + weight * (1 - corr)


def rdrop_kl(a, b):
    la, lb = F.log_softmax(a, -1), F.log_softmax(b, -1)
    kl_ab = (la.exp() * (la - lb)).sum(-1)
    kl_ba = (lb.exp() * (lb - la)).sum(-1)
    return (0.5 * (kl_ab + kl_ba)).mean()


def loss_fixtures(out):
    g = torch.Generator().manual_seed(99)
    n, c = 6, 4
    logits = torch.randn(n, c, generator=g) * 2
    logits2 = logits + 0.5 * torch.randn(n, c, generator=g)
    labels = torch.tensor([0, 3, 1, 1, 2, 0])
    multi = (torch.rand(n, c, generator=g) > 0.5).float()
    weights = torch.tensor([1.0, 2.0, 0.5, 1.5])
    scores = torch.randn(n, generator=g) * 1.5
    target = torch.randn(n, generator=g)
    signs = torch.tensor([1.0, -1.0, -1.0, 1.0, 1.0, -1.0])
    alpha = torch.tensor([0.25, 0.5, 0.75, 1.0])
    inputs = {"logits": logits, "logits2": logits2, "labels": labels, "multi": multi,
              "class_weights": weights, "scores": scores, "target": target,
              "signs": signs, "alpha": alpha}
    cases = {
        "ce": lambda x: F.cross_entropy(x, labels),
        "ce_smooth": lambda x: F.cross_entropy(x, labels, label_smoothing=0.1),
        "ce_weighted": lambda x: F.cross_entropy(x, labels, weight=weights),
        "ce_weighted_smooth": lambda x: F.cross_entropy(x, labels, weight=weights,
                                                        label_smoothing=0.2),
        "bce": lambda x: F.binary_cross_entropy_with_logits(x, multi),
        "focal": lambda x: focal_multiclass(x, labels, 2.0, None),
        "focal_alpha": lambda x: focal_multiclass(x, labels, 1.5, alpha),
        "focal_binary": lambda x: focal_binary(x, multi, 2.0, 0.25),
        "dice": lambda x: dice(x, labels, 1.0),
        "rdrop_kl": lambda x: rdrop_kl(x, logits2),
        # DistilBERT's soft-label loss, teacher = logits2, T = 2
        "distill_kl": lambda x: F.kl_div(F.log_softmax(x / 2, -1), F.softmax(logits2 / 2, -1),
                                         reduction="batchmean") * 4,
        "mse": lambda s: F.mse_loss(s, target),
        "mse_corr": lambda s: mse_corr(s, target, 0.5),
        "hinge": lambda s: torch.clamp(1 - signs * s, min=0).mean(),
        "exponential": lambda s: torch.exp(-signs * s).mean(),
        "absolute": lambda s: (signs - s).abs().mean(),
        "log": lambda s: F.softplus(-signs * s).mean(),
        "squared": lambda s: ((signs - s) ** 2).mean(),
        "perceptron": lambda s: torch.clamp(-signs * s, min=0).mean(),
    }
    score_losses = {"mse", "mse_corr", "hinge", "exponential", "absolute", "log", "squared",
                    "perceptron"}
    tensors = dict(inputs)
    values = {}
    for name, fn in cases.items():
        x = (scores if name in score_losses else logits).clone().requires_grad_(True)
        loss = fn(x)
        loss.backward()
        values[name] = {"loss": loss.item(), "input": "scores" if name in score_losses
                        else "logits"}
        tensors[f"grad.{name}"] = x.grad.detach().clone()
    values["zero_one"] = {"loss": ((signs * scores) <= 0).float().mean().item(),
                          "input": "scores"}
    save_file(tensors, str(out / "losses.safetensors"))
    write_json(out / "losses.json", {"cases": values})


def trick_fixtures(out):
    g = torch.Generator().manual_seed(7)
    grads = [torch.randn(s, generator=g) for s in SHAPES]
    tensors = {f"grad.{i}": t for i, t in enumerate(grads)}
    meta = {}
    for max_norm in (1.0, 100.0):
        ps = [torch.nn.Parameter(torch.zeros(s)) for s in SHAPES]
        for p, gr in zip(ps, grads):
            p.grad = gr.clone()
        total = torch.nn.utils.clip_grad_norm_(ps, max_norm)
        meta[f"clip_{max_norm:g}"] = {"max_norm": max_norm, "total_norm": total.item()}
        for i, p in enumerate(ps):
            tensors[f"clip_{max_norm:g}.{i}"] = p.grad.clone()
    # EMA as bert4torch's ExponentialMovingAverage: shadow = decay*shadow + (1-decay)*param.
    decay = 0.9
    params = [[torch.randn(s, generator=g) for s in SHAPES] for _ in range(4)]
    shadow = [p.clone() for p in params[0]]
    for i, p in enumerate(params[0]):
        tensors[f"ema.param.0.{i}"] = p
    for k in range(1, 4):
        for i, p in enumerate(params[k]):
            tensors[f"ema.param.{k}.{i}"] = p
            shadow[i] = decay * shadow[i] + (1 - decay) * p
    for i, s in enumerate(shadow):
        tensors[f"ema.shadow.{i}"] = s
    meta["ema"] = {"decay": decay, "updates": 3}
    save_file(tensors, str(out / "tricks.safetensors"))
    write_json(out / "tricks.json", meta)


STEP_TEXTS = [
    "hello world",
    "the quick brown fox jumped over the lazy dog",
    "a",
    "playing played unable",
]
STEP_LABELS = [0, 2, 1, 2]


def step_fixture(out):
    vocab_dir = REPO_ROOT / "tests/fixtures/vocab-small"
    tok = BertTokenizerFast.from_pretrained(str(vocab_dir))
    torch.manual_seed(5)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_attention_heads=4,
                     num_hidden_layers=2, intermediate_size=64, max_position_embeddings=64,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                     num_labels=3, initializer_range=0.2, hidden_act="gelu",
                     id2label={0: "neg", 1: "neu", 2: "pos"},
                     label2id={"neg": 0, "neu": 1, "pos": 2})
    cfg._attn_implementation = "eager"
    model = BertForSequenceClassification(cfg).float()
    model_dir = out / "tiny-cls"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model.save_pretrained(str(model_dir), safe_serialization=True)
    tok.save_pretrained(str(model_dir))
    enc = tok(STEP_TEXTS, padding="longest", return_tensors="pt")
    labels = torch.tensor(STEP_LABELS)
    model.train()
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters()
                    if not any(nd in n for nd in no_decay)], "weight_decay": 0.01},
        {"params": [p for n, p in model.named_parameters()
                    if any(nd in n for nd in no_decay)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, foreach=False)
    res = model(**enc, labels=labels)
    res.loss.backward()
    total_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    tensors = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
               "token_type_ids": enc["token_type_ids"], "labels": labels,
               "logits": res.logits.detach()}
    for n, p in model.named_parameters():
        tensors[f"updated.{n}"] = p.detach().clone()
    # Loss of the other problem types on the same (initial) weights.
    extra = {}
    init = BertForSequenceClassification.from_pretrained(str(model_dir)).float()
    init.train()
    multi = torch.tensor([[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 1, 0]], dtype=torch.float32)
    init.config.problem_type = "multi_label_classification"
    extra["multi_label_loss"] = init(**enc, labels=multi).loss.item()
    tensors["multi_labels"] = multi
    save_file(tensors, str(out / "step.safetensors"))
    write_json(out / "step.json", {
        "texts": STEP_TEXTS, "labels": STEP_LABELS, "loss": res.loss.item(),
        "total_norm": total_norm.item(), "lr": 1e-2, "weight_decay": 0.01, "max_norm": 1.0,
        **extra,
    })


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(REPO_ROOT / "tests/fixtures/train"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    optim_fixtures(out)
    schedule_fixtures(out)
    loss_fixtures(out)
    trick_fixtures(out)
    step_fixture(out)
    write_json(out / "manifest.json", {"torch": torch.__version__,
                                       "transformers": transformers.__version__})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
