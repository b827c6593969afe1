"""Published parameter counts and FLOPs of the networks, with their sources.

The quotes and fuller provenance are in the project's reference notes (papers.yaml). ``params`` is an int where the
source gives an exact count (torchvision's weight metadata, imgclsmob's tables) and the printed text otherwise;
``mflops`` is multiply-adds in millions, as printed. Rows marked ``reproducible=False`` are the ShuffleNet V2
authors' own re-implementations of MobileNet v2 at widths whose channel rounding they never published: no rounding
rule (multiples of 8, 4, 2 or 1) reproduces their FLOPs, so we build those widths as torchvision rounds them and show
the paper's number beside ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Published:
    workload: str
    args: dict[str, Any] = field(default_factory=dict)
    params: int | str | None = None  # int: exact count; str: as printed, e.g. "2.3M"
    mflops: float | None = None
    source: str = ""
    reproducible: bool = True


SNV2 = "ShuffleNet V2 Table 8"
PUBLISHED = [
    Published("mobilenet_v1", {"width": 1.0}, 4_231_976, 569, "MobileNet v1 Table 6; params imgclsmob"),
    Published("mobilenet_v1", {"width": 0.75}, 2_585_560, 325, "MobileNet v1 Table 6; params imgclsmob"),
    Published("mobilenet_v1", {"width": 0.5}, 1_331_592, 149, "MobileNet v1 Table 6; params imgclsmob"),
    Published("mobilenet_v1", {"width": 0.25}, 470_072, 41, "MobileNet v1 Table 6; params imgclsmob"),
    Published("mobilenet_v2", {"width": 1.0}, 3_504_872, 300, "MobileNet v2 Table 4; params torchvision"),
    Published("mobilenet_v2", {"width": 1.4}, None, 585, "MobileNet v2 Table 4"),
    Published("mobilenet_v2", {"width": 0.75, "resolution": 192}, None, 145, SNV2 + " (our impl.)", reproducible=False),
    Published("mobilenet_v2", {"width": 0.6}, None, 141, SNV2 + " (our impl.)", reproducible=False),
    Published("mobilenet_v2", {"width": 0.4, "resolution": 160}, None, 43, SNV2 + " (our impl.)", reproducible=False),
    Published("mobilenet_v2", {"width": 0.15}, None, 39, SNV2 + " (our impl.)", reproducible=False),
    Published("shufflenet_v1", {"groups": 1}, None, 143, "ShuffleNet V1 Table 1"),
    Published("shufflenet_v1", {"groups": 2}, None, 140, "ShuffleNet V1 Table 1"),
    Published("shufflenet_v1", {"groups": 3}, "1.9M", 137, "ShuffleNet V1 Table 1; params megvii"),
    Published("shufflenet_v1", {"groups": 4}, None, 133, "ShuffleNet V1 Table 1"),
    Published("shufflenet_v1", {"groups": 8}, "2.4M", 137, "ShuffleNet V1 Table 1; params megvii"),
    Published("shufflenet_v1", {"groups": 3, "width": 0.25}, None, 13, "ShuffleNet V1 Table 2"),
    Published("shufflenet_v1", {"groups": 3, "width": 0.5}, "0.7M", 38, "ShuffleNet V1 Table 2; params megvii"),
    Published("shufflenet_v1", {"groups": 3, "width": 1.5}, "3.4M", 292, "ShuffleNet V1 Table 5; megvii"),
    Published("shufflenet_v1", {"groups": 3, "width": 2.0}, "5.4M", 524, "ShuffleNet V1 Table 5; megvii"),
    Published("shufflenet_v2", {"width": 0.5}, "1.4M", 41, "ShuffleNet V2 Table 5"),
    Published("shufflenet_v2", {"width": 1.0}, 2_278_604, 146, "ShuffleNet V2 Table 5; params torchvision"),
    Published("shufflenet_v2", {"width": 1.5}, "3.5M", 299, "ShuffleNet V2 Table 5"),
    Published("shufflenet_v2", {"width": 2.0}, "7.4M", 591, "ShuffleNet V2 Table 5"),
    Published("resnet18", {}, None, 1814, "torchvision (paper: 1.8G)"),
    Published("resnet34", {}, None, 3600, "ResNet Table 1"),
    Published("resnet50", {}, 25_557_032, 4089, "torchvision, v1.5 (paper v1: 3.8G)"),
    Published("resnext50_32x4d", {}, "25.03M", 4270, "mmpretrain"),
    Published("efficientnet_b0", {}, 5_288_548, 390, "EfficientNet Table 2; params torchvision"),
    Published("efficientnet_b1", {}, "7.8M", 700, "EfficientNet Table 2"),
    Published("efficientnet_b2", {}, "9.2M", 1000, "EfficientNet Table 2"),
    Published("efficientnet_b3", {}, "12M", 1800, "EfficientNet Table 2"),
    Published("densenet121", {}, None, None, "no published number in our references"),
]


def flops_match(counted_mflops: float, published_mflops: float) -> bool:
    """Within 2%, or within the rounding of the printed number (papers print whole MFLOPs)."""
    return abs(counted_mflops - published_mflops) <= max(0.02 * published_mflops, 0.5)


def params_match(counted: int, published: int | str) -> bool:
    """Exact for an exact count; otherwise within 2% or half the last printed digit ("2.3M": 2.25M to 2.35M)."""
    if isinstance(published, int):
        return counted == published
    number = published.removesuffix("M")
    value, half_step = float(number) * 1e6, 0.5 * 10 ** (6 - len(number.partition(".")[2]))
    return abs(counted - value) <= max(half_step, 0.02 * value)
