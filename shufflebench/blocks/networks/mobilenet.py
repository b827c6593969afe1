"""MobileNet v1 (Howard et al., arXiv:1704.04861, Table 1) and MobileNet v2 (Sandler et al., arXiv:1801.04381,
Table 2), the latter exactly as torchvision builds it (channel rounding to multiples of 8, ReLU6, dropout classifier).

MobileNet v1 has no torchvision model; it follows Table 1 with batch norm and ReLU after every conv (Fig. 3), the
7x7 depthwise conv at stride 1 (Table 1's second-to-last "s2" is a known typo) and a biased classifier.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from shufflebench.blocks.layers import Classifier, ConvBNAct, make_divisible
from shufflebench.blocks.registry import register_workload

# (output channels, stride) of each depthwise-separable block, Table 1 of the MobileNet v1 paper.
MOBILENET_V1_BLOCKS = [
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
]

# t (expansion), c (output channels), n (repeats), s (stride of the first), Table 2 of the MobileNet v2 paper.
MOBILENET_V2_STAGES = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


@register_workload
def mobilenet_v1(
    *, width: Literal[0.25, 0.5, 0.75, 1.0] = 1.0, resolution: int = 224
) -> tuple[nn.Module, tuple[int, int, int]]:
    """MobileNet v1 with width multiplier alpha = ``width``."""
    c_in = int(32 * width)
    layers: list[nn.Module] = [ConvBNAct(3, c_in, 3, stride=2)]
    for c, stride in MOBILENET_V1_BLOCKS:
        c_out = int(c * width)
        layers += [ConvBNAct(c_in, c_in, 3, stride=stride, groups=c_in), ConvBNAct(c_in, c_out, 1)]
        c_in = c_out
    return nn.Sequential(nn.Sequential(*layers), Classifier(c_in)), (3, resolution, resolution)


class InvertedResidual(nn.Module):
    """MobileNet v2 bottleneck: 1x1 expand (ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 linear, residual at stride 1."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = int(round(c_in * expand))
        layers: list[nn.Module] = [] if expand == 1 else [ConvBNAct(c_in, hidden, 1, act=nn.ReLU6)]
        layers += [
            ConvBNAct(hidden, hidden, 3, stride=stride, groups=hidden, act=nn.ReLU6),
            ConvBNAct(hidden, c_out, 1, act=None),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


@register_workload
def mobilenet_v2(
    *, width: Literal[0.15, 0.35, 0.4, 0.5, 0.6, 0.75, 1.0, 1.3, 1.4] = 1.0, resolution: int = 224
) -> tuple[nn.Module, tuple[int, int, int]]:
    """MobileNet v2 with width multiplier ``width`` (the last conv keeps 1280 channels for widths below 1)."""
    c_in = make_divisible(32 * width)
    last = make_divisible(1280 * max(1.0, width))
    layers: list[nn.Module] = [ConvBNAct(3, c_in, 3, stride=2, act=nn.ReLU6)]
    for t, c, n, s in MOBILENET_V2_STAGES:
        c_out = make_divisible(c * width)
        for i in range(n):
            layers.append(InvertedResidual(c_in, c_out, s if i == 0 else 1, t))
            c_in = c_out
    layers.append(ConvBNAct(c_in, last, 1, act=nn.ReLU6))
    return nn.Sequential(nn.Sequential(*layers), Classifier(last, dropout=0.2)), (3, resolution, resolution)
