"""Single-op workloads for the latency predictor's calibration sweep (shufflebench.calibrate, shufflebench.predict).

Each stacks one kind of op ``repeat`` times at one shape, so that a cell's time is the op's time (times ``repeat``)
plus the fixed cost of one call: convolutions (1x1, kxk, depthwise, grouped; 1x1 also widening and narrowing in
turn), element-wise ops (add, multiply, the activations the networks use, batch norm), a split-and-concatenate, the
channel shuffle and linear layers. Shapes are preserved from one op to the next (stride 1, same padding), so the ops
chain. Pools and a network's first convolution (the stem, on the RGB image) run once, as the networks run them.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from shufflebench.blocks.layers import ChannelShuffle
from shufflebench.blocks.registry import register_workload, require


@register_workload
def op_conv(
    *, c: int, hw: int, k: Literal[1, 3, 5] = 1, groups: int = 1, repeat: int = 5
) -> tuple[nn.Module, tuple[int, int, int]]:
    """``repeat`` convolutions c -> c, k x k, ``groups`` groups (``groups = c``: depthwise), no bias."""
    require(c % groups == 0, f"groups={groups} must divide c={c}")
    convs = [nn.Conv2d(c, c, k, padding=k // 2, groups=groups, bias=False) for _ in range(repeat)]
    return nn.Sequential(*convs), (c, hw, hw)


@register_workload
def op_pointwise(*, c: int, hw: int, expand: int = 6, repeat: int = 5) -> tuple[nn.Module, tuple[int, int, int]]:
    """``repeat`` 1x1 convolutions that widen c -> c * ``expand`` and narrow back in turn, no bias: the expansion and
    projection of MobileNet v2's and EfficientNet's units, few channels on large images."""
    widths = [c if i % 2 == 0 else c * expand for i in range(repeat + 1)]
    convs = [nn.Conv2d(a, b, 1, bias=False) for a, b in zip(widths, widths[1:])]
    return nn.Sequential(*convs), (c, hw, hw)


class _Elementwise(nn.Module):
    def __init__(self, op: str, c: int, hw: int) -> None:
        super().__init__()
        self.op = op
        if op == "add":  # a residual: another tensor of the same shape
            self.other = nn.Parameter(torch.randn(1, c, hw, hw))
        elif op == "mul":  # squeeze-excite's scaling: one factor per channel
            self.other = nn.Parameter(torch.randn(1, c, 1, 1))
        else:
            self.layer = {
                "relu": nn.ReLU,
                "relu6": nn.ReLU6,
                "sigmoid": nn.Sigmoid,
                "hardswish": nn.Hardswish,
                "silu": nn.SiLU,
                "bn": lambda: nn.BatchNorm2d(c),
            }[op]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.op == "add":
            return x + self.other
        if self.op == "mul":
            return x * self.other
        return self.layer(x)


@register_workload
def op_elementwise(
    *,
    op: Literal["add", "mul", "relu", "relu6", "sigmoid", "hardswish", "silu", "bn"],
    c: int,
    hw: int,
    repeat: int = 5,
) -> tuple[nn.Module, tuple[int, int, int]]:
    """``repeat`` element-wise ops on a c x hw x hw tensor."""
    return nn.Sequential(*[_Elementwise(op, c, hw) for _ in range(repeat)]), (c, hw, hw)


class _SwapHalves(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return torch.cat([b, a], dim=1)


@register_workload
def op_concat(*, c: int, hw: int, repeat: int = 5) -> tuple[nn.Module, tuple[int, int, int]]:
    """``repeat`` times: split the channels in halves and concatenate them swapped (ShuffleNet V2's data movement)."""
    require(c % 2 == 0, f"c={c} must be even")
    return nn.Sequential(*[_SwapHalves() for _ in range(repeat)]), (c, hw, hw)


@register_workload
def op_shuffle(*, c: int, hw: int, groups: int = 2, repeat: int = 5) -> tuple[nn.Module, tuple[int, int, int]]:
    """``repeat`` channel shuffles of ``groups`` groups."""
    require(c % groups == 0, f"groups={groups} must divide c={c}")
    return nn.Sequential(*[ChannelShuffle(groups) for _ in range(repeat)]), (c, hw, hw)


@register_workload
def op_pool(*, kind: Literal["max", "avg", "global"], c: int, hw: int) -> tuple[nn.Module, tuple[int, int, int]]:
    """One pool as the networks run them: 3 x 3 with stride 2 (max: the ResNet and ShuffleNet stems; average:
    ShuffleNet v1's shortcut), or a global average pool."""
    if kind == "global":
        return nn.AdaptiveAvgPool2d(1), (c, hw, hw)
    layer = nn.MaxPool2d if kind == "max" else nn.AvgPool2d
    return layer(3, stride=2, padding=1), (c, hw, hw)


@register_workload
def op_stem(*, c: int, resolution: int, k: Literal[3, 7] = 3) -> tuple[nn.Module, tuple[int, int, int]]:
    """A network's first convolution: an RGB image of ``resolution`` to ``c`` channels, k x k, stride 2."""
    return nn.Conv2d(3, c, k, stride=2, padding=k // 2, bias=False), (3, resolution, resolution)


@register_workload
def op_linear(*, c: int, repeat: int = 5) -> tuple[nn.Module, tuple[int, int, int]]:
    """A flatten, then ``repeat`` linear layers c -> c (a classifier head's matrix products)."""
    return nn.Sequential(nn.Flatten(), *[nn.Linear(c, c) for _ in range(repeat)]), (c, 1, 1)
