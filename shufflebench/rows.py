"""The results row of a cell: assembled from the cell, its preparation and its processes' results (shufflebench.results
defines the columns). The runner schedules; this module only builds rows."""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from shufflebench import backends, device, probe, roofline, sensors, stats
from shufflebench.config import Cell, RunSettings
from shufflebench.results import SCHEMA_VERSION, CellColumns, CostColumns, RunColumns, make_row
from shufflebench.worker import Prepared, ProcessResult

# Warm-up call times kept per process in a row: the warm-up curve is in its first calls, and a 6 us cell warms up
# with 16,000 of them.
WARMUP_KEPT = 200


@dataclass
class Context:
    """What every row of one run shares: the device, the folder, the sweep's name and settings, the log."""

    meta: dict[str, Any]
    folder: Path
    sweep: str
    run: RunSettings
    log: TextIO
    probe: dict[str, dict] = field(default_factory=dict)  # the start probe of this run, by probe key


def _cell_columns(cell: Cell, context: Context, status: str, error: str | None) -> CellColumns:
    return CellColumns(
        schema_version=SCHEMA_VERSION,
        sweep=context.sweep,
        cell=cell.key,
        status=status,
        error=error,
        workload=cell.workload,
        workload_args=cell.args,
        source=cell.source,
        backend=cell.backend,
        device_id=context.meta["device_id"],
        machine_key=context.meta["machine_key"],
        arch=context.meta["arch"],
        emulated=context.meta["emulated"],
    )


def _cost_columns(cell: Cell, prepared: Prepared | None) -> CostColumns:
    if prepared is None:
        return CostColumns()
    cost = dict(prepared.cost)
    dtype = cell.settings.get("dtype", "float32")
    cost["mac_bytes"] = cost["mac"] * backends.ITEMSIZE[dtype]  # counted at float32; the cell may run narrower
    return CostColumns(**cost)


def _scaled_classes(classes: dict[str, list[int]] | None, cell: Cell) -> dict[str, list[int]] | None:
    """The prepared (float32) op classes with bytes at the cell's dtype."""
    if not classes:
        return None
    ratio = backends.ITEMSIZE[cell.settings.get("dtype", "float32")] / 4
    return {k: [n, flops, round(nbytes * ratio)] for k, (n, flops, nbytes) in classes.items()}


def _export_columns(cell: Cell, prepared: Prepared | None) -> dict[str, Any]:
    export = (prepared.export or {}) if prepared and backends.get(cell.backend).needs_onnx else {}
    return {"exporter": export.get("exporter"), "opset": export.get("opset")}


def error_row(cell: Cell, context: Context, prepared: Prepared | None, status: str, error: str) -> dict[str, Any]:
    """The row of a cell that was skipped or failed."""
    run = RunColumns(context.run.recorded(), now(), **_export_columns(cell, prepared))
    return make_row(
        _cell_columns(cell, context, status, error),
        {"batch": cell.batch, **cell.settings},
        run,
        _cost_columns(cell, prepared),
    )


def measured_row(
    cell: Cell,
    context: Context,
    prepared: Prepared,
    results: list[tuple[str, ProcessResult]],
    runtime_cost: dict[str, Any] | None,
    planned: int,
    launcher: str,
    interrupted: str | None = None,
) -> dict[str, Any]:
    """The row of a measured cell, from its processes' results, the cost of the graph its runtime ran (ORT cells),
    the number of processes it was to get and how they were started (shufflebench.launcher); ``interrupted`` says why
    some are missing."""
    processes = [r for _, r in results]
    load_avg = device.load_average()
    info = processes[0].info
    key = probe.key(cell.backend, cell.settings.get("threads"), probe.precision(cell.settings))
    roofs = context.probe.get(key)  # this backend's own kernels: its library's roofs, kept in the probe record
    health = [p.health for p in processes if p.health]
    flags = list(dict.fromkeys(f for h in health for f in sensors.health_flags(h["start"], h["end"])))
    summary = stats.summarize(
        [p.samples for p in processes],
        [p.number for p in processes],
        cell.batch,
        pipelined=[p.pipelined for p in processes],
        load_avg=load_avg,
        cores=context.meta["cores_logical"],
        threads=cell.settings.get("threads"),
        warnings=[*(info.get("warnings") or []), *flags, *([interrupted] if interrupted else [])],
        floor=roofs,
    )
    device_roofs = probe.device_roofs(context.probe, key)
    energies = [p.energy_j / p.calls / cell.batch * 1e3 for p in processes if p.energy_j is not None and p.calls]
    runtime = runtime_cost or {}
    cost = dataclasses.replace(
        _cost_columns(cell, prepared),
        mac_runtime=runtime.get("mac"),
        mac_runtime_bytes=runtime.get("mac_bytes"),
        runtime_ops=runtime.get("ops"),
        op_classes=runtime.get("classes") or _scaled_classes(prepared.classes, cell),
    )
    run = RunColumns(
        measure_settings=context.run.recorded(),
        finished_at=now(),
        processes_planned=planned,
        launcher=launcher,
        started_at=min(started for started, _ in results),
        timer_overhead_us=min(p.timer_overhead for p in processes) * 1e6,
        load_avg=load_avg,
        backend_info=info,
        # raw samples in ms to the nanosecond: the clock resolves no finer, and the file stays small
        samples_ms=[[round(s * 1e3, 6) for s in p.samples] for p in processes],
        warmup_ms=[[round(s * 1e3, 6) for s in p.warmup[:WARMUP_KEPT]] for p in processes],
        health=health or None,
        energy_mj_per_image=statistics.median(energies) if len(energies) == len(processes) else None,
        energy_method=processes[0].energy_method or None,
        peak_rss_mib=_median_mib([p.peak_rss_bytes for p in processes]),
        peak_device_mib=_median_mib([p.peak_device_bytes for p in processes]),
        peak_gflops=device_roofs["compute_gflops"] if device_roofs else None,
        peak_gbs=device_roofs["bandwidth_gbs"] if device_roofs else None,
        probe={"key": key, "start": roofs} if roofs else None,
        noise_floor=roofs.get("noise_floor") if roofs else None,
        **_reference_columns(processes),
        **_export_columns(cell, prepared),
    )
    bounds = roofline.analyse(
        cost.flops, cost.mac_bytes, summary.median_ms, run.peak_gflops, run.peak_gbs, cost.mac_runtime_bytes
    )
    return make_row(
        _cell_columns(cell, context, "ok", None), {"batch": cell.batch, **cell.settings}, run, cost, summary, bounds
    )


def _reference_columns(processes: list[ProcessResult]) -> dict[str, Any]:
    """The reference kernel timed between each process's samples: raw, its median, and the cell's median in its calls
    (empty where a process timed none: a GPU cell)."""
    if not all(p.reference for p in processes):
        return {}
    relative = stats.in_reference_calls([p.samples for p in processes], [p.reference for p in processes])
    return {
        "reference_ms": [[round(s * 1e3, 6) for s in p.reference] for p in processes],
        "reference_median_ms": statistics.median(statistics.median(p.reference) for p in processes) * 1e3,
        "relative_median": statistics.median(relative),
    }


def _median_mib(values: list[int | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known) / 2**20, 1) if known else None


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
