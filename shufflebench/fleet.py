"""Many devices from one host, on Dask distributed (the optional extra ``shufflebench[fleet]``).

Why Dask (docs/design-notes.md, "Fleet"): pure Python with pip wheels wherever Python runs (Raspberry Pi OS, JetPack,
Graviton, x86), a worker can advertise an abstract resource and a task that asks for it runs on that worker and
nowhere else, and the scheduler never runs more tasks at once than a worker has of a resource.

- ``shufflebench fleet worker SCHEDULER`` (on each board) starts a Dask worker with one thread and the resource
  ``shufflebench-<machine key>: 1``, named after the device id (``--label`` tells identical boards apart).
- ``shufflebench fleet run SWEEP.yaml --scheduler ADDRESS`` (on the host, where torch is) prepares the sweep once
  (costs counted, ONNX files exported), sends the ONNX files to the cluster once, and for every shufflebench worker
  (or those ``--devices`` names): fingerprints it, probes it, submits one task per cell that still needs measuring
  there (the resume rules of ``run``), each holding the machine's resource, and writes each row under
  ``results/<device-id>/<sweep>.csv`` on the host the moment it arrives. A cell's task runs the usual worker processes
  on that machine, under that machine's sweep lock, so a local ``run`` and a fleet task never time each other either.
- A device that leaves the cluster keeps the rows it returned; after ``grace`` seconds without it, its remaining cells
  are given up (not measured, no row) and the command says so and exits 1: running it again when the device is back
  measures only what is missing. ``shufflebench fleet status`` lists the devices the cluster knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import io
import os
import random
import sys
import tempfile
import time
import zipfile
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any, TextIO

from shufflebench import backends, config, device, lock, preparation, runner
from shufflebench.errors import UserError
from shufflebench.launcher import Launcher
from shufflebench.results import ResultsStore
from shufflebench.rows import Context, error_row
from shufflebench.worker import Prepared, decode

RESOURCE = "shufflebench-"  # + machine key: the resource a shufflebench worker advertises, one unit
CONNECT_TIMEOUT = "10s"


def client(address: str) -> Any:
    """A Dask client of the scheduler at ``address``; UserError in one line when it cannot be reached."""
    try:
        from distributed import Client
    except ImportError:
        raise UserError("the fleet needs Dask distributed: pip install 'shufflebench[fleet]'") from None
    try:
        return Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as e:
        raise UserError(
            f"cannot reach the Dask scheduler at {address} ({type(e).__name__}); start one with `dask scheduler` and "
            "point --scheduler at it"
        ) from None


@dataclasses.dataclass
class Device:
    worker: str  # the Dask worker's address
    resource: str
    meta: dict[str, Any]  # its fingerprint (shufflebench.device.collect)
    backends: list[str]  # the backends it can run
    busy: bool


def devices(dask: Any, names: list[str] | None = None) -> list[Device]:
    """The cluster's shufflebench workers with their fingerprints (``names``: only those device ids or labels)."""
    found = []
    processing = dask.processing()
    for address, worker in dask.scheduler_info(n_workers=-1)["workers"].items():
        resource = next((r for r in worker.get("resources", {}) if r.startswith(RESOURCE)), None)
        if resource is None:
            continue
        meta, usable = dask.submit(_fingerprint, pure=False, workers=[address]).result()
        found.append(Device(address, resource, meta, usable, bool(processing.get(address))))
    if names:
        found = [d for d in found if d.meta["device_id"] in names or d.meta.get("label") in names]
        missing = set(names) - {d.meta["device_id"] for d in found} - {d.meta.get("label") for d in found}
        if missing:
            raise UserError(f"no shufflebench worker in the cluster is {', '.join(sorted(missing))}")
    return found


def status(address: str) -> str:
    """A table of the devices the cluster knows."""
    with contextlib.closing(client(address)) as dask:
        found = devices(dask)
    if not found:
        return f"no shufflebench worker at {address}: start one with `shufflebench fleet worker {address}`"
    header = ["device id", "machine key", "arch", "backends", "state"]
    table = [
        [
            d.meta["device_id"],
            d.meta["machine_key"],
            d.meta["arch"],
            ",".join(d.backends) or "-",
            "busy" if d.busy else "idle",
        ]
        for d in found
    ]
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in [header, *table])


