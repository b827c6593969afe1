"""ShuffleNet V2 Tables 1-4 (arXiv:1807.11164) in the paper's layout, with the paper's values beside the measured
ones, and a verdict per table: does the guideline's ordering hold on this device?

The paper's numbers live in shufflebench.papers. GPU cells are compared with its GTX 1080Ti column (batches/s), CPU
cells with its ARM column (images/s, Snapdragon 810, one thread).

Verdict, per table and backend, from the columns (x1/x2/x4 or c values) that have any measured row, and only when every
row of those columns was measured: a table with a missing or failed cell (an interrupted, time-capped or small run) says
"incomplete (k of n cells)" and gives none. Kendall's tau between measured and paper speeds across rows, averaged over
columns, and whether the paper's fastest row is also the measured fastest in every column. "holds": mean tau >= 0.5 and
the fastest row agrees everywhere; "partly": mean tau > 0; "does not hold" otherwise. The speed ratio of the fastest to
the slowest measured row shows how much the design choice matters on this device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import math
import warnings

import pandas as pd
from scipy import stats

from shufflebench import backends
from shufflebench.papers import TABLES, UNITS, PaperTable


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
        if len(match) and math.isfinite(speed := float(match.iloc[0][column_name])):
            measured[row_label, column] = speed
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
    taus, fastest_agrees, ratios = [], [], []
    for column in columns:
        m, p = list(frame[(column, "measured")]), list(frame[(column, "paper")])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", stats.ConstantInputWarning)  # every row equally fast: no ordering
            tau = float(stats.kendalltau(m, p).statistic)  # tau-b: ties count for neither side
        taus.append(0.0 if math.isnan(tau) else tau)
        fastest_agrees.append(m.index(max(m)) == p.index(max(p)))
        ratios.append(max(m) / min(m))
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
