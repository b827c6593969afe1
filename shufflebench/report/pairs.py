"""One device's cells that differ in exactly one setting: eager against CUDA-graph replay, float32 against float16,
one thread against two. How much faster does the change make each cell?

Two measured cells pair up when their workload, arguments and backend agree and their settings differ in one name
only. A pair runs from the setting's default value (where neither side is the default: the smaller value) to the
other value. Speed-up = images/s after / images/s before, so a batch pair compares throughput per image. A pair is
"separated" when the two medians' intervals do not overlap (each needs 3 or more processes to have one).
"""

from __future__ import annotations

from itertools import combinations

import pandas as pd
from scipy import stats

from shufflebench import backends

PAIR_COLUMNS = ["backend", "setting", "before", "after", "cell", "before_ms", "after_ms", "speedup", "separated"]


def setting_pairs(ok: pd.DataFrame) -> pd.DataFrame:
    """One row per pair of ``ok`` rows (one device) whose cells differ in exactly one setting (PAIR_COLUMNS)."""
    records = []
    prefixes = ok["cell"].str.rsplit("/", n=1).str[0]  # workload/arguments/backend
    for prefix, group in ok.groupby(prefixes):
        rows = [(settings_of(row["cell"]), row) for _, row in group.iterrows()]
        for (a, row_a), (b, row_b) in combinations(rows, 2):
            differ = [name for name in a.keys() | b.keys() if a.get(name) != b.get(name)]
            if len(differ) != 1:
                continue
            name = differ[0]
            (before, row_before), (after, row_after) = sorted(
                ((a.get(name), row_a), (b.get(name), row_b)), key=lambda side: _order(name, side[0])
            )
            records.append(
                {
                    "backend": row_a["backend"],
                    "setting": name,
                    "before": before,
                    "after": after,
                    "cell": prefix.rsplit("/", 1)[0],
                    "before_ms": row_before["median_ms"],
                    "after_ms": row_after["median_ms"],
                    "speedup": row_after["images_per_s"] / row_before["images_per_s"],
                    "separated": _separated(row_before, row_after),
                }
            )
    return pd.DataFrame(records, columns=PAIR_COLUMNS)


def summarize(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per backend and change (setting, before, after): pairs, geometric-mean speed-up, its range, pairs separated."""
    return (
        pairs.groupby(["backend", "setting", "before", "after"])
        .agg(
            pairs=("speedup", "size"),
            geomean=("speedup", stats.gmean),
            lowest=("speedup", "min"),
            highest=("speedup", "max"),
            separated=("separated", "sum"),
        )
        .reset_index()
    )


def settings_of(cell: str) -> dict[str, str]:
    """The settings part of a cell id ("batch=8,dtype=float16") as text values."""
    return dict(item.split("=", 1) for item in cell.rsplit("/", 1)[-1].split(",") if "=" in item)


def _order(name: str, value: str | None) -> tuple:
    """Sort key: the setting's default first, then numbers by value, then text."""
    setting = backends.SETTINGS.get(name)
    if setting is not None and value == str(setting.default).lower():
        return (0, 0.0, "")
    try:
        return (1, float(value), "")
    except (TypeError, ValueError):
        return (2, 0.0, str(value))


def _separated(a: pd.Series, b: pd.Series) -> bool:
    bounds = [a.get("ci_low_ms"), a.get("ci_high_ms"), b.get("ci_low_ms"), b.get("ci_high_ms")]
    if any(v is None or pd.isna(v) for v in bounds):
        return False
    low_a, high_a, low_b, high_b = bounds
    return high_a < low_b or high_b < low_a
