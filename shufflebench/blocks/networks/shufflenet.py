"""ShuffleNet V2 (Ma et al., arXiv:1807.11164, Table 5 and Fig. 3) exactly as torchvision builds it, and ShuffleNet V1
(Zhang et al., arXiv:1707.01083, Table 1 and Sec. 3.2) as the authors' code (megvii-model/ShuffleNet-Series) does.

ShuffleNet V1 widths: Table 1 gives the 1x channels per group count; "ShuffleNet s x" scales them by s. Stage widths
are rounded to a multiple of 4 * groups, so the bottleneck (a quarter of the width) splits evenly into groups. The
stem has 24 channels (12 at 0.25x and 0.5x, 48 at 2x, as the authors' code), rounded up to a multiple of groups so
the first unit's concatenated branch splits evenly too. The first pointwise conv of Stage 2 is not grouped.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from shufflebench.blocks.layers import ChannelShuffle, Classifier, ConvBNAct
from shufflebench.blocks.registry import register_workload

STAGE_REPEATS = (4, 8, 4)  # Stage2, Stage3, Stage4 in both versions

# Table 5: output channels of Conv1, Stage2-4 and Conv5 per width.
SHUFFLENET_V2_CHANNELS = {
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
    2.0: (24, 244, 488, 976, 2048),
}

# Table 1 of ShuffleNet V1: Stage2 output channels at 1x per group count (Stage3 doubles, Stage4 quadruples).
SHUFFLENET_V1_STAGE2 = {1: 144, 2: 200, 3: 240, 4: 272, 8: 384}
SHUFFLENET_V1_STEM = {0.25: 12, 0.5: 12, 1.0: 24, 1.5: 24, 2.0: 48}


def _dw(channels: int, stride: int) -> ConvBNAct:
    return ConvBNAct(channels, channels, 3, stride=stride, groups=channels, act=None)


class ShuffleV2Unit(nn.Module):
    """Fig. 3 (c) basic unit (channel split, stride 1) and (d) down-sampling unit (stride 2)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        branch = c_out // 2
        if stride > 1:
            self.branch1 = nn.Sequential(_dw(c_in, stride), ConvBNAct(c_in, branch, 1))
        self.branch2 = nn.Sequential(
            ConvBNAct(c_in if stride > 1 else branch, branch, 1), _dw(branch, stride), ConvBNAct(branch, branch, 1)
        )
        self.shuffle = ChannelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return self.shuffle(out)


@register_workload
def shufflenet_v2(
    *, width: Literal[0.5, 1.0, 1.5, 2.0] = 1.0, resolution: int = 224
) -> tuple[nn.Module, tuple[int, int, int]]:
    """ShuffleNet V2 at ``width`` x (Table 5)."""
    stem, *stages, conv5 = SHUFFLENET_V2_CHANNELS[width]
    layers: list[nn.Module] = [ConvBNAct(3, stem, 3, stride=2), nn.MaxPool2d(3, stride=2, padding=1)]
    c_in = stem
    for repeats, c_out in zip(STAGE_REPEATS, stages):
        layers += [ShuffleV2Unit(c_in, c_out, 2), *(ShuffleV2Unit(c_out, c_out, 1) for _ in range(repeats - 1))]
        c_in = c_out
    layers.append(ConvBNAct(c_in, conv5, 1))
    return nn.Sequential(nn.Sequential(*layers), Classifier(conv5)), (3, resolution, resolution)


class ShuffleV1Unit(nn.Module):
    """ShuffleNet V1 unit (Fig. 2 b, c): 1x1 GConv -> shuffle -> 3x3 DWConv -> 1x1 GConv; add (stride 1) or
    concat with a 3x3 average-pooled shortcut (stride 2)."""

    def __init__(self, c_in: int, c_out: int, stride: int, groups: int, group_first: bool) -> None:
        super().__init__()
        self.stride = stride
        mid = c_out // 4
        branch_out = c_out - c_in if stride == 2 else c_out
        self.expand = ConvBNAct(c_in, mid, 1, groups=groups if group_first else 1)
        self.shuffle = ChannelShuffle(groups) if groups > 1 else nn.Identity()
        self.dw = _dw(mid, stride)
        self.project = ConvBNAct(mid, branch_out, 1, groups=groups, act=None)
        self.relu = nn.ReLU(inplace=True)
        if stride == 2:
            self.shortcut = nn.AvgPool2d(3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.dw(self.shuffle(self.expand(x))))
        if self.stride == 1:
            return self.relu(out + x)
        return torch.cat((self.shortcut(x), self.relu(out)), dim=1)


@register_workload
def shufflenet_v1(
    *, groups: Literal[1, 2, 3, 4, 8] = 3, width: Literal[0.25, 0.5, 1.0, 1.5, 2.0] = 1.0, resolution: int = 224
) -> tuple[nn.Module, tuple[int, int, int]]:
    """ShuffleNet V1 ``width`` x with ``groups`` groups in its pointwise convs (Table 1)."""
    multiple = 4 * groups
    stage2 = max(multiple, round(SHUFFLENET_V1_STAGE2[groups] * width / multiple) * multiple)
    stem = -(-SHUFFLENET_V1_STEM[width] // groups) * groups  # round up to a multiple of groups
    layers: list[nn.Module] = [ConvBNAct(3, stem, 3, stride=2), nn.MaxPool2d(3, stride=2, padding=1)]
    c_in = stem
    for stage, repeats in enumerate(STAGE_REPEATS):
        c_out = stage2 * 2**stage
        for i in range(repeats):
            group_first = not (stage == 0 and i == 0)
            layers.append(ShuffleV1Unit(c_in, c_out, 2 if i == 0 else 1, groups, group_first))
            c_in = c_out
    return nn.Sequential(nn.Sequential(*layers), Classifier(c_in, bias=False)), (3, resolution, resolution)
