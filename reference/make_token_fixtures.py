#!/usr/bin/env python3
"""Writes the golden fixtures of token-level tagging (recurrent layers, the linear-chain CRF
and one BertForTokenClassification training step) that bert4rs' Rust tests compare against.

    PY=$(bash reference/setup.sh | tail -1)
    $PY reference/make_token_fixtures.py [--out tests/fixtures/token]

Deterministic: fixed seed per case, single-threaded torch, float32 throughout (as a user
would compute; only the CRF brute-force enumeration is float64). Integer tensors are int64.
Layout under --out:
    rnn.{safetensors,json}         torch.nn.LSTM / GRU over a packed, padded batch
                                   (cases lstm, gru, lstm1): inputs, weights under torch's
                                   state_dict names, output, h_n (c_n), gradients
    crf.{safetensors,json}         pytorch-crf (torchcrf.CRF, batch_first=True): log
                                   likelihood under every reduction, gradients, Viterbi paths
                                   (masked case crf, unmasked case crf2) and a float64
                                   brute-force enumeration (log partition, best / top-3 paths)
    token_step.{safetensors,json}  one AdamW step of BertForTokenClassification built from
                                   tests/fixtures/train/tiny-cls with a fresh 5-label head
    textcnn.{safetensors,json}     a length-masked TextCNN (Conv1d per window size, ReLU,
                                   max over valid window starts): weights, output, gradients
    rnn_attention.{safetensors,json}  the notes' attention pooling over a 2-layer BiLSTM's
                                   outputs (Linear -> LayerNorm -> exact GELU -> Linear(1),
                                   masked softmax over steps, weighted sum): output, gradients
    manifest.json                  library versions
"""
import argparse
import itertools
import json
import math
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
import torchcrf  # noqa: E402
import transformers  # noqa: E402
from transformers import BertForTokenClassification, BertTokenizerFast  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


def t(x):
    """A detached, contiguous copy fit for save_file."""
    return x.detach().clone().contiguous()


# ---------------------------------------------------------------------------------------------
# 1. LSTM / GRU

RNN_CASES = {
    "lstm": {"mode": "lstm", "input_size": 5, "hidden_size": 4, "num_layers": 2,
             "bidirectional": True, "seed": 11},
    "gru": {"mode": "gru", "input_size": 5, "hidden_size": 4, "num_layers": 2,
            "bidirectional": True, "seed": 12},
    "lstm1": {"mode": "lstm", "input_size": 5, "hidden_size": 4, "num_layers": 1,
              "bidirectional": False, "seed": 13},
}
RNN_BATCH, RNN_SEQ = 3, 6
RNN_LENGTHS = [6, 4, 1]
RNN_PAD_FILL = 7.0  # written into x at padding positions: an implementation that reads it fails


