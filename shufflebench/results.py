"""The results store: one CSV per sweep and device, ``results/<device-id>/<sweep>.csv``, plus ``device.json``.

One row per cell (the results contract), made of dataclasses (which cell, its settings, its cost, its statistics
from shufflebench.stats, how it ran) whose fields are the columns. Columns carry their unit (``median_ms``); structured
values (workload arguments, raw samples per process, backend info) are JSON strings. Every write replaces the whole
file through a temporary file and ``os.replace``, so a sweep killed at any moment leaves either the old file or the
new one, never a torn row. Readers ignore columns they do not know, fill the ones an older file lacks with empty
values, and refuse rows from a newer ``schema_version``.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import types
import typing
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterator

from shufflebench import backends
from shufflebench.errors import UserError
from shufflebench.roofline import Roofline
from shufflebench.stats import Summary

# 2: the headline median is over process medians, the interval is the order-statistic one with its level
# (ci_low_ms, ci_high_ms, ci_level in place of ci95_*), percentiles say what they are of, modes, GPU settings,
# the machine key, the probe's roofs, energy and health.
SCHEMA_VERSION = 2
# A results row is one CSV line, and a fast cell's samples make long fields (rows written before warm-up calls were
# capped held 176 KB of them); the csv module's default limit of 128 KiB would read such a line as corrupt.
csv.field_size_limit(2**31 - 1)


@dataclass(frozen=True)
class CellColumns:
    """Which cell a row is, where it ran and how it ended. The cell's settings follow ``backend``, one column per
    setting any backend declares (shufflebench.backends.SETTINGS), empty where the backend does not take it."""

    schema_version: int  # the results format this row was written in (SCHEMA_VERSION)
    sweep: str  # the sweep's name (its file name)
    cell: str  # the cell's id: workload/arguments/backend/settings, the same on every device
    status: str  # ok, error or skipped
    error: str | None  # why the cell failed or was skipped; empty when ok
    workload: str  # a registered name, an import path or an .onnx file
    workload_args: dict[str, Any]  # the workload's parameters, defaults filled in
    source: str | None  # content hash of an .onnx workload or of an import path's source file
    backend: str  # torch-cpu, torch-cuda, ort-cpu, ort-cuda or ort:<Provider>
    device_id: str  # machine key plus the runtimes' versions: the folder under results/
    machine_key: str | None  # the hardware identity alone: microarchitecture, ISA, caches, GPU
    arch: str  # the machine's architecture (x86_64, aarch64)
    emulated: bool  # measured under an emulator (qemu-user): its timings say nothing about the hardware


@dataclass(frozen=True)
class CostColumns:
    """The cost model's counts (shufflebench.cost, shufflebench.onnx_cost): multiply-adds, elements moved, and bytes at
    the cell's dtype; for ORT cells also the MAC of the graph the runtime really ran."""

    params: int | None = None  # parameters of the model
    flops: int | None = None  # multiply-adds of one forward pass at the cell's batch (the papers' FLOPs)
    mac: int | None = None  # memory access cost: elements read and written, per op, summed (ShuffleNet V2's MAC)
    mac_bytes: int | None = None  # mac in bytes at the cell's dtype
    elementwise_ops: int | None = None  # element-wise operations (ReLU, add, shuffle copies): ShuffleNet V2's G4
    mac_runtime: int | None = None  # MAC of the graph ONNX Runtime optimised the model into (ORT cells)
    mac_runtime_bytes: int | None = None  # mac_runtime in bytes
    runtime_ops: dict[str, int] | None = None  # that graph's node count by op type
    # the graph this backend runs, per predictor class: [ops, FLOPs, bytes] (shufflebench.predict)
    op_classes: dict[str, list[int]] | None = None


