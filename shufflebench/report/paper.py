"""ShuffleNet V2 Tables 1-4 (arXiv:1807.11164) in the paper's layout, with the paper's values beside the measured
ones, and a verdict per table: does the guideline's ordering hold on this device?

The paper's numbers live in shufflebench.papers. GPU cells are compared with its GTX 1080Ti column (batches/s), CPU
cells with its ARM column (images/s, Snapdragon 810, one thread).

Verdict, per table and backend, from the columns (x1/x2/x4 or c values) that have any measured row, and only when every
row of those columns was measured: a table with a missing or failed cell (an interrupted, time-capped or small run) says
"incomplete (k of n cells)" and gives none. Within a column, every pair of rows the paper orders is told apart only
where the two cells' intervals do not overlap: confirmed when the paper's faster row is faster beyond both intervals,
contradicted when it is slower beyond them, not told apart otherwise (a cell without an interval, one process, counts
as its median). Kendall's tau over the pairs told apart, (confirmed - contradicted) / (confirmed + contradicted):
"holds" when it is at least 0.5 and no row is told apart as faster than the paper's fastest; "partly" when it is above
0; "does not hold" otherwise; and "not resolved on this device (noise floor x%)" when fewer than MIN_TOLD_APART of
the pairs could be told apart (two pairs of eighteen in the paper's order do not make it hold), naming the pairs: x is
the median noise floor of the table's cells (shufflebench.probe), the spread this machine puts on any timing, which
says why. The speed ratio of the fastest to the slowest measured row shows how much the design choice matters on
this device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import itertools
import math

import pandas as pd

from shufflebench import backends
from shufflebench.papers import TABLES, UNITS, PaperTable


UNRESOLVED_SHOWN = 6  # pairs named under a table
MIN_TOLD_APART = 0.5  # the share of a table's ordered pairs that must be told apart for a verdict


def platform_of(backend: str) -> str:
    return "gpu" if backends.get(backend).on_gpu else "cpu"


@dataclass
class TableResult:
    table: PaperTable
    backend: str
    settings: str  # the non-batch settings of the measured cells, e.g. "batch=1, threads=1"
    frame: pd.DataFrame  # rows x (column, measured | paper)
    verdict: str
    mean_tau: float | None  # Kendall's tau over the pairs told apart
    best_to_worst: float | None
    pairs: int = 0  # pairs of rows the paper orders
    unresolved: list[str] = field(default_factory=list)  # those the intervals could not tell apart ("1:1 / 1:2 at x1")
    noise_floor: float | None = None  # the median noise floor of the table's cells (shufflebench.probe)


def build_tables(ok: pd.DataFrame) -> list[TableResult]:
    """Every paper table that has measured cells, per backend and settings, from ``ok`` rows of one device."""
    results = []
    for table in TABLES:
        rows = ok[ok["workload"] == table.workload]
        for (backend, settings), group in rows.groupby(["backend", rows["cell"].str.rsplit("/", n=1).str[-1]]):
            floor = group["noise_floor"].median() if "noise_floor" in group else None
            floor = None if floor is None or pd.isna(floor) else float(floor)
            result = _table(table, group, platform_of(backend), floor)
            if result is not None:
                results.append(TableResult(table, backend, settings, *result, noise_floor=floor))
    return results


def _table(table: PaperTable, group: pd.DataFrame, platform: str, floor: float | None):
    column_name, _, _ = UNITS[platform]
    measured: dict[tuple[str, str], float] = {}
    intervals: dict[tuple[str, str], tuple[float, float]] = {}  # of the speed, from the latency's interval
    for row_label, column, args, _ in table.cells(platform):
        match = group[group["workload_args"].apply(lambda a, args=args: _matches(a, args))]
        if len(match) and math.isfinite(speed := float(match.iloc[0][column_name])):
            measured[row_label, column] = speed
            intervals[row_label, column] = _speed_interval(match.iloc[0], speed)
    if not measured:
        return None
    columns = [c for c in table.columns[platform] if any((r, c) in measured for r in table.row_labels)]
    cells = len(columns) * len(table.row_labels)
    data = {}
    for column in columns:
        data[(column, "measured")] = [measured.get((r, column)) for r in table.row_labels]
        paper = {(r, c): v for r, c, _, v in table.cells(platform)}
        data[(column, "paper")] = [paper[r, column] for r in table.row_labels]
    frame = pd.DataFrame(data, index=table.row_labels)
    if len(measured) < cells:
        return frame, f"incomplete ({len(measured)} of {cells} cells)", None, None
    confirmed, contradicted, unresolved, fastest_beaten = 0, 0, [], False
    for column in columns:
        paper = dict(zip(table.row_labels, frame[(column, "paper")]))
        fastest = max(paper, key=paper.get)
        for a, b in itertools.combinations(table.row_labels, 2):
            if paper[a] == paper[b]:
                continue  # the paper orders them not
            faster, slower = (a, b) if paper[a] > paper[b] else (b, a)
            (low_f, high_f), (low_s, high_s) = intervals[faster, column], intervals[slower, column]
            if low_f > high_s:
                confirmed += 1
            elif high_f < low_s:
                contradicted += 1
                fastest_beaten |= faster == fastest
            else:
                unresolved.append(f"{a} / {b} at {column}")
    ratio = max(max(frame[(c, "measured")]) / min(frame[(c, "measured")]) for c in columns)
    pairs = confirmed + contradicted + len(unresolved)
    told = confirmed + contradicted
    tau = (confirmed - contradicted) / told if told else None
    if not told or told < MIN_TOLD_APART * pairs:
        noise = "" if floor is None else f" (noise floor {floor:.0%})"
        return frame, f"not resolved on this device{noise}", tau, ratio, pairs, unresolved
    verdict = "holds" if tau >= 0.5 and not fastest_beaten else "partly" if tau > 0 else "does not hold"
    return frame, verdict, tau, ratio, pairs, unresolved


def _speed_interval(row: pd.Series, speed: float) -> tuple[float, float]:
    """The interval of a cell's speed (its latency's interval, inverted); its speed alone where it has none."""
    low, high, median = (row.get(c) for c in ("ci_low_ms", "ci_high_ms", "median_ms"))
    if any(v is None or pd.isna(v) or v <= 0 for v in (low, high, median)):
        return speed, speed
    return speed * median / high, speed * median / low


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
    told = result.pairs - len(result.unresolved)
    tau = (
        ""
        if result.mean_tau is None
        else f" (Kendall tau against the paper {result.mean_tau:+.2f} over the {told} of {result.pairs} pairs of rows "
        f"whose intervals are apart{', too few for a verdict' if result.verdict.startswith('not resolved') else ''}, "
        f"fastest/slowest {result.best_to_worst:.2f}x)"
    )
    lines += ["", f"Verdict: **{result.verdict}**{tau}."]
    if result.unresolved:
        shown = ", ".join(result.unresolved[:UNRESOLVED_SHOWN])
        more = len(result.unresolved) - UNRESOLVED_SHOWN
        noise = "" if result.noise_floor is None else f"; this machine's noise floor is {result.noise_floor:.0%}"
        lines[-1] += (
            f" Not told apart (intervals overlap{noise}): {shown}" + (f" and {more} more" if more > 0 else "") + "."
        )
    return "\n".join(lines)
