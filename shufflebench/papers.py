"""The papers' data in one place: ShuffleNet V2's Tables 1-4, Table 8 and Figure 2, and the published parameter
counts and FLOPs of the networks, each with its source. Torch-free, so reports and compare read it anywhere.

The numbers are copied from the reference notes (papers.yaml). For Tables 1-4, GPU values are the paper's GTX 1080Ti
column (batches/s), CPU values its ARM column (images/s, Snapdragon 810, one thread). ``Published.params`` is an int
where the source gives an exact count (torchvision's weight metadata, imgclsmob's tables) and the printed text
otherwise; ``mflops`` is multiply-adds in millions, as printed. Rows marked ``reproducible=False`` are the ShuffleNet
V2 authors' own re-implementations of MobileNet v2 at widths whose channel rounding they never published: no
rounding rule (multiples of 8, 4, 2 or 1) reproduces their FLOPs, so those widths are built as torchvision rounds
them and the paper's number is shown beside ours.

``series(workload)`` says which experiment a workload belongs to: a guideline table's (``g1``..``g4``), the networks,
or neither; the report groups its rows by it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PaperTable:
    number: int
    guideline: str
    workload: str
    row_labels: list[str]
    row_args: list[dict[str, Any]]  # the arguments that select a row (at x1 for G1/G2)
    columns: dict[str, list[str]]  # platform -> column labels
    column_args: dict[str, list[dict[str, Any]]]  # platform -> per column, the arguments it adds or scales
    values: dict[str, list[list[float]]]  # platform -> rows x columns, paper's speed

    def cells(self, platform: str) -> list[tuple[str, str, dict[str, Any], float]]:
        """(row label, column label, workload args, paper value) for every cell of the table on ``platform``."""
        out = []
        for r, (label, row_args) in enumerate(zip(self.row_labels, self.row_args)):
            platform_row = row_args.get(platform, row_args)
            for c, column in enumerate(self.columns[platform]):
                args = _combine(platform_row, self.column_args[platform][c])
                out.append((label, column, args, self.values[platform][r][c]))
        return out


def _combine(row: dict[str, Any], column: dict[str, Any]) -> dict[str, Any]:
    scale = column.get("scale")
    if scale is None:
        return {**row, **column}
    args = {k: v * scale if k in ("c1", "c2", "c") else v for k, v in row.items()}
    if "g" in args:  # a group conv needs g | c: nearest multiple of g, upwards on a tie (CPU x1 g=8: 180 -> 184)
        args["c"] = args["g"] * math.floor(args["c"] / args["g"] + 0.5)
    return args


SCALES = [{"scale": 1}, {"scale": 2}, {"scale": 4}]
TABLES = [
    PaperTable(
        1,
        "G1: equal channel width minimises MAC",
        "g1",
        ["1:1", "1:2", "1:6", "1:12"],
        [
            {"gpu": {"c1": 128, "c2": 128}, "cpu": {"c1": 32, "c2": 32}},
            {"gpu": {"c1": 90, "c2": 180}, "cpu": {"c1": 22, "c2": 44}},
            {"gpu": {"c1": 52, "c2": 312}, "cpu": {"c1": 13, "c2": 78}},
            {"gpu": {"c1": 36, "c2": 432}, "cpu": {"c1": 9, "c2": 108}},
        ],
        {"gpu": ["x1", "x2", "x4"], "cpu": ["x1", "x2", "x4"]},
        {"gpu": SCALES, "cpu": SCALES},
        {
            "gpu": [[1480, 723, 232], [1296, 586, 206], [876, 489, 189], [748, 392, 163]],
            "cpu": [[76.2, 21.7, 5.3], [72.9, 20.5, 5.1], [69.1, 17.9, 4.6], [57.6, 15.1, 4.4]],
        },
    ),
    PaperTable(
        2,
        "G2: excessive group convolution increases MAC",
        "g2",
        ["g=1", "g=2", "g=4", "g=8"],
        # CPU g=8 x1: the paper prints c=180, which 8 does not divide; _combine builds 184 (configs/paper/g2.yaml).
        [
            {"gpu": {"g": 1, "c": 128}, "cpu": {"g": 1, "c": 64}},
            {"gpu": {"g": 2, "c": 180}, "cpu": {"g": 2, "c": 90}},
            {"gpu": {"g": 4, "c": 256}, "cpu": {"g": 4, "c": 128}},
            {"gpu": {"g": 8, "c": 360}, "cpu": {"g": 8, "c": 180}},
        ],
        {"gpu": ["x1", "x2", "x4"], "cpu": ["x1", "x2", "x4"]},
        {"gpu": SCALES, "cpu": SCALES},
        {
            "gpu": [[2451, 1289, 437], [1725, 873, 341], [1026, 644, 338], [634, 445, 230]],
            "cpu": [[40.0, 10.2, 2.3], [35.0, 9.5, 2.2], [32.9, 8.7, 2.1], [27.8, 7.5, 1.8]],
        },
    ),
    PaperTable(
        3,
        "G3: network fragmentation reduces parallelism",
        "g3",
        ["1-fragment", "2-fragment-series", "4-fragment-series", "2-fragment-parallel", "4-fragment-parallel"],
        [
            {"structure": s}
            for s in [
                "1-fragment",
                "2-fragment-series",
                "4-fragment-series",
                "2-fragment-parallel",
                "4-fragment-parallel",
            ]
        ],
        {"gpu": ["c=128", "c=256", "c=512"], "cpu": ["c=64", "c=128", "c=256"]},
        {"gpu": [{"c": 128}, {"c": 256}, {"c": 512}], "cpu": [{"c": 64}, {"c": 128}, {"c": 256}]},
        {
            "gpu": [[2446, 1274, 434], [1790, 909, 336], [752, 745, 349], [1537, 803, 320], [691, 572, 292]],
            "cpu": [[40.2, 10.1, 2.3], [38.6, 10.1, 2.2], [38.4, 10.1, 2.3], [33.4, 9.1, 2.2], [35.0, 8.4, 2.1]],
        },
    ),
    PaperTable(
        4,
        "G4: element-wise operations are non-negligible",
        "g4",
        ["ReLU, shortcut", "ReLU only", "shortcut only", "neither"],
        [
            {"relu": True, "shortcut": True},
            {"relu": True, "shortcut": False},
            {"relu": False, "shortcut": True},
            {"relu": False, "shortcut": False},
        ],
        {"gpu": ["c=32", "c=64", "c=128"], "cpu": ["c=32", "c=64", "c=128"]},
        {"gpu": [{"c": 32}, {"c": 64}, {"c": 128}], "cpu": [{"c": 32}, {"c": 64}, {"c": 128}]},
        {
            "gpu": [[2427, 2066, 1436], [2647, 2256, 1735], [2672, 2121, 1458], [2842, 2376, 1782]],
            "cpu": [[56.7, 16.9, 5.0], [61.9, 18.8, 5.2], [57.3, 18.2, 5.1], [66.3, 20.2, 5.4]],
        },
    ),
]
UNITS = {"gpu": ("batches_per_s", "batches/s", "GTX 1080Ti"), "cpu": ("images_per_s", "images/s", "ARM")}


# Figure 2 of the paper: percent of run time per category (pie-chart labels).
FIGURE2 = {
    ("shufflenet_v1 1x g=3", "paper GPU"): {"Conv": 50, "Data": 20, "Elemwise": 15, "Other": 10, "Shuffle": 5},
    ("shufflenet_v1 1x g=3", "paper ARM"): {"Conv": 87, "Other": 8, "Elemwise": 4, "Data": 1, "Shuffle": 0},
    ("mobilenet_v2 1x", "paper GPU"): {"Conv": 54, "Data": 22, "Elemwise": 23, "Other": 1, "Shuffle": 0},
    ("mobilenet_v2 1x", "paper ARM"): {"Conv": 89, "Elemwise": 10.5, "Data": 0.3, "Other": 0.2, "Shuffle": 0},
}


# Table 8: (GPU batches/s at batch 8, ARM images/s at batch 1) per network, at 224x224 unless a resolution is given.
TABLE8 = {
    ("shufflenet_v2", (("width", 0.5),)): (417, 57.0),
    ("shufflenet_v2", (("width", 1.0),)): (341, 24.4),
    ("shufflenet_v2", (("width", 1.5),)): (255, 11.8),
    ("shufflenet_v2", (("width", 2.0),)): (217, 6.7),
    ("shufflenet_v1", (("groups", 3), ("width", 0.5))): (347, 56.8),
    ("shufflenet_v1", (("groups", 3), ("width", 1.0))): (213, 21.8),
    ("shufflenet_v1", (("groups", 3), ("width", 1.5))): (164, 10.3),
    ("shufflenet_v1", (("groups", 3), ("width", 2.0))): (133, 6.4),
    ("mobilenet_v1", (("width", 0.25),)): (502, 36.4),
    ("mobilenet_v1", (("width", 0.5),)): (382, 16.5),
    ("mobilenet_v1", (("width", 0.75),)): (314, 10.6),
    ("mobilenet_v1", (("width", 1.0),)): (247, 6.5),
    ("mobilenet_v2", (("resolution", 160), ("width", 0.4))): (333, 33.2),
    ("mobilenet_v2", (("width", 0.15),)): (351, 33.6),
    ("mobilenet_v2", (("resolution", 192), ("width", 0.75))): (235, 15.9),
    ("mobilenet_v2", (("width", 0.6),)): (249, 14.9),
    ("mobilenet_v2", (("width", 1.0),)): (180, 8.9),
    ("mobilenet_v2", (("width", 1.4),)): (137, 5.4),
    ("xception", (("width", 0.5),)): (384, 52.9),
    ("xception", (("width", 1.0),)): (278, 19.5),
    ("xception", (("width", 1.5),)): (219, 10.5),
    ("xception", (("width", 2.0),)): (174, 6.7),
}


def table8_speed(workload: str, args: dict[str, Any], platform: str) -> float | None:
    """The paper's Table 8 speed for this network on ``platform`` (GPU batches/s, ARM images/s), if it lists it."""
    key = tuple(sorted((k, v) for k, v in args.items() if not (k == "resolution" and v == 224)))
    speeds = TABLE8.get((workload, key))
    return None if speeds is None else speeds[0 if platform == "gpu" else 1]


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
    # Light-Head R-CNN's Xception, widths set per level for these FLOPs (shufflebench/blocks/networks/xception.py)
    Published("xception", {"width": 0.5}, None, 40, SNV2 + " (our impl.)", reproducible=False),
    Published("xception", {"width": 1.0}, None, 145, SNV2 + " (our impl.)", reproducible=False),
    Published("xception", {"width": 1.5}, None, 305, SNV2 + " (our impl.)", reproducible=False),
    Published("xception", {"width": 2.0}, None, 525, SNV2 + " (our impl.)", reproducible=False),
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


GUIDELINE_WORKLOADS = {t.workload: t for t in TABLES}
NETWORKS = {p.workload for p in PUBLISHED}


def series(workload: str) -> str:
    """The experiment a workload belongs to: a guideline table's workload, "networks", or "other"."""
    if workload in GUIDELINE_WORKLOADS:
        return workload
    return "networks" if workload in NETWORKS else "other"