@dataclass(frozen=True)
class RunColumns:
    """How the cell was measured, and the raw data."""

    # the measurement settings the cell ran with (warm-up, min_time, processes, seed, probe)
    measure_settings: dict[str, Any]
    finished_at: str  # when the row was written (UTC)
    started_at: str | None = None  # when its first process started (UTC)
    processes_planned: int | None = None  # processes the cell was to get (more where they fell into modes)
    # how its processes started: fork (a fresh parent per round), exec (fresh interpreters) or in-process (the API)
    launcher: str | None = None
    timer_overhead_us: float | None = None  # the smallest cost of one timer read around an empty loop, per process
    load_avg: float | None = None  # the machine's 1-minute load average when the row was written
    exporter: str | None = None  # the ONNX exporter that wrote the file (ORT cells)
    opset: int | None = None  # the ONNX opset of the file (ORT cells)
    backend_info: dict[str, Any] | None = None  # the settings as the backend applied them, and its versions
    samples_ms: list[list[float]] | None = None  # per process, every sample's time: the raw data
    warmup_ms: list[list[float]] | None = None  # per process, its first calls (shufflebench.rows.WARMUP_KEPT)
    peak_gflops: float | None = None  # the device's compute roof at this thread count (best product or conv chain)
    peak_gbs: float | None = None  # its memory-bandwidth roof, likewise (each backend's own roofs are in probe)
    probe: dict[str, Any] | None = None  # key, start and end roofs (conv_gflops on a CPU) and noise floors, drift
    noise_floor: float | None = None  # the machine's own noise: p90/p10 - 1 of a fixed kernel (shufflebench.probe)
    # per process, that kernel timed between its samples (CPU cells): ms per call of each block (shufflebench.measure)
    reference_ms: list[list[float]] | None = None
    reference_median_ms: float | None = None  # median over processes of their median reference call: the speed then
    # the cell's median in reference calls: median over processes of their median sample / their median reference call
    relative_median: float | None = None
    energy_mj_per_image: float | None = None  # median over processes; empty, with the reason in energy_method
    energy_method: str | None = None  # how energy was read (RAPL, NVML), or why it was not
    peak_rss_mib: float | None = None  # median over processes of the peak resident memory the model added (sensors)
    peak_device_mib: float | None = None  # torch on CUDA: median over processes of its allocator's peak
    health: list[dict[str, Any]] | None = None  # per process, sensors at its start and end (shufflebench.sensors)


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
    *_names(Roofline),
    *_names(RunColumns),
]
ROW_CLASSES = (CellColumns, CostColumns, Summary, Roofline, RunColumns)
JSON_COLUMNS = _json_names(*ROW_CLASSES)
EMPTY_ROW = dict.fromkeys(COLUMNS)
# A column's unit, from how its name ends (the names carry their units); the first match wins.
UNITS = (
    ("_ms", "ms"),
    ("_us", "µs"),
    ("_mib", "MiB"),
    ("_bytes", "bytes"),
    ("images_per_s", "images/s"),
    ("batches_per_s", "batches/s"),
    ("_gflops", "GFLOP/s"),
    ("_gbs", "GB/s"),
    ("_mj_per_image", "mJ/image"),
    ("_at", "UTC time"),
    ("arithmetic_intensity", "FLOP/byte"),
    ("arithmetic_intensity_runtime", "FLOP/byte"),
    ("flops", "multiply-adds"),
    ("mac", "elements"),
    ("mac_runtime", "elements"),
    ("_fraction", "fraction"),
    ("_efficiency", "fraction"),
    ("ci_level", "fraction"),
)