def rnn_fixtures(out):
    tensors = {}
    cases = {}
    for name, case in RNN_CASES.items():
        torch.manual_seed(case["seed"])
        cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[case["mode"]]
        module = cls(input_size=case["input_size"], hidden_size=case["hidden_size"],
                     num_layers=case["num_layers"], bidirectional=case["bidirectional"],
                     batch_first=True)
        module.eval()
        dirs = 2 if case["bidirectional"] else 1
        h = case["hidden_size"]
        x = torch.randn(RNN_BATCH, RNN_SEQ, case["input_size"])
        for b, n in enumerate(RNN_LENGTHS):
            x[b, n:] = RNN_PAD_FILL
        x.requires_grad_(True)
        lengths = torch.tensor(RNN_LENGTHS, dtype=torch.int64)
        r = torch.randn(RNN_BATCH, RNN_SEQ, dirs * h)
        rh = torch.randn(case["num_layers"] * dirs, RNN_BATCH, h)

        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        packed_out, state = module(packed)
        output, out_lengths = pad_packed_sequence(packed_out, batch_first=True,
                                                  total_length=RNN_SEQ)
        assert out_lengths.tolist() == RNN_LENGTHS
        h_n = state[0] if case["mode"] == "lstm" else state
        loss = (output * r).sum() + (h_n * rh).sum()
        loss.backward()

        tensors[f"{name}.x"] = t(x)
        tensors[f"{name}.lengths"] = lengths
        tensors[f"{name}.r"] = r
        tensors[f"{name}.rh"] = rh
        for pname, p in module.named_parameters():
            tensors[f"{name}.{pname}"] = t(p)
            tensors[f"{name}.grad.{pname}"] = t(p.grad)
        tensors[f"{name}.output"] = t(output)
        tensors[f"{name}.h_n"] = t(h_n)
        if case["mode"] == "lstm":
            tensors[f"{name}.c_n"] = t(state[1])
        tensors[f"{name}.grad.x"] = t(x.grad)
        cases[name] = {
            **{k: v for k, v in case.items()},
            "batch": RNN_BATCH, "seq": RNN_SEQ, "lengths": RNN_LENGTHS,
            "pad_fill": RNN_PAD_FILL, "loss": loss.item(),
            "params": [pname for pname, _ in module.named_parameters()],
        }
    save_file(tensors, str(out / "rnn.safetensors"))
    write_json(out / "rnn.json", {
        "cases": cases,
        "layout": "batch_first; x [B,T,input]; output [B,T,D*H], zero at padding "
                  "(pad_packed_sequence); h_n/c_n [layers*D,B,H] in original batch order",
        "loss": "(output * r).sum() + (h_n * rh).sum()  (c_n is not in the loss)",
        "packing": "pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)"
                   " -> module -> pad_packed_sequence(batch_first=True, total_length=T)",
    })


# ---------------------------------------------------------------------------------------------
# 2. CRF (pytorch-crf)

def crf_case(name, seed, batch, seq, num_tags, lengths):
    torch.manual_seed(seed)
    crf = torchcrf.CRF(num_tags, batch_first=True)
    with torch.no_grad():
        crf.start_transitions.copy_(torch.randn(num_tags) * 0.5)
        crf.end_transitions.copy_(torch.randn(num_tags) * 0.5)
        crf.transitions.copy_(torch.randn(num_tags, num_tags) * 0.5)
    emissions = torch.randn(batch, seq, num_tags)
    tags = torch.randint(0, num_tags, (batch, seq), dtype=torch.int64)
    mask = torch.zeros(batch, seq, dtype=torch.int64)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
        tags[b, n:] = 0
    # pytorch-crf's torch.where(mask[i], ...) needs a bool mask: int64 raises, uint8 is deprecated.
    bmask = mask.bool()

    tensors = {f"{name}.start_transitions": t(crf.start_transitions),
               f"{name}.end_transitions": t(crf.end_transitions),
               f"{name}.transitions": t(crf.transitions),
               f"{name}.emissions": t(emissions), f"{name}.tags": tags,
               f"{name}.mask": mask}
    with torch.no_grad():
        for red in ("none", "sum", "mean", "token_mean"):
            tensors[f"{name}.llh.{red}"] = t(crf(emissions, tags, bmask, reduction=red))
    em = emissions.clone().requires_grad_(True)
    llh = crf(em, tags, bmask, reduction="sum")
    llh.backward()
    tensors[f"{name}.grad.emissions"] = t(em.grad)
    for p in ("start_transitions", "end_transitions", "transitions"):
        tensors[f"{name}.grad.{p}"] = t(getattr(crf, p).grad)
    with torch.no_grad():
        viterbi = crf.decode(emissions, bmask)
    assert [len(v) for v in viterbi] == list(lengths)
    meta = {"num_tags": num_tags, "batch": batch, "seq": seq, "lengths": list(lengths),
            "seed": seed, "viterbi": viterbi, "llh_sum": llh.item()}
    return tensors, meta, brute_force(tensors, name, lengths, num_tags, tags)


