"""ShuffleNet V2 Tables 1-4 (arXiv:1807.11164) in the paper's layout, with the paper's values beside the measured
ones, and a verdict per table: does the guideline's ordering hold on this device?

The paper's numbers are copied from the reference notes (papers.yaml, Tables 1-4). GPU cells are compared with its
GTX 1080Ti column (batches/s), CPU cells with its ARM column (images/s, Snapdragon 810, one thread).

Verdict, per table and backend, from the columns (x1/x2/x4 or c values) that have at least two measured rows:
Kendall's tau between measured and paper speeds across rows, averaged over columns, and whether the paper's fastest
row is also the measured fastest in every column. "holds": mean tau >= 0.5 and the fastest row agrees everywhere;
"partly": mean tau > 0; "does not hold" otherwise. The speed ratio of the fastest to the slowest measured row shows
how much the design choice matters on this device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
from scipy import stats

from bench import backends


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


def platform_of(backend: str) -> str:
    return "gpu" if backends.get(backend).on_gpu else "cpu"


@dataclass
class TableResult:
    table: PaperTable
    backend: str
    settings: str  # the non-batch settings of the measured cells, e.g. "batch=1, threads=1"
    frame: pd.DataFrame  # rows x (column, measured | paper)
    verdict: str
    mean_tau: float | None
    best_to_worst: float | None


def build_tables(ok: pd.DataFrame) -> list[TableResult]:
    """Every paper table that has measured cells, per backend and settings, from ``ok`` rows of one device."""
    results = []
    for table in TABLES:
        rows = ok[ok["workload"] == table.workload]
        for (backend, settings), group in rows.groupby(["backend", rows["cell"].str.rsplit("/", n=1).str[-1]]):
            platform = platform_of(backend)
            result = _table(table, group, platform)
            if result is not None:
                frame, verdict, tau, ratio = result
                results.append(TableResult(table, backend, settings, frame, verdict, tau, ratio))
    return results


def _table(table: PaperTable, group: pd.DataFrame, platform: str):
    column_name, _, _ = UNITS[platform]
    measured: dict[tuple[str, str], float] = {}
    for row_label, column, args, _ in table.cells(platform):
        match = group[group["workload_args"].apply(lambda a, args=args: _matches(a, args))]
        if len(match):
            measured[row_label, column] = float(match.iloc[0][column_name])
    if not measured:
        return None
    columns = [c for c in table.columns[platform] if any((r, c) in measured for r in table.row_labels)]
    data = {}
    for column in columns:
        data[(column, "measured")] = [measured.get((r, column)) for r in table.row_labels]
        paper = {(r, c): v for r, c, _, v in table.cells(platform)}
        data[(column, "paper")] = [paper[r, column] for r in table.row_labels]
    frame = pd.DataFrame(data, index=table.row_labels)
    taus, fastest_agrees, ratios = [], [], []
    for column in columns:
        pairs = [(m, p) for m, p in zip(frame[(column, "measured")], frame[(column, "paper")]) if m is not None]
        if len(pairs) < 2:
            continue
        m, p = zip(*pairs)
        taus.append(float(stats.kendalltau(m, p).statistic))  # tau-b: ties count for neither side
        fastest_agrees.append(m.index(max(m)) == p.index(max(p)))
        ratios.append(max(m) / min(m))
    if not taus:
        return frame, "not enough rows measured", None, None
    mean_tau = sum(taus) / len(taus)
    if mean_tau >= 0.5 and all(fastest_agrees):
        verdict = "holds"
    elif mean_tau > 0:
        verdict = "partly"
    else:
        verdict = "does not hold"
    return frame, verdict, mean_tau, max(ratios)


def _matches(measured_args: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return measured_args.get("hw", 56) == 56 and all(measured_args.get(k) == v for k, v in wanted.items())


def to_markdown(result: TableResult) -> str:
    platform = platform_of(result.backend)
    _, unit, paper_device = UNITS[platform]
    table = result.table
    columns = list(dict.fromkeys(c for c, _ in result.frame.columns))
    header = "| | " + " | ".join(f"{c} | paper" for c in columns) + " |"
    lines = [
        f"**Table {table.number}** ({table.guideline}) on `{result.backend}` ({result.settings}), {unit}; "
        f"paper: {paper_device}, {unit}",
        "",
        header,
        "|---|" + "---:|---:|" * len(columns),
    ]
    for label in table.row_labels:
        values = []
        for column in columns:
            m = result.frame.loc[label, (column, "measured")]
            values += [
                "-" if m is None or pd.isna(m) else f"{m:,.1f}",
                f"{result.frame.loc[label, (column, 'paper')]:g}",
            ]
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    tau = (
        ""
        if result.mean_tau is None
        else f" (Kendall tau against the paper {result.mean_tau:+.2f}, fastest/slowest {result.best_to_worst:.2f}x)"
    )
    lines += ["", f"Verdict: **{result.verdict}**{tau}."]
    return "\n".join(lines)


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
}


def table8_speed(workload: str, args: dict[str, Any], platform: str) -> float | None:
    """The paper's Table 8 speed for this network on ``platform`` (GPU batches/s, ARM images/s), if it lists it."""
    key = tuple(sorted((k, v) for k, v in args.items() if not (k == "resolution" and v == 224)))
    speeds = TABLE8.get((workload, key))
    return None if speeds is None else speeds[0 if platform == "gpu" else 1]
