"""Parameter and multiply-add counts, the way the paper's Table 1 counts FLOPs (convolutions and fc)."""

from __future__ import annotations

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, input_size: int) -> int:
    """Multiply-adds of one forward pass of a single 3 x input_size x input_size image."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += out[0].numel() * (m.in_channels // m.groups) * kh * kw

    def fc_hook(m: nn.Linear, _inp: tuple, _out: torch.Tensor) -> None:
        nonlocal total
        total += m.in_features * m.out_features

    hooks = [
        m.register_forward_hook(conv_hook if isinstance(m, nn.Conv2d) else fc_hook)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    try:
        model.eval()(torch.zeros(1, 3, input_size, input_size))
    finally:
        for h in hooks:
            h.remove()
    return total