def brute_force(tensors, name, lengths, num_tags, tags):
    """Scores every tag sequence of each (unpadded) batch element in float64."""
    start = tensors[f"{name}.start_transitions"].double()
    end = tensors[f"{name}.end_transitions"].double()
    trans = tensors[f"{name}.transitions"].double()
    emis = tensors[f"{name}.emissions"].double()
    res = {"log_partition": [], "best_path": [], "top3_paths": [], "top3_scores": [],
           "gold_score": [], "gold_llh": []}

    def score(b, path):
        s = start[path[0]] + emis[b, 0, path[0]]
        for i in range(1, len(path)):
            s = s + trans[path[i - 1], path[i]] + emis[b, i, path[i]]
        return (s + end[path[-1]]).item()

    for b, n in enumerate(lengths):
        scored = [(score(b, p), list(p)) for p in itertools.product(range(num_tags), repeat=n)]
        scored.sort(key=lambda sp: -sp[0])
        mx = scored[0][0]
        logz = mx + math.log(sum(math.exp(s - mx) for s, _ in scored))
        # No near-ties, so the n-best order is unambiguous in float32 as well.
        assert scored[0][0] - scored[1][0] > 1e-3 and scored[1][0] - scored[2][0] > 1e-3 and \
            scored[2][0] - scored[3][0] > 1e-3, f"near tie in {name}[{b}]"
        gold = score(b, tags[b, :n].tolist())
        res["log_partition"].append(logz)
        res["best_path"].append(scored[0][1])
        res["top3_paths"].append([p for _, p in scored[:3]])
        res["top3_scores"].append([s for s, _ in scored[:3]])
        res["gold_score"].append(gold)
        res["gold_llh"].append(gold - logz)
    return res


def crf_fixtures(out):
    tensors = {}
    meta = {}
    t1, m1, b1 = crf_case("crf", 21, 3, 6, 5, [6, 4, 1])
    t2, m2, b2 = crf_case("crf2", 22, 2, 4, 3, [4, 4])
    tensors.update(t1)
    tensors.update(t2)
    assert m1["viterbi"] == b1["best_path"], "pytorch-crf Viterbi disagrees with brute force"
    assert m2["viterbi"] == b2["best_path"], "pytorch-crf Viterbi disagrees with brute force"
    meta["cases"] = {"crf": m1, "crf2": m2}
    meta["viterbi"] = m1["viterbi"]
    meta["crf2_viterbi"] = m2["viterbi"]
    meta["crf2_brute"] = b2
    meta["crf_brute"] = b1
    meta["notes"] = {
        "llh": "crf(emissions, tags, mask, reduction) = score(tags) - log_partition, per batch "
               "element; sum/mean over the batch; token_mean = llh.sum() / mask.float().sum()",
        "gradients": "of reduction='sum' llh (a log likelihood, not a loss: no minus sign)",
        "mask": "stored int64, passed to pytorch-crf as bool (int64 raises in torch.where, "
                "uint8 warns as deprecated); must be a prefix mask and "
                "mask[:, 0] must be all ones (pytorch-crf raises otherwise)",
        "viterbi": "crf.decode(emissions, mask): one list per batch element, of its length",
        "brute": "float64 enumeration of num_tags^length paths of each element: score = "
                 "start[t0] + e[0,t0] + sum_i (trans[t_{i-1},t_i] + e[i,t_i]) + end[t_last]",
    }
    save_file(tensors, str(out / "crf.safetensors"))
    write_json(out / "crf.json", meta)


# ---------------------------------------------------------------------------------------------
# 3. One BertForTokenClassification training step

LABEL_NAMES = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
TOKEN_WORDS = [
    ["john", "smith", "loved", "paris"],
    ["she", "is", "playing", "in", "new", "york"],
    ["mary", "went", "to", "berlin"],
    ["unbelievable", "man"],
]
TOKEN_WORD_LABELS = [
    [1, 2, 0, 3],
    [0, 0, 0, 0, 3, 4],
    [1, 0, 0, 3],
    [0, 0],
]
LR, WEIGHT_DECAY, MAX_NORM, BETAS, EPS = 1e-2, 0.01, 1.0, (0.9, 0.999), 1e-8
NO_DECAY = ("bias", "LayerNorm.weight")


