"""Read results folders into one DataFrame, keeping what can be read and saying what could not."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable

import pandas as pd

from shufflebench import backends, device, papers, probe, roofline
from shufflebench.errors import UserError
from shufflebench.results import read_table

BREAKDOWN_FILE = "breakdown.csv"
NODE_FILE = "node_roofline.csv"
# Files beside the sweeps' CSVs that are not results rows, and the column each must have.
SIDE_FILES = {BREAKDOWN_FILE: "category", NODE_FILE: "node"}
# Settings that change what is computed or how it is launched; batch, threads and the rest are shown per cell.
VARIANT_SETTINGS = ("dtype", "channels_last", "cuda_graph", "tf32", "cudnn_benchmark")


@dataclass
class Loaded:
    rows: pd.DataFrame  # one row per cell and device; status ok / error / skipped
    devices: dict[str, dict[str, Any]]  # device id -> device.json metadata ({} when missing)
    breakdown: pd.DataFrame  # rows of breakdown.csv files, may be empty
    nodes: pd.DataFrame  # rows of node_roofline.csv files (one network's nodes as ONNX Runtime ran them), may be empty
    warnings: list[str] = field(default_factory=list)

    def device_folders(self) -> list[str]:
        return sorted(self.devices)


def device_folders(paths: list[Path]) -> list[Path]:
    """Each path is a device folder (holds CSVs) or a results root (holds device folders), in the order given; a
    folder given twice (by itself and in its root) counts once, where it first appears."""
    folders: list[Path] = []
    for path in paths:
        if not path.is_dir():
            raise UserError(f"{path}: no such results folder")
        found = [path] if any(path.glob("*.csv")) else sorted(p for p in path.iterdir() if any(p.glob("*.csv")))
        seen = {f.resolve() for f in folders}
        folders += [f for f in found if f.resolve() not in seen]
    if not folders:
        shown = ", ".join(str(p) for p in paths)
        raise UserError(f"no results in {shown}: run `make bench` (or `shufflebench run CONFIG`) first")
    return folders


def load(paths: list[Path]) -> Loaded:
    frames, devices, warnings = [], {}, []
    side: dict[str, list[pd.DataFrame]] = {name: [] for name in SIDE_FILES}
    for folder in device_folders(paths):
        meta, problem = device.read_meta(folder / "device.json")
        warnings += [problem] if problem else []
        device_id = meta.get("device_id", folder.name)
        if device_id in devices:
            warnings.append(same_id_warning(device_id, devices[device_id], meta, folder))
        devices[device_id] = meta
        for csv_path in sorted(folder.glob("*.csv")):
            try:
                rows, bad = read_table(csv_path, required=SIDE_FILES.get(csv_path.name, "cell"))
            except (UserError, OSError) as e:  # e.g. a newer schema or an unreadable file: report the rest
                warnings.append(f"skipped {e}")
                continue
            if bad:
                warnings.append(f"{csv_path}: {len(bad)} line(s) could not be read and are left out")
            if csv_path.name in SIDE_FILES:
                side[csv_path.name].append(pd.DataFrame(rows).assign(device_id=device_id))
            elif rows:
                frames.append(pd.DataFrame(rows).assign(device_id=device_id, sweep=csv_path.stem))
    if not frames:
        raise UserError(
            "no readable results rows in "
            + ", ".join(str(p) for p in paths)
            + (f" ({'; '.join(warnings)})" if warnings else "")
        )
    # A file whose rows all lack a number (all skipped, say) reads that column as objects: make the numbers numbers.
    rows = pd.concat(frames, ignore_index=True).infer_objects()
    warnings += run_probe_warnings(rows)
    versions = sorted(rows["schema_version"].dropna().unique())
    if len(versions) > 1:
        warnings.append(
            f"results use schema versions {', '.join(map(str, versions))}: columns missing from the "
            "older rows are left blank"
        )
    breakdown, nodes = (pd.concat(side[n], ignore_index=True) if side[n] else pd.DataFrame() for n in SIDE_FILES)
    return Loaded(rows, devices, breakdown, nodes, warnings)


def same_id_warning(device_id: str, first: dict[str, Any], second: dict[str, Any], folder: Path) -> str:
    """Two folders of one device id: the same machine, or (when their probes disagree) not."""
    a, b = first.get("probe") or {}, second.get("probe") or {}
    if a and b and probe.differs(a, b):
        return (
            f"{folder}: same id {device_id} as another folder, but their probes differ by {probe.drift(a, b):.0%} "
            f"(over {probe.PROBE_CHANGE:.0%}): same id, different machine or different state: rerun the probe (a "
            "sweep does) on each and compare again"
        )
    return f"{folder}: same id {device_id} as another folder; their rows are shown as one device"


def run_probe_warnings(rows: pd.DataFrame) -> list[str]:
    """Runs of one device whose start probes disagree by more than PROBE_CHANGE (rows of one run share a probe); probes
    whose matrix products were of different sizes measured different things and are not compared."""
    if "probe" not in rows:
        return []
    out = []
    measured = rows[(rows["status"] == "ok") & rows["probe"].notna()]
    for device_id, group in measured.groupby("device_id"):
        by_key: dict[tuple[str, int | None], list[dict]] = {}
        for record in group["probe"]:
            by_key.setdefault((record["key"], record["start"].get("matmul_n")), []).append(record["start"])
        for (key, _), starts in by_key.items():
            spread = max(probe.drift({key: a}, {key: b}) for a in starts for b in starts)
            if spread > probe.PROBE_CHANGE:
                out.append(
                    f"{device_id}: runs whose {key} probes differ by {spread:.0%}: same id, different machine or "
                    "different state: rerun the probe and measure again on a quiet device"
                )
    return out


def warning_lines(warnings: list[str]) -> list[str]:
    """The warnings as a Markdown quote, one item each (consecutive quoted lines would run into one paragraph)."""
    return [f"> - {w}" for w in warnings] + ([""] if warnings else [])


def ok_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Measured rows only, one per cell and device (a cell measured by several sweeps: the latest), with a `series`
    column (a guideline table's workload, "networks" or "other": shufflebench.papers.series) and a `variant` column: the
    backend and those of its settings that change the computation itself, where they differ from their defaults
    ("torch-cuda dtype=float16")."""
    ok = rows[rows["status"] == "ok"].sort_values("finished_at").drop_duplicates(["device_id", "cell"], keep="last")
    ok["series"] = ok["workload"].map(papers.series)
    ok["variant"] = [variant(row) for _, row in ok.iterrows()]
    return with_device_roofs(ok)


