"""The worker process and its typed protocol: ``python -m shufflebench.worker KIND JOB.json OUT.json``.

The runner runs every job in a worker process of its own (forked by shufflebench.launcher, or freshly executed) so that
a crash, a hang or an out-of-memory kill costs one cell, and torch and ONNX Runtime never share a process (their thread
pools would compete). Kinds: ``prepare`` builds a workload, counts its cost and exports it to ONNX when an ORT cell
needs it [torch]; ``runtime_cost`` counts the graph ONNX Runtime optimises a model into, once per cell; ``time``
measures one cell and imports only what its backend needs, so timing an ONNX file needs no torch; ``probe`` measures
the device's roofs. Answers go to OUT.json, not stdout, because exporters and libraries print to stdout.

Jobs and answers are frozen dataclasses; :func:`encode` and :func:`decode` are their one JSON round trip (bundles use
them too).
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import signal
import sys
import traceback
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from shufflebench import backends, probe, sensors, workloads
from shufflebench.config import Cell
from shufflebench.measure import MeasureSettings, measure

T = TypeVar("T")


@dataclass(frozen=True)
class PrepareJob:
    """Build one workload, count its cost and, when ``onnx`` is set, export it there. [torch]"""

    workload: str
    args: dict[str, Any]
    batch: int
    onnx: str | None


@dataclass(frozen=True)
class Prepared:
    """What every cell of one workload and batch needs to be timed and recorded."""

    input_shape: list[int]
    cost: dict[str, int]  # params, flops, mac, mac_bytes (float32), elementwise_ops
    onnx: str | None = None  # the exported file, for backends that run one
    export: dict[str, Any] | None = None  # exporter, opset, versions, op counts
    classes: dict[str, list[int]] | None = None  # the torch op graph per predictor class: [count, FLOPs, bytes]


@dataclass(frozen=True)
class RuntimeCostJob:
    """Count the graph a backend's runtime makes of an ONNX file with a cell's settings (shufflebench.onnx_cost)."""

    backend: str
    onnx: str
    input_shape: list[int]
    settings: dict[str, Any]


@dataclass(frozen=True)
class RuntimeCost:
    cost: dict[str, Any]  # mac, mac_bytes, flops, ops, classes, unknown_shapes; or error


@dataclass(frozen=True)
class TimeJob:
    cell: Cell
    prepared: Prepared
    measure: MeasureSettings


@dataclass(frozen=True)
class ProcessResult:
    """One worker process's measurement of a cell (seconds)."""

    samples: list[float]
    number: int
    warmup: list[float]
    timer_overhead: float
    pipelined: list[float]
    pipelined_number: int
    info: dict[str, Any]  # the settings as the backend applied them
    calls: int = 0  # calls made in all, warm-up included
    health: dict[str, Any] | None = None  # shufflebench.sensors.health() just before and just after measuring
    energy_j: float | None = None  # energy used while measuring, by energy_method
    energy_method: str = ""
    peak_rss_bytes: int | None = None  # high-water resident memory over the worker's own before the model was built
    peak_device_bytes: int | None = None  # torch on CUDA: the most memory its allocator held at once
    reference: list[float] = dataclasses.field(default_factory=list)  # the reference kernel's s per call, per block


@dataclass(frozen=True)
class Failure:
    """A worker that raised: the exception type and message, and the traceback for the log."""

    error: str
    traceback: str = ""


def encode(value: Any) -> str:
    return json.dumps(dataclasses.asdict(value))


def decode(cls: type[T], text: str | dict[str, Any]) -> T:
    """``cls`` from its JSON (or the dict of it), nested dataclasses included."""
    data = json.loads(text) if isinstance(text, str) else text
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        kind = hints[f.name]
        if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
            kind = next((k for k in typing.get_args(kind) if k is not type(None)), kind)
        value = data[f.name]
        values[f.name] = decode(kind, value) if dataclasses.is_dataclass(kind) and value is not None else value
    return cls(**values)