def token_step_fixture(out):
    model_dir = REPO_ROOT / "tests/fixtures/train/tiny-cls"
    tok = BertTokenizerFast.from_pretrained(str(model_dir))
    enc = tok(TOKEN_WORDS, is_split_into_words=True, padding="longest", return_tensors="pt")
    labels = torch.full(enc["input_ids"].shape, -100, dtype=torch.int64)
    word_ids = []
    for b in range(len(TOKEN_WORDS)):
        ids = enc.word_ids(b)
        word_ids.append(ids)
        prev = None
        for j, w in enumerate(ids):
            if w is not None and w != prev:
                labels[b, j] = TOKEN_WORD_LABELS[b][w]
            prev = w
    tokens = [tok.convert_ids_to_tokens(enc["input_ids"][b][enc["attention_mask"][b] == 1])
              for b in range(len(TOKEN_WORDS))]
    assert sum(1 for ws in word_ids for i, w in enumerate(ws)
               if w is not None and i > 0 and ws[i - 1] == w) > 0

    torch.manual_seed(0)
    model = BertForTokenClassification.from_pretrained(
        str(model_dir), num_labels=len(LABEL_NAMES), ignore_mismatched_sizes=True,
        id2label=dict(enumerate(LABEL_NAMES)),
        label2id={n: i for i, n in enumerate(LABEL_NAMES)},
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0,
        attn_implementation="eager").float()
    # A fresh head, drawn explicitly (bias too, so a missing bias shows) and stored so that
    # Rust can load the very same one.
    torch.manual_seed(0)
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, model.config.initializer_range)
        model.classifier.bias.normal_(0.0, model.config.initializer_range)
    # The encoder is exactly tiny-cls's (its pooler is unused by token classification).
    ref = load_file(str(model_dir / "model.safetensors"))
    for n, p in model.named_parameters():
        if not n.startswith("classifier."):
            assert torch.equal(p.detach(), ref[n]), n
    init_head = {"init.classifier.weight": t(model.classifier.weight),
                 "init.classifier.bias": t(model.classifier.bias)}

    model.train()  # dropout probabilities are all 0, so train mode is deterministic
    groups = [
        {"params": [p for n, p in model.named_parameters()
                    if not any(nd in n for nd in NO_DECAY)], "weight_decay": WEIGHT_DECAY},
        {"params": [p for n, p in model.named_parameters()
                    if any(nd in n for nd in NO_DECAY)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=EPS, foreach=False)
    res = model(**enc, labels=labels)
    res.loss.backward()
    total_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)
    opt.step()

    tensors = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
               "token_type_ids": enc["token_type_ids"], "labels": labels,
               "logits": t(res.logits), **init_head}
    for n, p in model.named_parameters():
        tensors[f"updated.{n}"] = t(p)
    save_file(tensors, str(out / "token_step.safetensors"))
    write_json(out / "token_step.json", {
        "model_dir": "tests/fixtures/train/tiny-cls",
        "words": TOKEN_WORDS, "word_labels": TOKEN_WORD_LABELS, "label_names": LABEL_NAMES,
        "tokens": tokens, "word_ids": word_ids,
        "label_rule": "first sub-token of each word gets its word label; other sub-tokens, "
                      "[CLS], [SEP] and padding get -100",
        "loss": res.loss.item(),
        "loss_rule": "CrossEntropyLoss(ignore_index=-100) over logits.view(-1, 5), mean over "
                     "the non-ignored tokens",
        "n_labelled_tokens": int((labels != -100).sum()),
        "total_norm": total_norm.item(),
        "dropout": "disabled: hidden_dropout_prob=0, attention_probs_dropout_prob=0, "
                   "classifier_dropout=0; model.train() mode",
        "head_init": "torch.manual_seed(0); classifier.weight.normal_(0, 0.2) then "
                     "classifier.bias.normal_(0, 0.2); stored as init.classifier.*",
        "optimizer": {
            "name": "torch.optim.AdamW", "lr": LR, "betas": list(BETAS), "eps": EPS,
            "amsgrad": False, "foreach": False,
            "weight_decay": WEIGHT_DECAY, "no_decay_substrings": list(NO_DECAY),
            "no_decay_weight_decay": 0.0,
            "clip_grad_norm": MAX_NORM,
            "order": "forward, loss.backward(), clip_grad_norm_(all params, 1.0) "
                     "(total_norm is before clipping), one opt.step()",
        },
        "lr": LR, "weight_decay": WEIGHT_DECAY, "max_norm": MAX_NORM,
        "unused_checkpoint_tensors": ["bert.pooler.dense.weight", "bert.pooler.dense.bias",
                                      "classifier.weight [3,32]", "classifier.bias [3]"],
    })