def best_roofs(rows: pd.DataFrame, group: Callable[[str, str], Hashable]) -> dict[Hashable, dict[str, float]]:
    """The best start-probe roofs of ``rows`` per ``group(device_id, probe key)`` (shufflebench.probe.ROOFS, 0 for a
    roof no probe measured) with their ``compute_gflops``; rows without a probe are left out."""
    best: dict[Hashable, dict[str, float]] = {}
    for device_id, record in zip(rows["device_id"], rows["probe"]):
        if isinstance(record, dict) and record.get("start"):
            roofs = best.setdefault(group(device_id, record["key"]), {})
            for roof in probe.ROOFS:
                roofs[roof] = max(roofs.get(roof, 0.0), record["start"].get(roof) or 0.0)
            roofs["compute_gflops"] = probe.compute_gflops(roofs)
    return best


def with_device_roofs(ok: pd.DataFrame) -> pd.DataFrame:
    """The roofline columns against each device's roofs: the best that any backend's probe reached at a row's thread
    count (on a GPU, its precision) in any run of that device (shufflebench.probe.device_roofs; rows written before
    the roofs were the device's were judged against their own backend's probe)."""
    if "probe" not in ok or ok.empty:
        return ok
    best = best_roofs(ok, lambda device_id, key: (device_id, probe.roof_kind(key)))
    columns = []
    for _, row in ok.iterrows():
        record = row["probe"]
        roofs = (
            best[row["device_id"], probe.roof_kind(record["key"])]
            if isinstance(record, dict) and (record.get("start"))
            else {}
        )
        columns.append(
            {
                "peak_gflops": roofs.get("compute_gflops"),
                "peak_gbs": roofs.get("bandwidth_gbs"),
                **asdict(
                    roofline.analyse(
                        _number(row.get("flops")),
                        _number(row.get("mac_bytes")),
                        _number(row.get("median_ms")),
                        roofs.get("compute_gflops"),
                        roofs.get("bandwidth_gbs"),
                        _number(row.get("mac_runtime_bytes")),
                    )
                ),
            }
        )
    recomputed = pd.DataFrame(columns, index=ok.index)
    return ok.assign(**{name: recomputed[name] for name in recomputed})


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def variant(row: pd.Series) -> str:
    changed = [
        f"{name}={str(row[name]).lower() if isinstance(row[name], bool) else row[name]}"
        for name in VARIANT_SETTINGS
        if name in row and pd.notna(row[name]) and row[name] != backends.SETTINGS[name].default
    ]
    return " ".join([row["backend"], ",".join(changed)]).strip()
