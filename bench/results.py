"""The results store: one CSV per sweep and device, ``results/<device-id>/<sweep>.csv``, plus ``device.json``.

One row per cell (DESIGN.md, contracts), made of dataclasses (which cell, its settings, its cost, its statistics
from bench.stats, how it ran) whose fields are the columns. Columns carry their unit (``median_ms``); structured
values (workload arguments, raw samples per process, backend info) are JSON strings. Every write replaces the whole
file through a temporary file and ``os.replace``, so a sweep killed at any moment leaves either the old file or the
new one, never a torn row. Readers ignore columns they do not know, fill the ones an older file lacks with empty
values, and refuse rows from a newer ``schema_version``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import types
import typing
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from bench import backends
from bench.stats import Summary

# 2: the headline median is over process medians, the interval is the order-statistic one with its level
# (ci_low_ms, ci_high_ms, ci_level in place of ci95_*), percentiles say what they are of, modes, GPU settings.
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class CellColumns:
    """Which cell a row is, where it ran and how it ended. The cell's settings follow ``backend``, one column per
    setting any backend declares (bench.backends.SETTINGS), empty where the backend does not take it."""

    schema_version: int
    sweep: str
    cell: str
    status: str  # ok, error or skipped
    error: str | None
    workload: str
    workload_args: dict[str, Any]
    backend: str
    device_id: str
    arch: str
    emulated: bool


@dataclass(frozen=True)
class CostColumns:
    """The cost model's counts (bench.cost): multiply-adds, elements moved, and bytes at the cell's dtype."""

    params: int | None = None
    flops: int | None = None
    mac: int | None = None
    mac_bytes: int | None = None
    elementwise_ops: int | None = None


@dataclass(frozen=True)
class RunColumns:
    """How the cell was measured, and the raw data."""

    measure_settings: dict[str, Any]
    finished_at: str
    started_at: str | None = None
    timer_overhead_us: float | None = None
    load_avg: float | None = None
    exporter: str | None = None
    opset: int | None = None
    backend_info: dict[str, Any] | None = None
    samples_ms: list[list[float]] | None = None  # per process
    warmup_ms: list[list[float]] | None = None  # per process


def _names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def _json_names(*classes: type) -> set[str]:
    out = set()
    for cls in classes:
        for name, hint in typing.get_type_hints(cls).items():
            options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
            if any(typing.get_origin(o) in (dict, list) for o in options):
                out.add(name)
    return out


_CELL = _names(CellColumns)
# Column order in the CSV; a row may carry more columns, which are appended after these.
COLUMNS = [
    *_CELL[: _CELL.index("backend") + 1],
    *backends.SETTINGS,
    *_CELL[_CELL.index("backend") + 1 :],
    *_names(CostColumns),
    *_names(Summary),
    *_names(RunColumns),
]
JSON_COLUMNS = _json_names(CellColumns, CostColumns, Summary, RunColumns)
EMPTY_ROW = dict.fromkeys(COLUMNS)


def make_row(
    cell: CellColumns,
    settings: dict[str, Any],
    run: RunColumns,
    cost: CostColumns = CostColumns(),
    summary: Summary | None = None,
) -> dict[str, Any]:
    """One results row from its parts; ``settings`` are the cell's, batch included."""
    return {**asdict(cell), **settings, **asdict(cost), **(asdict(summary) if summary else {}), **asdict(run)}


class ResultsStore:
    """The rows of one sweep on one device, kept in memory and written through on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = read_rows(path) if path.exists() else []

    def by_cell(self) -> dict[str, dict[str, Any]]:
        return {row["cell"]: row for row in self.rows}

    def put(self, row: dict[str, Any]) -> None:
        """Add ``row``, replacing an earlier row of the same cell, and write the file atomically."""
        self.rows = [r for r in self.rows if r["cell"] != row["cell"]] + [row]
        write_rows(self.path, self.rows)

    def clear(self) -> None:
        self.rows = []
        write_rows(self.path, self.rows)


def write_rows(path: Path, rows: list[dict[str, Any]], columns: list[str] = COLUMNS) -> None:
    """Replace ``path`` with ``rows`` atomically; ``columns`` first, any others after them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = sorted({k for row in rows for k in row} - set(columns))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns + extra, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _encode(k, v) for k, v in row.items()})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as f:
        f.write(buffer.getvalue())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a results CSV with numbers, booleans and JSON columns decoded; unknown columns are kept as text."""
    from bench.errors import UserError

    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "cell" not in reader.fieldnames:
            raise UserError(f"{path}: not a shufflebench results file (no 'cell' column)")
        rows = [{**EMPTY_ROW, **{k: _decode(k, v) for k, v in row.items()}} for row in reader]
    newer = [r for r in rows if isinstance(r.get("schema_version"), int) and r["schema_version"] > SCHEMA_VERSION]
    if newer:
        raise UserError(
            f"{path}: written with results schema {newer[0]['schema_version']}, this shufflebench reads "
            f"up to {SCHEMA_VERSION}: upgrade shufflebench"
        )
    return rows


def _encode(key: str, value: Any) -> Any:
    if key in JSON_COLUMNS and value is not None:
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, float):
        return repr(value)
    return "" if value is None else value


def _decode(key: str, text: str | None) -> Any:
    if text is None or text == "":
        return None
    if key in JSON_COLUMNS:
        return json.loads(text)
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text