# ---------------------------------------------------------------------------------------------
# 4. TextCNN over a padded batch

TEXTCNN_WINDOWS = [2, 3, 5]
TEXTCNN_FILTERS = 4
TEXTCNN_CHANNELS = 6
TEXTCNN_BATCH, TEXTCNN_SEQ = 3, 7
TEXTCNN_LENGTHS = [7, 4, 2]
TEXTCNN_PAD_FILL = 9.0  # written into x at padding positions: an implementation that reads it fails


class TextCnnRef(torch.nn.Module):
    """Only holds the convolutions (state_dict names convs.{i}.weight / .bias); the forward
    is written out in textcnn_forward."""

    def __init__(self):
        super().__init__()
        self.convs = torch.nn.ModuleList(
            [torch.nn.Conv1d(TEXTCNN_CHANNELS, TEXTCNN_FILTERS, k) for k in TEXTCNN_WINDOWS])


def textcnn_forward(module, x, lengths):
    bsz, seq, _ = x.shape
    pos = torch.arange(seq)
    mask = (pos[None, :] < lengths[:, None]).to(x.dtype)  # [B, T]
    xt = (x * mask[..., None]).transpose(1, 2)  # [B, C, T], zero at padding
    pooled = []
    for k, conv in zip(TEXTCNN_WINDOWS, module.convs):
        xk = xt
        if seq < k:
            xk = torch.nn.functional.pad(xt, (0, k - seq))
        y = torch.relu(conv(xk))  # [B, F, T'] with T' = max(T, k) - k + 1
        starts = torch.arange(y.shape[2])
        valid = (starts[None, :] + k) <= lengths[:, None]  # [B, T']
        valid = valid | ((lengths[:, None] < k) & (starts[None, :] == 0))
        y = y.masked_fill(~valid[:, None, :], 0.0)
        pooled.append(y.max(dim=2).values)  # [B, F]
    return torch.cat(pooled, dim=1)


def textcnn_fixture(out):
    torch.manual_seed(31)
    x = torch.randn(TEXTCNN_BATCH, TEXTCNN_SEQ, TEXTCNN_CHANNELS)
    for b, n in enumerate(TEXTCNN_LENGTHS):
        x[b, n:] = TEXTCNN_PAD_FILL
    x.requires_grad_(True)
    lengths = torch.tensor(TEXTCNN_LENGTHS, dtype=torch.int64)
    torch.manual_seed(32)
    module = TextCnnRef()
    output = textcnn_forward(module, x, lengths)
    assert output.shape == (TEXTCNN_BATCH, TEXTCNN_FILTERS * len(TEXTCNN_WINDOWS))
    torch.manual_seed(33)
    r = torch.randn(*output.shape)
    loss = (output * r).sum()
    loss.backward()
    for b, n in enumerate(TEXTCNN_LENGTHS):
        assert torch.all(x.grad[b, n:] == 0), f"grad.x nonzero at padding of sequence {b}"

    tensors = {"x": t(x), "lengths": lengths, "output": t(output), "r": r,
               "grad.x": t(x.grad)}
    for pname, p in module.named_parameters():
        tensors[pname] = t(p)
        tensors[f"grad.{pname}"] = t(p.grad)
    save_file(tensors, str(out / "textcnn.safetensors"))
    write_json(out / "textcnn.json", {
        "window_sizes": TEXTCNN_WINDOWS, "filters": TEXTCNN_FILTERS,
        "channels": TEXTCNN_CHANNELS, "lengths": TEXTCNN_LENGTHS,
        "semantics": "x [B,T,C] (padding positions hold 9.0) is zeroed at padding "
                     "(x * mask[..., None]) and transposed to [B,C,T]; for each window size k "
                     "(module convs.{i} = nn.Conv1d(C, F, k), no padding; weight [F,C,k], "
                     "bias [F]) the time axis is right-padded with zeros to length k if T < k, "
                     "then y = relu(conv(x)) [B,F,T']; window start p is valid for sequence b "
                     "iff p + k <= len_b, except that when len_b < k only p = 0 is valid; "
                     "invalid positions are set to 0 (not -inf: ReLU outputs are >= 0, so the "
                     "max is unchanged); pooled_k = y.max(dim=2).values [B,F]; output = "
                     "cat([pooled_k for k in window_sizes], dim=1) [B, F*len(window_sizes)]. "
                     "Gradients are of loss = (output * r).sum(); grad.x is exactly 0 at "
                     "padding. Init: torch.manual_seed(31) x; manual_seed(32) then torch's "
                     "default Conv1d init in order convs.0..2; manual_seed(33) r.",
    })