def column_reference() -> str:
    """docs/columns.md: every results column in file order with its type, unit and meaning, from the row dataclasses'
    field comments and the settings' help (`make docs` writes it; a test keeps it equal to this)."""
    meanings = {name: text for cls in ROW_CLASSES for name, text in _field_comments(cls).items()}
    meanings.update({name: f"setting: {s.help}" for name, s in backends.SETTINGS.items()})
    hints = {name: hint for cls in ROW_CLASSES for name, hint in typing.get_type_hints(cls).items()}
    lines = [
        "# Results columns",
        "",
        "One row per cell in `results/<device-id>/<sweep>.csv`; generated from the row dataclasses in",
        "`shufflebench/results.py`, `stats.py` and `roofline.py` by `make docs`. JSON columns hold JSON text; an empty",
        "field is a value the row does not have (a setting its backend does not take, a number that could not be",
        "measured). Rows written before a column existed read it as empty.",
        "",
        "| column | type | unit | meaning |",
        "|---|---|---|---|",
    ]
    for name in COLUMNS:
        kind = "JSON" if name in JSON_COLUMNS else _type_name(hints.get(name), backends.SETTINGS.get(name))
        unit = next((u for end, u in UNITS if name.endswith(end)), "")
        lines.append(f"| `{name}` | {kind} | {unit} | {meanings[name]} |")
    return "\n".join(lines) + "\n"


def _field_comments(cls: type) -> dict[str, str]:
    """Each field's comment: the one after it on its line, or the comment lines just above it."""
    import inspect
    import re

    out, above = {}, []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# "))
            continue
        field_line = re.match(r"(\w+): [^#]+?(?:#\s*(.*))?$", stripped)
        if field_line and field_line.group(1) in {f.name for f in fields(cls)}:
            out[field_line.group(1)] = field_line.group(2) or " ".join(above)
        above = []
    return out


def _type_name(hint: Any, setting: backends.Setting | None) -> str:
    if setting is not None:
        return setting.kind.__name__
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return next(o.__name__ for o in options if o is not type(None))


def make_row(
    cell: CellColumns,  # None
    settings: dict[str, Any],
    run: RunColumns,
    cost: CostColumns = CostColumns(),
    summary: Summary | None = None,
    roofline: Roofline | None = None,
) -> dict[str, Any]:
    """One results row from its parts; ``settings`` are the cell's, batch included."""
    measured = {**asdict(summary), **asdict(roofline or Roofline())} if summary else {}
    return {**asdict(cell), **settings, **asdict(cost), **measured, **asdict(run)}


class ResultsStore:
    """The rows of one sweep on one device, ``results/<device-id>/<sweep>.csv``.

    Every write takes a lock on the file (a ``.<name>.lock`` beside it), reads what is on disk, replaces or adds the
    one row and writes the whole file atomically, so two processes writing one file (two sweeps started with different
    temporary folders, say) cannot drop each other's rows. Lines that cannot be read (a power cut mid-write, a disk
    that filled up, an edit by hand) are moved to ``<name>.csv.corrupt`` beside it and reported, never lost.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.set_aside = 0  # corrupt lines moved to the .corrupt file when the store was opened
        path.parent.mkdir(parents=True, exist_ok=True)
        _check_writable(path.parent)
        with self._locked():
            if path.exists():
                rows, bad = read_table(path)
                if bad:
                    with open(path.with_name(path.name + ".corrupt"), "a", errors="surrogateescape") as f:
                        f.writelines(line + "\n" for line in bad)
                    write_rows(path, rows)
                    self.set_aside = len(bad)

    def by_cell(self) -> dict[str, dict[str, Any]]:
        return {row["cell"]: row for row in self._rows()}

    def put(self, row: dict[str, Any]) -> None:
        """Add ``row``, replacing an earlier row of the same cell, and write the file atomically."""
        with self._locked():
            rows = [r for r in self._rows() if r["cell"] != row["cell"]]
            write_rows(self.path, [*rows, row])

    def remove(self, cells: set[str]) -> None:
        """Drop the rows of ``cells``, keeping every other row."""
        with self._locked():
            write_rows(self.path, [r for r in self._rows() if r["cell"] not in cells])

    def _rows(self) -> list[dict[str, Any]]:
        return read_table(self.path)[0] if self.path.exists() else []

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.path.with_name(f".{self.path.name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _check_writable(folder: Path) -> None:
    """Fail now, with the folder's name, rather than after the workloads were prepared."""
    probe = folder / f".shufflebench-write-check-{os.getpid()}"
    probe.write_text("")
    probe.unlink()


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
    """The readable rows of a results CSV (see read_table); lines that cannot be read are left out."""
    return read_table(path)[0]


