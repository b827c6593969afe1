"""ResNet-18/34/50 (He et al., arXiv:1512.03385, Table 1) and ResNeXt-50 32x4d (Xie et al., arXiv:1611.05431), exactly
as torchvision builds them: ResNet "v1.5" with the bottleneck's stride on the 3x3 conv, so ResNet-50 has 4.09 GFLOPs
rather than the paper's 3.8.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch
from torch import nn

from shufflebench.blocks.layers import Classifier, ConvBNAct
from shufflebench.blocks.registry import register_workload


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(c_in, planes, 3, stride=stride)
        self.conv2 = ConvBNAct(planes, planes, 3, act=None)
        self.downsample = _downsample(c_in, planes, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.downsample(x))


class Bottleneck(nn.Module):
    def __init__(self, c_in: int, planes: int, stride: int, groups: int = 1, base_width: int = 64) -> None:
        super().__init__()
        width = int(planes * base_width / 64) * groups
        self.conv1 = ConvBNAct(c_in, width, 1)
        self.conv2 = ConvBNAct(width, width, 3, stride=stride, groups=groups)
        self.conv3 = ConvBNAct(width, planes * 4, 1, act=None)
        self.downsample = _downsample(c_in, planes * 4, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv3(self.conv2(self.conv1(x))) + self.downsample(x))


def _downsample(c_in: int, c_out: int, stride: int) -> nn.Module:
    return ConvBNAct(c_in, c_out, 1, stride=stride, act=None) if stride != 1 or c_in != c_out else nn.Identity()


def _resnet(
    block: Callable[[int, int, int], nn.Module], expansion: int, repeats: tuple[int, ...], resolution: int
) -> tuple[nn.Module, tuple[int, int, int]]:
    layers: list[nn.Module] = [ConvBNAct(3, 64, 7, stride=2), nn.MaxPool2d(3, stride=2, padding=1)]
    c_in = 64
    for stage, n in enumerate(repeats):
        planes = 64 * 2**stage
        for i in range(n):
            layers.append(block(c_in, planes, 2 if i == 0 and stage > 0 else 1))
            c_in = planes * expansion
    return nn.Sequential(nn.Sequential(*layers), Classifier(c_in)), (3, resolution, resolution)


@register_workload
def resnet18(*, resolution: int = 224) -> tuple[nn.Module, tuple[int, int, int]]:
    return _resnet(BasicBlock, 1, (2, 2, 2, 2), resolution)


@register_workload
def resnet34(*, resolution: int = 224) -> tuple[nn.Module, tuple[int, int, int]]:
    return _resnet(BasicBlock, 1, (3, 4, 6, 3), resolution)


@register_workload
def resnet50(*, resolution: int = 224) -> tuple[nn.Module, tuple[int, int, int]]:
    return _resnet(Bottleneck, 4, (3, 4, 6, 3), resolution)


@register_workload
def resnext50_32x4d(*, resolution: int = 224) -> tuple[nn.Module, tuple[int, int, int]]:
    return _resnet(partial(Bottleneck, groups=32, base_width=4), 4, (3, 4, 6, 3), resolution)
