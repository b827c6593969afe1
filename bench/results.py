"""The results store: one CSV per sweep and device, ``results/<device-id>/<sweep>.csv``, plus ``device.json``.

One row per cell (DESIGN.md, contracts). Columns carry their unit (``median_ms``); structured values (workload
arguments, raw samples per process, backend info) are JSON strings. Every write replaces the whole file through a
temporary file and ``os.replace``, so a sweep killed at any moment leaves either the old file or the new one, never a
torn row. Readers ignore columns they do not know and refuse rows from a newer ``schema_version``.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

# Column order in the CSV; a row may carry more columns, which are appended after these.
COLUMNS = [
    "schema_version",
    "sweep",
    "cell",
    "status",
    "error",
    "workload",
    "workload_args",
    "backend",
    "batch",
    "threads",
    "opt_level",
    "cudnn_benchmark",
    "tf32",
    "dtype",
    "channels_last",
    "cuda_graph",
    "device_id",
    "arch",
    "emulated",
    "params",
    "flops",
    "mac",
    "mac_bytes",
    "elementwise_ops",
    "median_ms",
    "iqr_ms",
    "p10_ms",
    "p25_ms",
    "p75_ms",
    "p90_ms",
    "p99_ms",
    "mean_ms",
    "std_ms",
    "min_ms",
    "max_ms",
    "ci95_low_ms",
    "ci95_high_ms",
    "ci_method",
    "images_per_s",
    "batches_per_s",
    "pipelined_ms",
    "pipelined_images_per_s",
    "pipelined_batches_per_s",
    "samples",
    "processes",
    "required_processes",
    "number",
    "timer_overhead_us",
    "is_noisy",
    "noise",
    "load_avg",
    "exporter",
    "opset",
    "backend_info",
    "measure_settings",
    "samples_ms",
    "warmup_ms",
    "started_at",
    "finished_at",
]
JSON_COLUMNS = {"workload_args", "backend_info", "measure_settings", "samples_ms", "warmup_ms"}


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
        rows = [{k: _decode(k, v) for k, v in row.items()} for row in reader]
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
