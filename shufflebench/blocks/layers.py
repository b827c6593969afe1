"""Pieces shared by the networks: conv-BN-activation, the channel shuffle, squeeze-excite, channel rounding."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never more than 10% down (TF/torchvision rule)."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class ConvBNAct(nn.Sequential):
    """Conv (no bias, "same" padding) -> BatchNorm -> activation, as torchvision's Conv2dNormActivation."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        act: Callable[..., nn.Module] | None = nn.ReLU,
        bn_eps: float = 1e-5,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out, eps=bn_eps),
        ]
        if act is not None:
            layers.append(act(inplace=True))
        super().__init__(*layers)


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: reshape to (groups, c/groups), transpose, flatten (ShuffleNet V1 Sec. 3.1).

    A named module so profiles and exported node names can be matched to it; written as view/transpose/contiguous
    with explicit sizes so it exports to ONNX as Reshape -> Transpose -> Reshape.
    """

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.size()
        x = x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).contiguous()
        return x.view(n, c, h, w)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global pool -> 1x1 conv -> act -> 1x1 conv -> sigmoid -> scale (torchvision's)."""

    def __init__(self, channels: int, squeeze_channels: int, act: Callable[..., nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.act = act(inplace=True)
        self.scale = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.scale(self.fc2(self.act(self.fc1(self.avgpool(x)))))
        return x * s


class Classifier(nn.Sequential):
    """Global average pool -> flatten -> (dropout) -> linear."""

    def __init__(self, channels: int, num_classes: int = 1000, dropout: float = 0.0, bias: bool = True) -> None:
        layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(channels, num_classes, bias=bias))
        super().__init__(*layers)
