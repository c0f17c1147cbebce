"""Golden fixtures for the normalisation layers (tests/norm_layers.rs), from torch.nn.

For each case: an input, the layer's affine parameters (random, so a missing one shows), the
training-mode output, the gradients of sum(output * g) for a fixed random g with respect to
the input, weight and bias, the running statistics after that training pass (BatchNorm), and
an eval-mode output on a second input (BatchNorm: from the running statistics).

    python reference/make_norm_fixtures.py --out tests/fixtures/norm/norm.safetensors
"""

import argparse
from pathlib import Path

import torch
from safetensors.torch import save_file

torch.manual_seed(3)


def case(name, layer, shape, out):
    x = torch.randn(*shape) * 2.0 + 0.5
    x.requires_grad_(True)
    params = dict(layer.named_parameters())
    with torch.no_grad():
        for p in params.values():
            p.normal_(0.0, 1.0)
    out[f"{name}.x"] = x.detach().clone()
    for k, p in params.items():
        out[f"{name}.{k}"] = p.detach().clone()
    for k, b in layer.named_buffers():
        if k in ("running_mean", "running_var"):
            with torch.no_grad():
                b.uniform_(0.5, 1.5) if k == "running_var" else b.normal_(0.0, 0.5)
            out[f"{name}.{k}_before"] = b.detach().clone()
    layer.train()
    y = layer(x)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    out[f"{name}.y_train"] = y.detach()
    out[f"{name}.g"] = g
    out[f"{name}.dx"] = x.grad.detach()
    for k, p in params.items():
        out[f"{name}.d{k}"] = p.grad.detach()
    for k, b in layer.named_buffers():
        if k in ("running_mean", "running_var"):
            out[f"{name}.{k}_after"] = b.detach().clone()
    layer.eval()
    x2 = torch.randn(*shape)
    out[f"{name}.x2"] = x2
    with torch.no_grad():
        out[f"{name}.y_eval"] = layer(x2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, type=Path)
    path = ap.parse_args().out
    path.parent.mkdir(parents=True, exist_ok=True)
    out = {}
    nn = torch.nn
    case("batch_norm_1d", nn.BatchNorm1d(5, momentum=0.1), (8, 5), out)
    case("batch_norm_1d_seq", nn.BatchNorm1d(4, momentum=0.3, eps=1e-3), (3, 4, 7), out)
    case("batch_norm_2d", nn.BatchNorm2d(3), (4, 3, 5, 6), out)
    case("layer_norm", nn.LayerNorm(6), (2, 5, 6), out)
    case("layer_norm_2d", nn.LayerNorm((4, 6), eps=1e-6), (3, 4, 6), out)
    case("instance_norm_1d", nn.InstanceNorm1d(4, affine=True), (3, 4, 9), out)
    case("instance_norm_2d", nn.InstanceNorm2d(3), (2, 3, 4, 5), out)
    case("group_norm", nn.GroupNorm(2, 6), (3, 6, 7), out)
    case("group_norm_2d", nn.GroupNorm(3, 6, eps=1e-3), (2, 6, 3, 4), out)
    case("rms_norm", nn.RMSNorm(6), (2, 5, 6), out)
    case("rms_norm_eps", nn.RMSNorm((4, 6), eps=1e-5), (3, 4, 6), out)
    save_file({k: v.contiguous().float() for k, v in out.items()}, str(path))


if __name__ == "__main__":
    main()
