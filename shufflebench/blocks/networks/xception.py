"""The light-weight Xception of ShuffleNet V2's Table 8 and Figure 1 (0.5x, 1x, 1.5x, 2x: 40, 145, 305, 525 MFLOPs).

ShuffleNet V2 says only that its "Xception (our impl.)" rows are the light-weight Xception of Light-Head R-CNN (Li et
al., arXiv:1711.07264), not the original Xception of over 2 GFLOPs. Light-Head R-CNN's small backbone (its Table 7) is
the skeleton of ShuffleNet's Table 5: a 3x3 stride-2 convolution to 24 channels, a 3x3 stride-2 max pool, three stages
of 4, 8 and 4 units at 28, 14 and 7 pixels (144, 288 and 576 channels, 142 MFLOPs), a global pool and the classifier.
Its unit is Xception's: ReLU, a separable 3x3 convolution (depthwise, then pointwise), batch norm; the first unit of a
stage strides and widens, the others keep the shape, with Xception's residual shortcut around them.

Neither paper gives more of the unit or how the four levels were scaled, so the stage widths here are set per level so
that the FLOPs match Table 8 within 5% (stage 2 at 50, 108, 160 and 216 channels; stages 3 and 4 double it), as the
ShuffleNet papers adapt channel counts to hold complexity equal. The 1x has 108 channels where Light-Head's has 144:
with one separable convolution per unit, 144 would be 247 MFLOPs, so Light-Head's units must be lighter than Xception's
in a way neither paper records.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from shufflebench.blocks.layers import Classifier, ConvBNAct
from shufflebench.blocks.networks.shufflenet import STAGE_REPEATS
from shufflebench.blocks.registry import register_workload

STAGE2_CHANNELS = {0.5: 50, 1.0: 108, 1.5: 160, 2.0: 216}  # per level, for Table 8's FLOPs
STEM = 24


class XceptionUnit(nn.Module):
    """ReLU, separable 3x3 convolution, batch norm; the input added back when the shape is kept."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.residual = stride == 1 and c_in == c_out
        self.body = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False),
            ConvBNAct(c_in, c_out, 1, act=None),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out + x if self.residual else out


@register_workload
def xception(
    *, width: Literal[0.5, 1.0, 1.5, 2.0] = 1.0, resolution: int = 224
) -> tuple[nn.Module, tuple[int, int, int]]:
    """The light-weight Xception of Light-Head R-CNN at ShuffleNet V2 Table 8's ``width`` x level."""
    layers: list[nn.Module] = [ConvBNAct(3, STEM, 3, stride=2), nn.MaxPool2d(3, stride=2, padding=1)]
    c_in = STEM
    for stage, repeats in enumerate(STAGE_REPEATS):
        c_out = STAGE2_CHANNELS[width] * 2**stage
        for i in range(repeats):
            layers.append(XceptionUnit(c_in, c_out, 2 if i == 0 else 1))
            c_in = c_out
    return nn.Sequential(nn.Sequential(*layers), Classifier(c_in)), (3, resolution, resolution)