def prepare(job: PrepareJob) -> Prepared:
    """Cost and input shape of a workload at a batch, and its ONNX file: exported from torch, or the user's own."""
    if workloads.is_onnx(job.workload):  # no torch: the graph is the model
        from shufflebench import onnx_cost

        path = Path(job.workload).resolve()
        input_shape = workloads.onnx_input_shape(path, job.args, job.batch)
        counted_graph = onnx_cost.count(path, input_shape)
        return Prepared(list(input_shape), counted_graph.totals(), str(path), classes=counted_graph.by_class())
    from shufflebench import blocks
    from shufflebench import cost

    workload = blocks.build(job.workload, **job.args)
    input_shape = workload.batched(job.batch)
    export = None
    if job.onnx:
        from shufflebench.export import export as export_onnx

        export = export_onnx(workload.module, input_shape, Path(job.onnx))
    counted = cost.count(workload.module, input_shape)
    return Prepared(list(input_shape), counted.totals(), job.onnx, export, counted.by_class())


def runtime_cost(job: RuntimeCostJob) -> RuntimeCost:
    backend = backends.get(job.backend)
    return RuntimeCost(backend.runtime_cost(Path(job.onnx), tuple(job.input_shape), job.settings))


def run_probe(job: probe.ProbeJob) -> probe.Roofs:
    """This backend's roofs at this thread count and precision (shufflebench.probe)."""
    return backends.get(job.backend).probe(job.threads, job.precision)


def time_cell(job: TimeJob) -> ProcessResult:
    cell = job.cell
    backend = backends.get(cell.backend)
    onnx = Path(job.prepared.onnx) if job.prepared.onnx else None
    memory = sensors.Memory()
    timed = backend.prepare(cell.workload, cell.args, onnx, tuple(job.prepared.input_shape), cell.settings)
    return time_prepared(timed, backend, job.measure, memory)


def time_prepared(
    timed: Any, backend: backends.Backend, settings: MeasureSettings, memory: sensors.Memory
) -> ProcessResult:
    """Measure a prepared timer with the sensors around it; ``memory`` was started before the model was built."""
    meter = sensors.energy(backend.on_gpu)
    nvml = sensors.nvml_or_none() if backend.on_gpu else None
    before, energy_before = sensors.health(nvml), meter.read()
    m = measure(timed, settings, backend.reference(timed.info.get("threads")))
    energy_after, after = meter.read(), sensors.health(nvml)
    return ProcessResult(
        m.samples,
        m.number,
        m.warmup,
        m.timer_overhead,
        m.pipelined,
        m.pipelined_number,
        timed.info,
        calls=m.calls,
        health={"start": before, "end": after},
        energy_j=meter.used(energy_before, energy_after),
        energy_method=meter.method,
        peak_rss_bytes=memory.peak_rss(),
        peak_device_bytes=memory.peak_device() if backend.on_gpu else None,
        reference=m.reference,
    )


def die_with_parent() -> None:
    """Linux: get SIGKILL when the runner dies, so an orphan never keeps timing beside the next sweep."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


KINDS = {
    "prepare": (PrepareJob, prepare),
    "runtime_cost": (RuntimeCostJob, runtime_cost),
    "time": (TimeJob, time_cell),
    "probe": (probe.ProbeJob, run_probe),
}
# The answers a worker may give, by the name it writes beside them.
ANSWERS = {c.__name__: c for c in (Prepared, RuntimeCost, ProcessResult, Failure, probe.Roofs)}


def main(argv: list[str]) -> int:
    kind, job_path, out_path = argv
    die_with_parent()
    job_type, run = KINDS[kind]
    try:
        answer: Any = run(decode(job_type, Path(job_path).read_text()))
    except Exception as e:  # noqa: BLE001 - every failure of a cell becomes its error row
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        answer = Failure(f"{type(e).__name__}: {first_line}", traceback.format_exc())
    Path(out_path).write_text(json.dumps({"kind": type(answer).__name__, "answer": dataclasses.asdict(answer)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
