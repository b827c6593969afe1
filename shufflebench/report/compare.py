"""`shufflebench compare`: the same cells in several results folders (devices, or versions on one device), side by
side, and a regression gate.

Cells are joined on their id (workload, arguments, backend, settings), which does not name the device. The baseline is
the first folder given (``--baseline`` picks another); a results root contributes its device folders in name order, and
where one comes first, the CLI makes this device's folder in it the baseline. Speed relative to the baseline is baseline
median / folder median per cell (above 1: faster than the baseline), summarised by the geometric mean over the cells
both measured. Timings of emulated devices are listed but not compared. Two folders that share no cell are told apart
plainly: other backends, other workloads, or the same ones with other settings.

The gate (``--fail-above 5%``) fails when a common cell is slower than the baseline by more than the threshold and the
two medians' intervals do not overlap (the folder's interval lies wholly above the baseline's): a slowdown the
measurements resolve, not one inside their noise. A cell without an interval (one process) cannot fail it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from scipy import stats

from shufflebench import device
from shufflebench.errors import UserError
from shufflebench.report import figures, paper
from shufflebench.report.load import Loaded, device_folders, load, ok_rows, warning_lines

FIGURE = "speed_vs_baseline.png"


@dataclass
class Side:
    """One results folder as compare sees it."""

    label: str  # the device id, or the folder where two folders share an id (one device, two versions)
    folder: Path
    meta: dict[str, Any]
    loaded: Loaded
    ok: pd.DataFrame  # its measured cells, one row each, indexed by cell

    @property
    def emulated(self) -> bool:
        return bool(self.meta.get("emulated"))


@dataclass
class Comparison:
    index: Path
    baseline: str
    sides: list[dict[str, Any]]  # per folder: label, device id, cells, common with the baseline, speed, why none
    cells: list[dict[str, Any]]  # per cell: medians and intervals per folder, speed per folder
    regressions: list[dict[str, Any]] = field(default_factory=list)  # cells the gate failed on
    fail_above: float | None = None
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """What ``compare --json`` prints."""
        return {
            "baseline": self.baseline,
            "fail_above": self.fail_above,
            "regressions": self.regressions,
            "folders": self.sides,
            "cells": self.cells,
            "warnings": self.warnings,
            "report": str(self.index),
        }


def compare(paths: list[Path], out: Path, baseline: str | None = None, fail_above: float | None = None) -> Comparison:
    """Compare the results folders in ``paths`` (in that order; the first is the baseline unless ``baseline`` names
    another by device id or folder) and write ``out/index.md``."""
    skipped: list[str] = []
    sides = _sides(device_folders(paths), skipped)
    if len(sides) < 2:
        raise UserError(
            f"compare needs at least two results folders, got {len(sides)}: {', '.join(s.label for s in sides)}"
        )
    base = _baseline(sides, baseline)
    warnings = skipped + [w for s in sides for w in s.loaded.warnings]
    out.mkdir(parents=True, exist_ok=True)
    compared = [s for s in sides if s is not base and not s.emulated]
    lines = [
        "# shufflebench compare",
        "",
        f"Baseline: `{base.label}` (`{base.folder}`). Speed = baseline median / median (above 1: faster than the "
        "baseline); within noise where the two medians' intervals overlap. Emulated devices are listed, not "
        "compared: their timings say nothing about the board.",
        "",
    ]
    if any(len(_common(base, s)) for s in compared):
        _speed_figure(base, compared, out / FIGURE)
        lines += [f"![speed relative to the baseline, per cell]({FIGURE})", ""]
    else:
        lines += [
            "No figure: no folder but the baseline has a measured cell in common with it (emulated ones aside).",
            "",
        ]
    lines += warning_lines(warnings)
    lines += [
        "## Folders",
        "",
        "| folder | device | arch | microarchitecture | probe | emulated | cells measured | left out (error / skipped) "
        "| common with baseline | geomean speed |",
        "|---|---|---|---|---|---|---:|---:|---:|---:|",
    ]
    summaries, apart = [], []
    for s in sides:
        common = _common(base, s)
        speed = base.ok.loc[common, "median_ms"] / s.ok.loc[common, "median_ms"]
        geomean = float(stats.gmean(speed)) if len(common) and not s.emulated else None
        why = None if len(common) or s is base else _why_apart(base, s)
        if why:
            apart.append(f"- `{s.label}` shares no cell with the baseline: {why}.")
        status = s.loaded.rows["status"].value_counts()
        lines.append(
            f"| `{s.label}` | `{s.meta.get('device_id', s.folder.name)}` | {s.meta.get('arch', '?')} | "
            f"{_microarchitecture(s.meta)} | {_probe(s.meta)} | {'yes' if s.emulated else 'no'} | {len(s.ok)} | "
            f"{status.get('error', 0)} / {status.get('skipped', 0)} | {len(common)} | "
            f"{'-' if geomean is None else f'{geomean:.2f}x'} |"
        )
        summaries.append(
            {
                "label": s.label,
                "folder": str(s.folder),
                "device_id": s.meta.get("device_id", s.folder.name),
                "emulated": s.emulated,
                "cells": len(s.ok),
                "common_with_baseline": len(common),
                "geomean_speed": geomean,
                "why_no_common_cells": why,
            }
        )
    lines += ["", *apart] if apart else []

    regressions = [] if fail_above is None else _regressions(base, compared, fail_above)
    if fail_above is not None:
        lines += ["", "## Regression gate", ""]
        lines += [
            f"Slower than the baseline by more than {fail_above:.0%}, beyond both medians' intervals: "
            f"{len(regressions)} cell(s).",
            "",
        ]
        lines += [f"- {_regression_text(r)}" for r in regressions]

    lines += _rank_section(sides) + _verdict_section(sides)
    cells = _cells(sides, base)
    lines += [
        "",
        "## Cells",
        "",
        "| cell | " + " | ".join(f"{s.label} ms" for s in sides) + " | "
        "" + " | ".join(f"speed {s.label}" for s in sides if s is not base) + " |",
        "|---|" + "---:|" * (2 * len(sides) - 1),
    ]
    for cell in cells:
        ms = ["-" if cell["median_ms"].get(s.label) is None else f"{cell['median_ms'][s.label]:.3f}" for s in sides]
        speed = [
            "-"
            if cell["speed"].get(s.label) is None
            else f"{cell['speed'][s.label]:.2f}x" + ("" if cell["apart"][s.label] else " (within noise)")
            for s in sides
            if s is not base
        ]
        lines.append(f"| `{cell['cell']}` | " + " | ".join(ms + speed) + " |")
    index = out / "index.md"
    index.write_text("\n".join(lines) + "\n")
    return Comparison(index, base.label, summaries, cells, regressions, fail_above, warnings)


def _sides(folders: list[Path], skipped: list[str]) -> list[Side]:
    """A Side per folder that has results rows; a folder without (only a breakdown, say) is named in ``skipped``."""
    loaded = {}
    for folder in folders:
        try:
            loaded[folder] = load([folder])
        except UserError as e:
            skipped.append(f"left out {e}")
    ids = [next(iter(x.devices)) for x in loaded.values()]
    sides = []
    for (folder, x), device_id in zip(loaded.items(), ids):
        label = device_id if ids.count(device_id) == 1 else str(folder)
        ok = ok_rows(x.rows).set_index("cell", drop=False)
        sides.append(Side(label, folder, x.devices[device_id] or {"device_id": device_id}, x, ok))
    return sides


def _baseline(sides: list[Side], wanted: str | None) -> Side:
    if wanted is None:
        return next((s for s in sides if not s.emulated), sides[0])
    for s in sides:
        if wanted in (s.label, s.meta.get("device_id"), str(s.folder)):
            return s
    raise UserError(f"--baseline {wanted!r} is not among the folders: {', '.join(s.label for s in sides)}")


def _common(base: Side, side: Side) -> pd.Index:
    return base.ok.index.intersection(side.ok.index)


def _why_apart(base: Side, side: Side) -> str:
    """Why two folders share no measured cell, in the terms a user can act on."""
    if not len(side.ok):
        return "it has no measured cell"
    if not len(base.ok):
        return "the baseline has no measured cell"
    mine, theirs = set(base.ok["backend"]), set(side.ok["backend"])
    if not mine & theirs:
        return f"they measured other backends (baseline: {', '.join(sorted(mine))}; this: {', '.join(sorted(theirs))})"

    def workloads(s: Side) -> set[str]:
        return {c.rsplit("/", 2)[0] for c in s.ok.loc[s.ok["backend"].isin(mine & theirs), "cell"]}

    if not workloads(base) & workloads(side):
        sweeps = ", ".join(sorted(set(base.ok["sweep"]))), ", ".join(sorted(set(side.ok["sweep"])))
        return f"they measured other workloads (baseline sweeps: {sweeps[0]}; this: {sweeps[1]})"
    backend = sorted(mine & theirs)[0]

    def settings(s: Side) -> str:
        return ", ".join(sorted({c.rsplit("/", 1)[1] for c in s.ok.loc[s.ok["backend"] == backend, "cell"]}))

    return (
        f"the same workloads with other settings (on {backend}, baseline: {settings(base)}; this: {settings(side)}); "
        "measure one with the other's settings to compare them"
    )


def _regressions(base: Side, compared: list[Side], fail_above: float) -> list[dict[str, Any]]:
    found = []
    for s in compared:
        common = _common(base, s)
        if not len(common):
            raise UserError(
                f"the regression gate has nothing to compare: `{s.label}` shares no cell with the baseline "
                f"`{base.label}` ({_why_apart(base, s)})"
            )
        for cell in common:
            b, n = base.ok.loc[cell], s.ok.loc[cell]
            change = n["median_ms"] / b["median_ms"] - 1
            b_interval, n_interval = _interval(b), _interval(n)
            if change > fail_above and b_interval and n_interval and n_interval[0] > b_interval[1]:
                found.append(
                    {
                        "cell": cell,
                        "folder": s.label,
                        "baseline_ms": float(b["median_ms"]),
                        "baseline_interval_ms": b_interval,
                        "median_ms": float(n["median_ms"]),
                        "interval_ms": n_interval,
                        "slower": float(change),
                    }
                )
    return found


def _interval(row: pd.Series) -> list[float] | None:
    """The median's interval of a row, or None where it has none (one process; rows from before schema 2)."""
    low, high = row.get("ci_low_ms"), row.get("ci_high_ms")
    return None if pd.isna(low) or pd.isna(high) else [float(low), float(high)]


