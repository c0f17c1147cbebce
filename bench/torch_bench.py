#!/usr/bin/env python3
"""PyTorch (and optionally ONNX Runtime) half of the bert4rs forward-pass benchmark.

    $PY bench/torch_bench.py --model-dir DIR --batch 8 --seq 128 --threads 4 --warmup 3 --iters 20 [--onnx]

Runs BertModel.forward (f32, eval, no_grad) on seeded random ids with a full attention mask of
shape [batch, seq] and prints ONE JSON LINE PER IMPLEMENTATION on stdout (progress goes to stderr):

    {"impl": "torch", "batch": B, "seq": T, "threads": N, "ms": median_ms, "tokens_per_s": B*T/(ms/1000)}

--onnx exports the same model once (cached as DIR/model.onnx, re-exported when model.safetensors
is newer) and times onnxruntime with intra_op_num_threads=N, inter_op_num_threads=1.
The median (not the mean) is reported so one scheduler hiccup does not move the number.
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import BertModel  # noqa: E402


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def make_inputs(vocab_size, batch, seq, seed):
    g = torch.Generator().manual_seed(seed)
    # ids >= 1000 avoid the special / [unused] range; no padding, so the mask is all ones
    ids = torch.randint(1000, vocab_size, (batch, seq), generator=g, dtype=torch.long)
    return ids, torch.ones_like(ids), torch.zeros_like(ids)


def time_it(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    # The median, and the fastest run: on a shared host the least disturbed one.
    return statistics.median(times), min(times)


def report(impl, args, timed):
    ms, min_ms = timed
    print(
        json.dumps(
            {
                "impl": impl,
                "batch": args.batch,
                "seq": args.seq,
                "threads": args.threads,
                "ms": round(ms, 3),
                "min_ms": round(min_ms, 3),
                "tokens_per_s": round(args.batch * args.seq / (ms / 1000.0), 1),
            }
        ),
        flush=True,
    )


def export_onnx(model, path, example):
    """Legacy TorchScript exporter (dynamo=False): torch 2.9 defaults to the dynamo exporter,
    which needs the extra onnxscript package; the TorchScript one handles dynamic_axes directly."""
    ids, mask, tt = example
    axes = {0: "batch", 1: "seq"}
    tmp = path.with_suffix(".onnx.tmp")
    torch.onnx.export(
        model,
        (ids, mask, tt),
        str(tmp),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state", "pooler_output"],
        dynamic_axes={
            "input_ids": axes,
            "attention_mask": axes,
            "token_type_ids": axes,
            "last_hidden_state": axes,
            "pooler_output": {0: "batch"},
        },
        opset_version=17,
        do_constant_folding=True,
        dynamo=False,
    )
    os.replace(tmp, path)  # an interrupted export never leaves a half-written cache


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True, type=Path)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--onnx", action="store_true", help="also time onnxruntime on an exported copy")
    ap.add_argument("--int8", action="store_true", help="with --onnx: also time its dynamic int8 copy")
    ap.add_argument("--int8-only", action="store_true",
                    help="with --onnx --int8: time only the int8 copy (paired runs, bench/int8_paired.sh)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    # "eager" attention for the export (the TorchScript exporter traces it cleanly); the torch
    # timing uses HF's default (sdpa), i.e. what a transformers user gets out of the box.
    model = BertModel.from_pretrained(args.model_dir, dtype=torch.float32).eval()
    log(f"torch {torch.__version__}, attn={model.config._attn_implementation}, threads={torch.get_num_threads()}")
    ids, mask, tt = make_inputs(model.config.vocab_size, args.batch, args.seq, args.seed)

    def run_torch():
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask, token_type_ids=tt)

    if not args.int8_only:
        report("torch", args, time_it(run_torch, args.warmup, args.iters))

    if args.onnx:
        import onnxruntime as ort

        onnx_path = args.model_dir / "model.onnx"
        weights = args.model_dir / "model.safetensors"
        if not onnx_path.exists() or (weights.exists() and weights.stat().st_mtime > onnx_path.stat().st_mtime):
            log(f"exporting {onnx_path}")
            eager = BertModel.from_pretrained(args.model_dir, dtype=torch.float32, attn_implementation="eager").eval()
            # export with a small example; batch/seq are dynamic axes
            export_onnx(eager, onnx_path, make_inputs(eager.config.vocab_size, 2, 8, args.seed))
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "token_type_ids": tt.numpy()}
        # sanity: the exported graph computes the same thing (guards against a stale/broken cache)
        with torch.no_grad():
            ref = model(input_ids=ids, attention_mask=mask, token_type_ids=tt).last_hidden_state.numpy()
        got = sess.run(["last_hidden_state"], feeds)[0]
        diff = float(np.abs(got - ref).max())
        log(f"onnxruntime {ort.__version__}: max |ort - torch| = {diff:.2e}")
        if diff > 1e-3:
            raise SystemExit(f"onnx output differs from torch by {diff}")
        if not args.int8_only:
            report("onnxruntime", args, time_it(lambda: sess.run(None, feeds), args.warmup, args.iters))
        if args.int8:
            q_path = quantized_onnx(onnx_path)
            qsess = ort.InferenceSession(str(q_path), so, providers=["CPUExecutionProvider"])
            qgot = qsess.run(["last_hidden_state"], feeds)[0]
            log(f"onnxruntime int8: max |int8 - torch| = {float(np.abs(qgot - ref).max()):.2e}")
            report("onnxruntime-int8", args, time_it(lambda: qsess.run(None, feeds), args.warmup, args.iters))


def quantized_onnx(onnx_path):
    """ONNX Runtime's dynamic int8 (`quantize_dynamic`, its defaults: per-tensor u8
    activations, s8 weights) of the exported graph, cached beside it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    q_path = onnx_path.with_suffix(".int8.onnx")
    if not q_path.exists() or q_path.stat().st_mtime < onnx_path.stat().st_mtime:
        log(f"quantizing {q_path}")
        tmp = q_path.with_suffix(".tmp")
        quantize_dynamic(str(onnx_path), str(tmp), weight_type=QuantType.QInt8)
        os.replace(tmp, q_path)
    return q_path


if __name__ == "__main__":
    main()