def serve(address: str, label: str | None = None) -> None:
    """Run a Dask worker for this device until it is stopped: one thread, this machine's resource."""
    try:
        from distributed import Worker
    except ImportError:
        raise UserError("the fleet needs Dask distributed: pip install 'shufflebench[fleet]'") from None
    if label:
        os.environ["SHUFFLEBENCH_LABEL"] = label
    meta = device.collect()

    async def work() -> None:
        async with Worker(
            address, nthreads=1, resources={RESOURCE + meta["machine_key"]: 1}, name=f"shufflebench/{meta['device_id']}"
        ) as worker:
            print(f"shufflebench fleet worker for {meta['device_id']} at {worker.address}", file=sys.stderr)
            await worker.finished()

    try:
        asyncio.run(work())
    except (OSError, TimeoutError) as e:
        raise UserError(f"cannot reach the Dask scheduler at {address} ({type(e).__name__})") from None


def run(
    sweep: config.Sweep,
    address: str,
    results_root: Path,
    *,
    names: list[str] | None = None,
    grace: float = 60.0,
    log: TextIO = sys.stderr,
) -> tuple[list[dict], list[str]]:
    """Measure ``sweep`` on every shufflebench device of the cluster; returns the rows written on the host and the
    ids of the devices that left before all their cells were measured."""
    with contextlib.closing(client(address)) as dask:
        found = devices(dask, names)
        if not found:
            raise UserError(
                f"no shufflebench worker at {address}: start one with `shufflebench fleet worker {address}`"
            )
        with Launcher(log) as launcher:
            prepared, errors = preparation.prepare_cells(sweep.cells, sweep.run.prepare_timeout, launcher)
        bundle = dask.scatter(_pack(prepared), broadcast=True)
        portable = {key: _portable(p) for key, p in prepared.items()}
        return _measure(dask, found, sweep, portable, errors, bundle, results_root, grace, log)


@dataclasses.dataclass
class _Plan:
    device: Device
    store: ResultsStore
    probe: dict[str, dict]
    cells: list[config.Cell]
    pending: dict[Any, str]  # future -> cell key
    submit: Any  # cell key -> a new future measuring it on this device
    rows: list[dict] = dataclasses.field(default_factory=list)
    gone_since: float | None = None
    lost: bool = False


def _measure(
    dask: Any,
    found: list[Device],
    sweep: config.Sweep,
    prepared: dict[str, dict],
    errors: dict[str, str],
    bundle: Any,
    results_root: Path,
    grace: float,
    log: TextIO,
) -> tuple[list[dict], list[str]]:
    from distributed import wait

    plans = []
    for d in found:
        folder = results_root / d.meta["device_id"]
        store = ResultsStore(folder / f"{sweep.name}.csv")
        device.write_if_changed(folder / "device.json", d.meta)
        todo = runner.cells_to_measure(sweep, store.by_cell(), d.meta, None, log)
        for cell in [c for c in todo if c.key in errors]:
            store.put(_failed_row(cell, d.meta, sweep, errors[cell.key]))
        todo = [c for c in todo if c.key not in errors]
        pairs = runner.probe_pairs(todo) if sweep.run.probe else []
        roofs = _on(dask, d, _probe, pairs, sweep.run.timeout).result() if pairs else {}
        random.Random(sweep.run.seed).shuffle(todo)
        cells = {c.key: c for c in todo}

        def submit(key: str, d: Device = d, roofs: dict = roofs, cells: dict = cells) -> Any:
            cell = cells[key]
            return _on(dask, d, _cell, bundle, dataclasses.asdict(cell), prepared[key], _run(sweep), sweep.name, roofs)

        pending = {submit(c.key): c.key for c in todo}
        print(f"{d.meta['device_id']}: {len(pending)} cells to measure", file=log)
        plans.append(_Plan(d, store, roofs, todo, pending, submit))
    while any(p.pending for p in plans):
        # The scheduler may cancel the tasks of a device that left; those stay pending until it is back (they are
        # submitted again) or its grace runs out.
        live = [f for p in plans for f in p.pending if f.status != "cancelled"]
        try:
            with dask.as_current():  # wait() asks for the current client; this one is not the process default
                done = wait(live, timeout=1.0, return_when="FIRST_COMPLETED").done if live else set()
        except (TimeoutError, CancelledError):  # none finished within the second, or one was cancelled meanwhile
            done = set()
        if not live:
            time.sleep(1.0)
        workers = dask.scheduler_info(n_workers=-1)["workers"]
        for plan in plans:
            for future in [f for f in plan.pending if f in done]:
                key = plan.pending.pop(future)
                row = future.result() if future.status == "finished" else None
                if row is None:
                    cell = next(c for c in sweep.cells if c.key == key)
                    row = _failed_row(cell, plan.device.meta, sweep, f"fleet task failed: {future.exception()}")
                plan.store.put(row)
                plan.rows.append(row)
                print(f"{plan.device.meta['device_id']}: {key}: {_outcome(row)}", file=log)
            present = any(plan.device.resource in w.get("resources", {}) for w in workers.values())
            if present:
                for future in [f for f in plan.pending if f.status == "cancelled"]:
                    key = plan.pending.pop(future)
                    plan.pending[plan.submit(key)] = key
            plan.gone_since = None if present else (plan.gone_since or time.monotonic())
            if plan.pending and plan.gone_since and time.monotonic() - plan.gone_since > grace:
                dask.cancel(list(plan.pending))
                print(
                    f"{plan.device.meta['device_id']} left the cluster: {len(plan.rows)} rows kept, "
                    f"{len(plan.pending)} cells not measured; run the same command again when it is back",
                    file=log,
                )
                plan.pending.clear()
                plan.lost = True
    for plan in plans:
        if plan.probe and not plan.lost:
            end = _on(dask, plan.device, _probe, runner.probe_pairs(plan.cells), sweep.run.timeout).result()
            for row in runner.finish_probes(plan.rows, end, plan.device.meta["cores_logical"]):
                plan.store.put(row)
    return [row for p in plans for row in p.rows], [p.device.meta["device_id"] for p in plans if p.lost]


