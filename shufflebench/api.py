"""The Python API, for notebooks and scripts: measure a model and get the row ``shufflebench time --json`` prints.

    from shufflebench import api

    row = api.measure(model, x, mask, threads=1)      # a torch.nn.Module and its example inputs (one or several)
    row = api.measure("model.onnx")                    # an ONNX file (ONNX Runtime, CPU by default)
    row = api.measure("shufflenet_v2", width=0.5)      # a registered workload, or "pkg.module:callable"
    print(row)                                         # what `shufflebench time` prints; row["median_ms"], ...

Where it runs is the row's ``launcher`` column:

- **Worker processes** (``fork`` or ``exec``), as ``shufflebench time`` runs: a name, an ONNX file, or a module a fresh
  interpreter can rebuild, i.e. one input and every class of it importable (defined in a module of a package or a
  file beside you, not in the calling script or notebook). The module is saved with ``torch.save`` and loaded in each
  worker, so its processes are independent draws, on any backend (ONNX Runtime ones through an export).
- **In this process** (``in-process``): a module defined in the calling script or notebook (its classes live in
  ``__main__``), or one that takes several inputs. The same warm-up, sampling and statistics, but the "processes" are
  repetitions in this interpreter, not independent ones, and only torch backends run (export the module to ONNX and
  pass the file for ONNX Runtime). Its threads setting is applied for the measurement and restored after.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from shufflebench import backends, catalog, config, workloads
from shufflebench.errors import UserError

IN_PROCESS = "in-process"


class Row(dict):
    """A results row (a dict, as ``time --json`` prints it) that prints as ``shufflebench time`` does."""

    def __str__(self) -> str:
        from shufflebench.cli import describe_row

        return describe_row(self) if self.get("status") == "ok" else f"{self['status']}: {self.get('error')}"


def measure(
    model: Any,
    *inputs: Any,
    backend: str | None = None,
    threads: int | None = None,
    batch: int = 1,
    settings: dict[str, Any] | None = None,
    processes: int = 6,
    min_time: float = 1.0,
    timeout: float = 600.0,
    input_shape: str | None = None,
    **params: Any,
) -> Row:
    """Measure ``model``: an ``nn.Module`` with its example ``inputs`` (the batch is their first dimension), or the
    name of a workload, an import path or an ``.onnx`` file with its ``params``, ``batch`` and ``input_shape``.

    ``backend`` defaults to torch-cpu (ort-cpu for an ONNX file), ``threads`` to the physical cores, ``settings``
    holds any other backend setting (``{"dtype": "float16"}``). Returns the results row; raises UserError on bad input.
    """
    chosen = {**(settings or {}), **({"threads": threads} if threads is not None else {})}
    if isinstance(model, (str, Path)):
        if inputs:
            raise UserError("example inputs go with a module; a name, import path or .onnx file takes params")
        return time_cell(str(model), params, backend, chosen, batch, processes, min_time, timeout, input_shape)
    import torch

    if not isinstance(model, torch.nn.Module):
        raise UserError(f"measure takes an nn.Module, a workload name or an .onnx path, got {type(model).__name__}")
    if not inputs or not all(isinstance(t, torch.Tensor) for t in inputs):
        raise UserError("give the module's example inputs as tensors: measure(module, x) or measure(module, x, y)")
    if params or input_shape:
        raise UserError(f"a module takes example inputs, not params ({next(iter(params), 'input_shape')})")
    shape = "x".join(str(d) for d in inputs[0].shape[1:])
    if len(inputs) == 1 and rebuildable(model):
        args = {"path": str(_save(model))}
        batch = int(inputs[0].shape[0])
        return time_cell(f"{__name__}:saved_module", args, backend, chosen, batch, processes, min_time, timeout, shape)
    return _in_process(model, inputs, backend or "torch-cpu", chosen, processes, min_time, timeout)


def time_cell(
    name: str,
    params: dict[str, Any],
    backend: str | None,
    settings: dict[str, Any],
    batch: int,
    processes: int,
    min_time: float,
    timeout: float,
    input_shape: str | None = None,
) -> Row:
    """One cell measured in worker processes, nothing written: what ``shufflebench time`` does."""
    from shufflebench import device, lock

    backend = backend or ("ort-cpu" if workloads.is_onnx(name) else "torch-cpu")
    backends.get(backend).defaults(**settings)  # a setting this backend does not take is an error here
    catalog.precheck(name, params, "command line")  # a wrong name or value, told before torch is imported
    lock.refuse_if_held(device.collect()["machine_key"])  # told now, not after building the workload
    from shufflebench import runner

    if input_shape:
        params = {**params, workloads.INPUT_SHAPE: input_shape}
    cell = config.single_cell(name, params, backend, {**settings, "batch": batch})
    run = config.run_settings({"processes": processes, "min_time": min_time, "timeout": timeout}, "command line")
    sweep = config.Sweep("time", Path("command line"), [cell], run)
    return Row(runner.run_sweep(sweep, Path("results"), write=False)[0])


def rebuildable(module: Any) -> bool:
    """Whether a fresh interpreter can import every class of ``module`` (so ``torch.load`` rebuilds it there)."""
    homes = {type(sub).__module__ for sub in module.modules()}
    if any(home == "__main__" or home.startswith("<") for home in homes):
        return False
    # a worker finds what a fresh interpreter finds (PYTHONPATH, the standard library, site-packages, import hooks
    # such as an editable install's) and what is beside you; not a folder this process added to sys.path
    entries = [Path(p or ".").resolve() for p in sys.path]
    reachable = {Path(p).resolve() for p in _startup_path()} | {Path.cwd().resolve()}
    for package in {home.partition(".")[0] for home in homes}:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            return False
        origin = Path(spec.origin).resolve()
        found_in = next((e for e in entries if origin.is_relative_to(e)), None)
        if found_in is not None and found_in not in reachable:  # None: an import hook, which a worker has too
            return False
    return True


def _startup_path() -> list[str]:
    """sys.path as a fresh interpreter has it (PYTHONPATH, the standard library, site-packages)."""
    import site
    import sysconfig

    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths += [sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")]
    return paths + site.getsitepackages() + [site.getusersitepackages()]


def saved_module(path: str) -> Any:
    """The workload a worker builds for ``measure(module, x)``: the module ``torch.save`` wrote to ``path``."""
    import torch

    return torch.load(path, weights_only=False)


def _save(module: Any) -> Path:
    """``module`` saved under a name that is the hash of its bytes, in the preparation cache."""
    import io

    import torch

    from shufflebench.catalog import cache_folder

    buffer = io.BytesIO()
    torch.save(module, buffer)
    data = buffer.getvalue()
    path = cache_folder() / "modules" / f"{hashlib.sha256(data).hexdigest()[:16]}.pt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_bytes(data)
        partial.replace(path)
    return path


def _in_process(
    module: Any,
    inputs: tuple[Any, ...],
    backend_name: str,
    settings: dict[str, Any],
    processes: int,
    min_time: float,
    timeout: float,
) -> Row:
    import torch

    from shufflebench import cost, device, sensors
    from shufflebench.backends import torch_backend
    from shufflebench.rows import Context, measured_row, now
    from shufflebench.worker import Prepared, time_prepared

    backend = backends.get(backend_name)
    if not isinstance(backend, backends.TorchBackend):
        raise UserError(
            f"{backend_name}: a module measured in this process runs on torch backends; export it to ONNX "
            "(torch.onnx.export) and measure the file for ONNX Runtime"
        )
    reason = backend.unavailable_reason()
    if reason:
        raise UserError(f"{backend_name}: {reason}")
    steady = all(t in os.environ.get("GLIBC_TUNABLES", "") for t in backends.STEADY_HEAP)
    # the heap is this process's own: record which it is rather than a setting it could not apply
    settings = {**settings, **({"malloc": "steady" if steady else "glibc"} if backend.target == "cpu" else {})}
    chosen = backend.defaults(**settings)
    batch = int(inputs[0].shape[0])
    shapes = ",".join("x".join(str(d) for d in t.shape) for t in inputs)
    kind = type(module)
    cell = config.Cell(f"{kind.__module__}.{kind.__qualname__}", {"inputs": shapes}, backend_name, batch, chosen)
    run = config.run_settings({"processes": processes, "min_time": min_time, "timeout": timeout}, "measure()")
    counted = cost.count(module, tuple(inputs[0].shape), inputs=tuple(inputs))
    prepared = Prepared(list(inputs[0].shape), counted.totals(), classes=counted.by_class())
    meta = device.collect()
    threads = torch.get_num_threads()
    results = []
    try:
        for _ in range(run.processes):
            started, memory = now(), sensors.Memory()
            timed = torch_backend.prepare(
                module, tuple(inputs[0].shape), device=backend.target, settings=chosen, inputs=tuple(inputs)
            )
            results.append((started, time_prepared(timed, backend, run.measure, memory)))
    finally:
        torch.set_num_threads(threads)
    context = Context(meta, Path("results") / meta["device_id"], "measure", run, sys.stderr)
    return Row(measured_row(cell, context, prepared, results, None, run.processes, IN_PROCESS))
