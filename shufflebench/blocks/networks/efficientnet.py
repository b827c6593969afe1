"""EfficientNet-B0..B3 (Tan & Le, arXiv:1905.11946, Table 1 and the official block strings), exactly as torchvision
builds them: MBConv with squeeze-excite (a quarter of the block's input channels) and SiLU, channels rounded to
multiples of 8 after the width multiplier, repeats rounded up after the depth multiplier. The default resolution is
each model's native one (224, 240, 260, 300); stochastic depth and dropout do nothing in eval mode.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from shufflebench.blocks.layers import Classifier, ConvBNAct, SqueezeExcite, make_divisible
from shufflebench.blocks.registry import register_workload

# expand ratio, kernel, stride, input channels, output channels, repeats: the B0 stage table.
B0_STAGES = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
]
BN_EPS = 1e-3


class MBConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = make_divisible(c_in * expand)
        layers: list[nn.Module] = []
        if hidden != c_in:
            layers.append(ConvBNAct(c_in, hidden, 1, act=nn.SiLU, bn_eps=BN_EPS))
        layers += [
            ConvBNAct(hidden, hidden, kernel, stride=stride, groups=hidden, act=nn.SiLU, bn_eps=BN_EPS),
            SqueezeExcite(hidden, max(1, c_in // 4), act=nn.SiLU),
            ConvBNAct(hidden, c_out, 1, act=None, bn_eps=BN_EPS),
        ]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_residual else self.block(x)


def _efficientnet(width: float, depth: float, dropout: float, resolution: int) -> tuple[nn.Module, tuple[int, ...]]:
    stem = make_divisible(B0_STAGES[0][3] * width)
    layers: list[nn.Module] = [ConvBNAct(3, stem, 3, stride=2, act=nn.SiLU, bn_eps=BN_EPS)]
    for expand, kernel, stride, c_in, c_out, repeats in B0_STAGES:
        c_in, c_out = make_divisible(c_in * width), make_divisible(c_out * width)
        for i in range(math.ceil(repeats * depth)):
            layers.append(MBConv(c_in if i == 0 else c_out, c_out, kernel, stride if i == 0 else 1, expand))
    last_in = make_divisible(B0_STAGES[-1][4] * width)
    layers.append(ConvBNAct(last_in, 4 * last_in, 1, act=nn.SiLU, bn_eps=BN_EPS))
    return nn.Sequential(nn.Sequential(*layers), Classifier(4 * last_in, dropout=dropout)), (3, resolution, resolution)


@register_workload
def efficientnet_b0(*, resolution: int = 224) -> tuple[nn.Module, tuple[int, int, int]]:
    return _efficientnet(1.0, 1.0, 0.2, resolution)


@register_workload
def efficientnet_b1(*, resolution: int = 240) -> tuple[nn.Module, tuple[int, int, int]]:
    return _efficientnet(1.0, 1.1, 0.2, resolution)


@register_workload
def efficientnet_b2(*, resolution: int = 260) -> tuple[nn.Module, tuple[int, int, int]]:
    return _efficientnet(1.1, 1.2, 0.3, resolution)


@register_workload
def efficientnet_b3(*, resolution: int = 300) -> tuple[nn.Module, tuple[int, int, int]]:
    return _efficientnet(1.2, 1.4, 0.3, resolution)