def _regression_text(r: dict[str, Any]) -> str:
    (bl, bh), (nl, nh) = r["baseline_interval_ms"], r["interval_ms"]
    return (
        f"`{r['cell']}` on `{r['folder']}`: {r['baseline_ms']:.3f} -> {r['median_ms']:.3f} ms "
        f"(+{r['slower']:.1%}; intervals {bl:.3f}-{bh:.3f} and {nl:.3f}-{nh:.3f} ms)"
    )


def _cells(sides: list[Side], base: Side) -> list[dict[str, Any]]:
    out = []
    for cell in sorted(set().union(*(s.ok.index for s in sides))):
        medians = {s.label: float(s.ok.loc[cell, "median_ms"]) for s in sides if cell in s.ok.index}
        intervals = {s.label: _interval(s.ok.loc[cell]) for s in sides if cell in s.ok.index}
        speed = {
            s.label: medians[base.label] / medians[s.label]
            for s in sides
            if s is not base and not s.emulated and s.label in medians and base.label in medians
        }
        apart = {label: _apart(intervals[base.label], intervals[label]) for label in speed}
        out.append({"cell": cell, "median_ms": medians, "interval_ms": intervals, "speed": speed, "apart": apart})
    return out


def _apart(a: list[float] | None, b: list[float] | None) -> bool:
    """Whether two medians' intervals do not overlap (a median without one cannot be told apart from another)."""
    return a is not None and b is not None and (a[0] > b[1] or b[0] > a[1])