def device_rows(folder: Path) -> list[dict[str, Any]]:
    """Every results row of a device folder (the sweeps' files; side files such as breakdown.csv have no cells)."""
    rows = []
    for path in sorted(folder.glob("*.csv")):
        try:
            rows += read_rows(path)
        except UserError:
            continue
    return rows


def read_table(path: Path, required: str = "cell") -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of a results CSV with numbers, booleans and JSON columns decoded, and the lines that could not be read.

    Every record is one line (the writer keeps newlines out of values). A line with the wrong number of fields, or
    whose JSON or numbers do not decode, is returned as text in the second list. Unknown columns are kept as text;
    columns an older schema lacks are filled with None.

    Raises:
        UserError: not a results file (no ``required`` column), not text, or rows of a newer schema.
    """

    # Line by line: bytes that are not text (a disk error, a stray write) spoil their own lines, not the file. They are
    # kept as they were (surrogate escapes) for the .corrupt file.
    lines = path.read_bytes().decode("utf-8", "surrogateescape").split("\n")  # records end in \n, nothing else
    if lines and not _is_text(lines[0]):
        raise UserError(f"{path}: not a shufflebench results file (not text)")
    header = next(csv.reader(lines[:1]), [])
    if required not in header:
        raise UserError(f"{path}: not a shufflebench results file (no {required!r} column)")
    empty = EMPTY_ROW if required == "cell" else {}
    rows, bad = [], []
    for line in lines[1:]:
        if not line.strip():
            continue
        try:
            if not _is_text(line) or "\0" in line:
                raise ValueError("not text")
            fields = next(csv.reader([line]))
            if len(fields) != len(header):
                raise ValueError(f"{len(fields)} fields, {len(header)} expected")
            row = {**empty, **{k: _decode(k, v) for k, v in zip(header, fields)}}
            rows.append(_with_later_settings(row) if required == "cell" else row)
        except (ValueError, csv.Error):  # json.JSONDecodeError is a ValueError
            bad.append(line)
    newer = [r for r in rows if isinstance(r.get("schema_version"), int) and r["schema_version"] > SCHEMA_VERSION]
    if newer:
        raise UserError(
            f"{path}: written with results schema {newer[0]['schema_version']}, this shufflebench reads "
            f"up to {SCHEMA_VERSION}: upgrade shufflebench"
        )
    return rows, bad


def _with_later_settings(row: dict[str, Any]) -> dict[str, Any]:
    """A row written before its backend declared some of its settings, with those settings at the value it was
    measured with (Backend.setting_before) and its cell key as the cell has it now: a setting added later whose value
    is the old behaviour does not split a cell from its earlier measurements."""
    from shufflebench.config import kv

    try:
        backend = backends.get(row["backend"])
    except Exception:  # noqa: BLE001 - a backend this version does not know: the row stays as written
        return row
    names = [s.name for s in backend.settings]
    missing = [n for n in names if row.get(n) is None]
    if not missing or not isinstance(row.get("cell"), str) or row.get("batch") is None:
        return row
    row.update({n: backend.setting_before(n) for n in missing})
    head, _, _ = row["cell"].rpartition("/")
    return {**row, "cell": f"{head}/{kv({n: row[n] for n in names})}"}


def _is_text(line: str) -> bool:
    try:
        line.encode()
    except UnicodeEncodeError:  # a surrogate escape: bytes that were not UTF-8
        return False
    return True


def _encode(key: str, value: Any) -> Any:
    if key in JSON_COLUMNS and value is not None:
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return " ".join(value.splitlines())  # one record, one line: a torn write is then one bad line
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
