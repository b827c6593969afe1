"""Preparation: what every process of a cell shares, done once per cell and cached by content.

- ``prepare`` [torch]: build the workload, count its cost, export it to ONNX when an ONNX Runtime cell needs it; once
  per distinct workload, parameters and batch.
- ``runtime_cost``: count the graph ONNX Runtime optimises the model into; once per distinct model, backend and
  settings, on the device that runs it (ORT's NCHWc layout depends on the ISA).

Both run in worker processes (shufflebench.launcher) and their answers are cached in the user's cache folder
(``SHUFFLEBENCH_CACHE``, else ``$XDG_CACHE_HOME/shufflebench`` or ``~/.cache/shufflebench``), so ``time``, ``run``,
``predict``, ``export`` and resumed sweeps prepare a workload once. The key is everything that decides the answer: the
workload, its parameters and batch, the source hash of a user's model, a digest of the code that builds, counts and
exports (``shufflebench/blocks/`` and the cost and export modules), the versions of torch, onnx, onnxscript and
onnxruntime and the opset; for runtime costs also the model file's own hash, the backend, the settings and the machine
key. A changed input is a new key, so a stale entry is never read; an entry whose ONNX file is gone or changed size is
prepared again.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import tempfile
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shufflebench import backends, workloads
from shufflebench.catalog import cache_folder
from shufflebench.config import Cell, kv
from shufflebench.launcher import Launcher
from shufflebench.worker import Failure, Prepared, PrepareJob, RuntimeCost, RuntimeCostJob, decode, encode

if TYPE_CHECKING:
    from shufflebench.runner import Progress

# What a prepare worker imports before it is forked: building, counting and exporting (shufflebench.export imports
# onnxruntime, which starts a thread at import, so that one the child imports itself).
PREPARE_PRELOAD = ("torch", "torch.onnx", "onnx", "onnxscript", "shufflebench.blocks", "shufflebench.cost")
ONNX_PRELOAD = ("shufflebench.onnx_cost",)  # a user's .onnx file is counted torch-free
# Prepare workers that run at once, one per core: nothing is timed meanwhile, and each holds a torch process of a few
# hundred MB (an export takes seconds: on 2 cores, two at once halve a cold preparation).
PREPARE_WORKERS = max(1, min(8, os.cpu_count() or 1))
# The code whose output is cached, relative to the package.
CODE = ("blocks", "cost.py", "export.py", "onnx_cost.py", "categories.py", "workloads.py")
VERSIONS = ("torch", "onnx", "onnxscript", "onnxruntime", "onnxruntime-gpu")


@functools.cache
def code_digest() -> str:
    """A hash of the code that builds, counts and exports workloads, and of the library versions it runs on."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for entry in CODE:
        for path in sorted((root / entry).rglob("*.py")) if (root / entry).is_dir() else [root / entry]:
            digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    for name in VERSIONS:
        try:
            digest.update(f"{name}={metadata.version(name)}".encode())
        except metadata.PackageNotFoundError:
            pass
    digest.update(f"opset={backends.ONNX_OPSET}".encode())
    return digest.hexdigest()


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _file_hash(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class Cache:
    """Prepared workloads and runtime costs on disk, one JSON file per key (the ONNX file beside it)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or cache_folder()

    def read(self, kind: str, key: str) -> dict[str, Any] | None:
        path = self.folder / kind / f"{key}.json"
        try:
            entry = json.loads(path.read_text())
            onnx = entry["answer"].get("onnx")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):  # none yet, or not one of ours
            return None
        if onnx and entry.get("onnx_size") is not None:  # a file of ours: it must still be the one exported
            if not Path(onnx).is_file() or Path(onnx).stat().st_size != entry["onnx_size"]:
                return None
        return entry["answer"]

    def write(self, kind: str, key: str, answer: Any, onnx_size: int | None = None) -> None:
        folder = self.folder / kind
        folder.mkdir(parents=True, exist_ok=True)
        entry = {"answer": json.loads(encode(answer)), "onnx_size": onnx_size}
        with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False) as f:
            json.dump(entry, f)
        os.replace(f.name, folder / f"{key}.json")  # atomic: a reader sees the whole entry or none

    def onnx_path(self, key: str, stem: str) -> Path:
        (self.folder / "prepared").mkdir(parents=True, exist_ok=True)
        return self.folder / "prepared" / f"{stem}-{key}.onnx"


def prepare_cells(
    cells: list[Cell], timeout: float, launcher: Launcher, progress: Progress | None = None
) -> tuple[dict[str, Prepared], dict[str, str]]:
    """Cost, input shape and ONNX file (for backends that run one) per distinct workload and batch, from the cache
    or from a prepare worker. Returns what each cell needs and the error text, both by cell key."""
    groups: dict[str, list[Cell]] = defaultdict(list)
    for cell in cells:
        groups[json.dumps([cell.workload, cell.source, cell.args, cell.batch], sort_keys=True)].append(cell)
    cache = Cache()
    prepared: dict[str, Prepared] = {}
    errors: dict[str, str] = {}

    def prepare_group(group_key: str, group: list[Cell]) -> None:
        first = group[0]
        own_onnx = workloads.is_onnx(first.workload)
        needs_onnx = any(backends.get(c.backend).needs_onnx for c in group) and not own_onnx
        key = _key(group_key, needs_onnx, code_digest())
        found = cache.read("prepared", key)
        answer: Prepared | Failure = (
            decode(Prepared, found)
            if found
            else _prepare(first, key, needs_onnx, own_onnx, cache, timeout, launcher, progress)
        )
        for cell in group:
            if isinstance(answer, Failure):
                errors[cell.key] = answer.error
            else:
                prepared[cell.key] = answer

    # Nothing is timed while workloads are prepared, so their workers may share the cores.
    with ThreadPoolExecutor(max_workers=PREPARE_WORKERS) as pool:
        list(pool.map(prepare_group, groups.keys(), groups.values()))
    return prepared, errors


def _prepare(
    cell: Cell,
    key: str,
    needs_onnx: bool,
    own_onnx: bool,
    cache: Cache,
    timeout: float,
    launcher: Launcher,
    progress: Progress | None,
) -> Prepared | Failure:
    """Prepare one workload in a worker and cache the answer; the export is written under a name of its own and
    moved into place only when it is complete."""
    if progress:
        progress.note(f"preparing {cell.workload} {kv(cell.args)} batch={cell.batch}")
    final = cache.onnx_path(key, Path(cell.workload.replace(":", "-")).name) if needs_onnx else None
    partial = final.with_suffix(f".{os.getpid()}.partial.onnx") if final else None
    job = PrepareJob(cell.workload, cell.args, cell.batch, str(partial) if partial else None)
    answer = launcher.run("prepare", job, timeout, ONNX_PRELOAD if own_onnx else PREPARE_PRELOAD)
    if isinstance(answer, Failure):
        if partial:
            partial.unlink(missing_ok=True)
        return answer
    if final and partial:
        os.replace(partial, final)
        answer = dataclasses.replace(answer, onnx=str(final))
    cache.write("prepared", key, answer, final.stat().st_size if final else None)
    return answer


def runtime_costs(
    cells: list[Cell],
    prepared: dict[str, Prepared],
    machine_key: str,
    timeout: float,
    launcher: Launcher,
) -> dict[str, dict[str, Any]]:
    """By cell key, the cost of the graph its runtime runs, for cells whose backend runs an ONNX file: counted once
    per distinct model, backend and settings, cached per machine. A count that fails says why in ``error``; the cell
    is measured all the same."""
    groups: dict[str, list[Cell]] = defaultdict(list)
    for cell in cells:
        if backends.get(cell.backend).needs_onnx and cell.key in prepared:
            item = prepared[cell.key]
            groups[json.dumps([item.onnx, item.input_shape, cell.backend, cell.settings], sort_keys=True)].append(cell)
    cache = Cache()
    out: dict[str, dict[str, Any]] = {}
    for group_key, group in groups.items():
        onnx, input_shape, backend, settings = json.loads(group_key)
        key = _key(_file_hash(onnx), input_shape, backend, settings, machine_key, code_digest())
        found = cache.read("runtime", key)
        if found:
            cost = decode(RuntimeCost, found).cost
        else:
            job = RuntimeCostJob(backend, onnx, input_shape, settings)
            answer = launcher.run("runtime_cost", job, timeout, backends.get(backend).preload)
            if isinstance(answer, Failure):
                cost = {"error": answer.error}
            else:
                cost = answer.cost
                if "error" not in cost:
                    cache.write("runtime", key, answer)
        for cell in group:
            out[cell.key] = cost
    return out