def _rank_section(sides: list[Side]) -> list[str]:
    lines = ["", "## Does latency follow FLOPs or MAC?", "", "| folder | cells | rho (FLOPs) | rho (MAC) |"]
    lines.append("|---|---:|---:|---:|")
    for s in sides:
        mine = s.ok[s.ok["flops"] > 0]
        if len(mine) >= 3:
            lines.append(
                f"| {s.label} | {len(mine)} | {figures.spearman(mine['flops'], mine['median_ms']):.2f} | "
                f"{figures.spearman(mine['mac_bytes'], mine['median_ms']):.2f} |"
            )
    return lines


def _verdict_section(sides: list[Side]) -> list[str]:
    verdicts = [
        {
            "table": f"Table {r.table.number} ({r.table.workload})",
            "backend": r.backend,
            "folder": s.label + (" (emulated)" if s.emulated else ""),
            "verdict": r.verdict,
        }
        for s in sides
        for r in paper.build_tables(s.ok.reset_index(drop=True))
    ]
    if not verdicts:
        return []
    v = (
        pd.DataFrame(verdicts)
        .pivot_table(index="table", columns=["folder", "backend"], values="verdict", aggfunc="first")
        .fillna("-")
    )
    lines = [
        "",
        "## ShuffleNet V2 guidelines per folder",
        "",
        "Does each guideline hold everywhere? One row per table, one column per folder and backend.",
        "",
        "| table | " + " | ".join(f"{folder}: {backend}" for folder, backend in v.columns) + " |",
        "|---|" + "---|" * len(v.columns),
    ]
    for table, row in v.iterrows():
        lines.append(f"| {table} | " + " | ".join(row) + " |")
    return lines


def _microarchitecture(meta: dict) -> str:
    """The core as the fingerprint names it; results from before machine keys say so, as another machine."""
    cpu = meta.get("cpu")
    if not cpu:
        return "unknown: recorded before machine keys, treat as another machine"
    where = f"family {cpu['family']} model {cpu['model']}" if "family" in cpu else f"part 0x{cpu.get('part', 0):x}"
    return f"{cpu.get('microarchitecture') or 'unknown'} ({where}), key `{meta.get('machine_key')}`"


def _probe(meta: dict) -> str:
    return "; ".join(f"{k}: {device.roofs_text(v)}" for k, v in (meta.get("probe") or {}).items()) or "-"


def _speed_figure(base: Side, compared: list[Side], path: Path) -> None:
    """Speed relative to the baseline per common cell, against the cell's latency on the baseline."""
    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    for s in compared:
        common = _common(base, s)
        if len(common):
            latency = base.ok.loc[common, "median_ms"]
            ax.scatter(latency, latency / s.ok.loc[common, "median_ms"], label=s.label, s=28, alpha=0.8)
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label="as fast as the baseline")
    ax.set_xscale("log")
    ax.set_yscale("log")
    figures.plain_log_ticks(ax)
    ax.set_xlabel(f"median latency on the baseline, {base.label} (ms)")
    ax.set_ylabel("speed relative to the baseline (x, above 1: faster)")
    ax.set_title("each point is one cell measured in both folders", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
