"""The four guideline micro-benchmarks of ShuffleNet V2 (Ma et al., ECCV 2018, arXiv:1807.11164, Sec. 2-3).

Each workload stacks a building block 10 times on a ``hw`` x ``hw`` feature map (56 x 56 in Tables 1-3), as the
paper describes. Convolutions are plain: no bias, no batch norm and, except in G4, no activation, which is the
setting of the paper's MAC analysis. Parameter names are the paper's symbols.

- G1 (Table 1), equal channel width minimises MAC: each block is a 1x1 conv c1 -> c2 followed by a 1x1 conv
  c2 -> c1. Per block FLOPs = 2*hw*c1*c2 and MAC = 2*hw*(c1 + c2) + 2*c1*c2.
- G2 (Table 2), group convolution raises MAC: 10 stacked 1x1 group convs with c input and c output channels and g
  groups. Per layer FLOPs = hw*c^2/g and MAC = 2*hw*c + c^2/g. Reading c as the per-layer width is the only reading
  that keeps FLOPs constant across the table's (g, c) pairs.
- G3 (Table 3, Appendix Fig. 1), fragmentation reduces parallelism: a block of k 1x1 convs in series or in parallel
  (parallel branches share the input and are merged by element-wise addition). The paper only says the fragmented
  blocks' widths are "adjusted so that the FLOPs is the same as 1-fragment". Our rule: every conv in a k-fragment
  block maps w -> w channels with w = round(c / sqrt(k)), so a block costs k*hw*w^2 ~= hw*c^2 FLOPs (within 2% for
  the paper's c; for c = 128, k = 2 this gives w = 91, the rounding the paper itself uses in G1/G2 for 128/sqrt(2)).
- G4 (Table 4), element-wise operations are not free: 10 stacked ResNet bottleneck units (1x1, 3x3, 1x1) whose ReLUs
  and identity shortcut can be switched off separately. We read the paper's "c is the number of channels in unit"
  as the unit's input/output width, with ResNet's bottleneck width c/4 inside: this is the reading under which the
  paper's G4 speeds are consistent with its G1 speeds at similar FLOPs (c as the inner width would make the c = 128
  unit 16x costlier than the G1 x1 network while the paper measures it about as fast). The caption gives no input
  size; we use the 56 x 56 of Tables 1-3. No batch norm, as in G1-G3.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from shufflebench.blocks.registry import register_workload, require

DEPTH = 10  # "stacking 10 building blocks repeatedly" (all four experiments)

G3Structure = Literal[
    "1-fragment", "2-fragment-series", "4-fragment-series", "2-fragment-parallel", "4-fragment-parallel"
]


def _conv1x1(c_in: int, c_out: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=1, groups=groups, bias=False)


@register_workload
def g1(*, c1: int, c2: int, hw: int = 56) -> tuple[nn.Module, tuple[int, int, int]]:
    """G1: 10 blocks of 1x1 conv c1 -> c2 then 1x1 conv c2 -> c1 (Table 1)."""
    module = nn.Sequential(*(nn.Sequential(_conv1x1(c1, c2), _conv1x1(c2, c1)) for _ in range(DEPTH)))
    return module, (c1, hw, hw)


@register_workload
def g2(*, g: int, c: int, hw: int = 56) -> tuple[nn.Module, tuple[int, int, int]]:
    """G2: 10 stacked 1x1 group convs, c -> c channels in g groups (Table 2)."""
    require(c % g == 0, f"g={g} must divide c={c} (a group conv splits the channels evenly)")
    module = nn.Sequential(*(_conv1x1(c, c, groups=g) for _ in range(DEPTH)))
    return module, (c, hw, hw)


def fragment_width(c: int, fragments: int) -> int:
    """Width of each conv in a ``fragments``-conv block with the FLOPs of one c -> c conv (module docstring)."""
    return max(1, round(c / math.sqrt(fragments)))


class ParallelSum(nn.Module):
    """Branches applied to the same input and merged by element-wise addition (Appendix Fig. 1 d, e)."""

    def __init__(self, branches: list[nn.Module]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branches[0](x)
        for branch in self.branches[1:]:
            out = out + branch(x)
        return out


@register_workload
def g3(*, structure: G3Structure, c: int, hw: int = 56) -> tuple[nn.Module, tuple[int, int, int]]:
    """G3: 10 stacked blocks of 1, 2 or 4 1x1 convs in series or in parallel, at equal FLOPs (Table 3)."""
    fragments = int(structure[0])
    w = fragment_width(c, fragments)

    def block() -> nn.Module:
        convs = [_conv1x1(w, w) for _ in range(fragments)]
        return ParallelSum(convs) if structure.endswith("parallel") else nn.Sequential(*convs)

    return nn.Sequential(*(block() for _ in range(DEPTH))), (w, hw, hw)


class Bottleneck(nn.Module):
    """ResNet bottleneck unit c -> c/4 -> c/4 -> c with switchable ReLUs and identity shortcut (Table 4)."""

    def __init__(self, c: int, *, relu: bool, shortcut: bool) -> None:
        super().__init__()
        width = c // 4
        self.conv1 = nn.Conv2d(c, width, kernel_size=1, bias=False)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, padding=1, bias=False)
        self.conv3 = nn.Conv2d(width, c, kernel_size=1, bias=False)
        self.act = nn.ReLU(inplace=True) if relu else nn.Identity()
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.conv1(x))
        out = self.act(self.conv2(out))
        out = self.conv3(out)
        if self.shortcut:
            out = out + x
        return self.act(out)


@register_workload
def g4(*, c: int, relu: bool = True, shortcut: bool = True, hw: int = 56) -> tuple[nn.Module, tuple[int, int, int]]:
    """G4: 10 stacked ResNet bottleneck units of width c, ReLU and shortcut switchable (Table 4)."""
    require(c % 4 == 0, f"c={c} must be a multiple of 4 (the bottleneck width is c/4)")
    module = nn.Sequential(*(Bottleneck(c, relu=relu, shortcut=shortcut) for _ in range(DEPTH)))
    return module, (c, hw, hw)