def _on(dask: Any, d: Device, function: Any, *args: Any) -> Any:
    """Submit ``function(*args)`` to device ``d`` alone, holding its machine's resource."""
    return dask.submit(function, *args, resources={d.resource: 1}, pure=False)


def _run(sweep: config.Sweep) -> dict[str, Any]:
    return dataclasses.asdict(sweep.run)


def _fingerprint() -> tuple[dict[str, Any], list[str]]:
    """On the device: its fingerprint and the backends it can run."""
    usable = [name for name, backend in backends.REGISTRY.items() if backend.unavailable_reason() is None]
    return device.collect(), usable


def _probe(pairs: list[tuple[str, int | None, str]], timeout: float) -> dict[str, dict]:
    """On the device: its roofs for these backends and thread counts."""
    with Launcher() as launcher:
        return runner.run_probes([tuple(p) for p in pairs], timeout, io.StringIO(), launcher)


def _cell(
    bundle: bytes, cell: dict, prepared: dict, run: dict, sweep_name: str, roofs: dict[str, dict]
) -> dict[str, Any]:
    """On the device: measure one cell, under this machine's sweep lock, and return its row."""
    models = _unpack(bundle)
    item = decode(Prepared, prepared)
    if item.onnx:
        item = dataclasses.replace(item, onnx=str(models / item.onnx))
    settings = config.RunSettings(**{**run, "measure": config.MeasureSettings(**run["measure"])})
    meta = device.collect()
    the_cell = decode(config.Cell, cell)
    rows: list[dict] = []
    with (
        lock.device_lock(meta["machine_key"], f"pid {os.getpid()}, fleet cell {the_cell.key}"),
        Launcher() as launcher,
    ):
        context = Context(meta, models.parent, sweep_name, settings, io.StringIO(), roofs)
        runner.measure_cells([the_cell], context, rows.append, launcher, {the_cell.key: item})
    return rows[0]


def _pack(prepared: dict[str, Prepared]) -> bytes:
    """The prepared ONNX files in a zip, named as ``_portable`` refers to them."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted({p.onnx for p in prepared.values() if p.onnx}):
            archive.write(path, Path(path).name)
    return buffer.getvalue()


def _portable(item: Prepared) -> dict[str, Any]:
    return {**dataclasses.asdict(item), "onnx": Path(item.onnx).name if item.onnx else None}


def _unpack(bundle: bytes) -> Path:
    """The bundle's files on this machine, unpacked once per bundle into the temporary folder."""
    digest = hashlib.sha256(bundle).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"shufflebench-fleet-{digest}" / "models"
    if not folder.exists():
        staging = folder.parent / f".staging-{os.getpid()}"
        with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
            archive.extractall(staging)
        folder.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # another task unpacked it meanwhile
            staging.rename(folder)
    return folder


def _failed_row(cell: config.Cell, meta: dict, sweep: config.Sweep, error: str) -> dict[str, Any]:
    context = Context(meta, Path("."), sweep.name, sweep.run, io.StringIO())
    return error_row(cell, context, None, "error", error)


def _outcome(row: dict) -> str:
    return f"{row['median_ms']:.3f} ms" if row["status"] == "ok" else f"{row['status']}: {row['error']}"