# ---------------------------------------------------------------------------------------------
# 5. Attention pooling over RNN outputs

def rnn_attention_fixture(out):
    torch.manual_seed(41)
    inp, hid, bsz, seq, lengths = 6, 5, 3, 7, [7, 3, 1]
    lstm = torch.nn.LSTM(inp, hid, num_layers=2, bidirectional=True, batch_first=True)
    width = 2 * hid
    dense = torch.nn.Linear(width, width)
    norm = torch.nn.LayerNorm(width, eps=1e-5)
    with torch.no_grad():  # not the identity LayerNorm, so its parameters are tested too
        norm.weight.copy_(1.0 + 0.3 * torch.randn(width))
        norm.bias.copy_(0.3 * torch.randn(width))
    score = torch.nn.Linear(width, 1)
    x = torch.randn(bsz, seq, inp)
    for b, n in enumerate(lengths):
        x[b, n:] = RNN_PAD_FILL
    x.requires_grad_(True)
    lens = torch.tensor(lengths, dtype=torch.int64)
    packed = pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
    h, _ = pad_packed_sequence(lstm(packed)[0], batch_first=True, total_length=seq)
    mask = torch.arange(seq)[None, :] < lens[:, None]
    s = score(torch.nn.functional.gelu(norm(dense(h)))).squeeze(-1)
    a = torch.softmax(s.masked_fill(~mask, float("-inf")), dim=1)
    pooled = (a.unsqueeze(-1) * h).sum(1)
    r = torch.randn(bsz, width)
    (pooled * r).sum().backward()
    tensors = {"x": t(x), "lengths": lens, "output": t(pooled), "r": r, "grad.x": t(x.grad)}
    for prefix, module in [("rnn", lstm), ("pooling.dense", dense), ("pooling.norm", norm),
                           ("pooling.score", score)]:
        for pname, p in module.named_parameters():
            tensors[f"{prefix}.{pname}"] = t(p)
            tensors[f"grad.{prefix}.{pname}"] = t(p.grad)
    save_file(tensors, str(out / "rnn_attention.safetensors"))
    write_json(out / "rnn_attention.json", {
        "input_size": inp, "hidden_size": hid, "num_layers": 2, "bidirectional": True,
        "lengths": lengths,
        "semantics": "h = pad_packed(LSTM(pack_padded(x))) [B,T,2H] (zero at padding); "
                     "s = score(gelu(layer_norm(dense(h)))) [B,T]; a = softmax(s with -inf at "
                     "padding); output = sum_t a * h [B,2H]; gradients of (output * r).sum()",
    })


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(REPO_ROOT / "tests/fixtures/token"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rnn_fixtures(out)
    crf_fixtures(out)
    token_step_fixture(out)
    textcnn_fixture(out)
    rnn_attention_fixture(out)
    write_json(out / "manifest.json", {"torch": torch.__version__,
                                       "transformers": transformers.__version__,
                                       "pytorch-crf": torchcrf.__version__})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
