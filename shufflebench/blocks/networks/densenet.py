"""DenseNet-121 (Huang et al., arXiv:1608.06993, Table 1; growth rate 32, blocks of 6/12/24/16 layers, bottleneck
4 x growth, compression 0.5), exactly as torchvision builds it. Every dense layer concatenates all earlier feature
maps: the data movement ShuffleNet V2's G3/G4 argue about.
"""

from __future__ import annotations

import torch
from torch import nn

from shufflebench.blocks.layers import Classifier
from shufflebench.blocks.registry import register_workload

GROWTH, BLOCKS, BOTTLENECK = 32, (6, 12, 24, 16), 4


def _bn_relu_conv(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False)
    )


class DenseLayer(nn.Module):
    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.layer = nn.Sequential(
            _bn_relu_conv(c_in, BOTTLENECK * GROWTH, 1), _bn_relu_conv(BOTTLENECK * GROWTH, GROWTH, 3)
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.layer(torch.cat(features, dim=1))


class DenseBlock(nn.Module):
    def __init__(self, c_in: int, n: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DenseLayer(c_in + i * GROWTH) for i in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(features))
        return torch.cat(features, dim=1)


@register_workload
def densenet121(*, resolution: int = 224) -> tuple[nn.Module, tuple[int, int, int]]:
    c = 64
    layers: list[nn.Module] = [
        nn.Conv2d(3, c, 7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(c),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2, padding=1),
    ]
    for i, n in enumerate(BLOCKS):
        layers.append(DenseBlock(c, n))
        c += n * GROWTH
        if i < len(BLOCKS) - 1:
            layers += [_bn_relu_conv(c, c // 2, 1), nn.AvgPool2d(2, stride=2)]
            c //= 2
    layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
    return nn.Sequential(nn.Sequential(*layers), Classifier(c)), (3, resolution, resolution)
