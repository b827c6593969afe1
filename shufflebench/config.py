"""YAML sweep files -> validated cells.

A sweep file (see configs/default.yaml for a commented example)::

    sweep: default                # name of the results file; defaults to the file name
    base: ../default.yaml         # optional: start from another file; mappings merge, lists are replaced
    settings:                     # axes combined as a grid over every workload entry
      backend: [torch-cpu, ort-cpu]
      batch: 1
      threads: physical           # an integer, "physical" or "logical" cores
      opt_level: all              # ONNX Runtime graph optimisation: disable, basic, extended, all
      # GPU backends also take cudnn_benchmark, tf32, dtype (float32, float16, bfloat16 on torch), channels_last
      # (torch) and cuda_graph; shufflebench.backends.SETTINGS declares every setting with its type and allowed values.
    measure: {processes: 3, min_time: 0.5}
    workloads:
      - name: g1
        zip: {c1: [128, 90], c2: [128, 180]}   # values that go together
        grid: {hw: [56]}                         # every combination
        settings: {batch: [1, 8]}                # overrides the axes above for this entry

``settings`` may also be a list of such mappings, for settings that go together: each group expands on its own,
e.g. ``[{backend: [torch-cpu, ort-cpu], batch: 1}, {backend: [torch-cuda, ort-cuda], batch: 8}]``.

A cell is one workload x one backend x one settings tuple. Settings that do not apply to a backend are dropped from
its cells (threads for torch-cuda, opt_level for torch), so no cell is measured twice. Every error names the file,
the key and what is allowed.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from shufflebench import backends, workloads
from shufflebench.errors import UserError
from shufflebench.measure import MeasureSettings

TOP_KEYS = ("sweep", "description", "base", "settings", "measure", "workloads")
ENTRY_KEYS = ("name", "grid", "zip", "settings")
SETTING_KEYS = ("backend", *backends.SETTINGS)


class ConfigError(UserError):
    """An invalid sweep file."""


@dataclass(frozen=True)
class RunSettings:
    """How the runner repeats and isolates cells, on top of the per-process MeasureSettings."""

    processes: int = 5  # worker processes per cell
    max_processes: int = 20  # a cell whose processes fall into separate modes gets more, up to this many
    seed: int = 0  # for the shuffled cell order
    timeout: float = 600.0  # s per worker process before it counts as hung
    # s per preparation (build, count, export; the runtime's graph cost) before it counts as hung: its own limit, since
    # an export on a loaded machine can take longer than a measurement is allowed to
    prepare_timeout: float = 1800.0
    probe: bool = True  # measure the device's roofs at the start and end of the run (shufflebench.probe)
    measure: MeasureSettings = MeasureSettings()

    def recorded(self) -> dict[str, Any]:
        """What a results row records of how it was measured; resume compares it (shufflebench.runner)."""
        return {**asdict(self.measure), "processes": self.processes, "seed": self.seed, "probe": self.probe}


@dataclass(frozen=True)
class Cell:
    """One workload x one backend x one setting tuple."""

    workload: str  # a registered name, an import path or an .onnx file (shufflebench.workloads)
    args: dict[str, Any]  # workload parameters, defaults filled in
    backend: str
    batch: int
    settings: dict[str, Any]  # the other settings the backend declares, in its order
    source: str | None = None  # content hash of the ONNX file or the callable's source file

    @property
    def key(self) -> str:
        """Stable id, e.g. ``g1/c1=128,c2=128,hw=56/torch-cpu/batch=1,threads=2``; ``name@hash`` for a model of the
        user's, so a changed model is a new cell."""
        name = f"{self.workload}@{self.source}" if self.source else self.workload
        return f"{name}/{kv(self.args)}/{self.backend}/{kv({'batch': self.batch, **self.settings})}"


@dataclass(frozen=True)
class Sweep:
    name: str
    path: Path
    cells: list[Cell] = field(default_factory=list)
    run: RunSettings = RunSettings()
    description: str = ""


def check_name(name: Any, where: str) -> str:
    """A sweep name becomes a file name under results/: letters, digits, '.', '_' and '-', not starting with '.'."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}", name):
        raise ConfigError(
            f"{where}: sweep: must be a name of letters, digits, '.', '_' and '-' (not starting with '.'), got {name!r}"
        )
    return name


def load(path: str | Path) -> Sweep:
    """Read, inherit, validate and expand the sweep file at ``path``."""
    path = Path(path)
    return from_data(_read_with_base(path, seen=()), path)


def check(path: str | Path) -> None:
    """Everything ``load`` checks that needs no torch (keys, lists, settings, backends), in a moment: bad input is
    told before the device scan and the heavy imports. The workloads' own parameters are ``load``'s."""
    path = Path(path)
    from_data(_read_with_base(path, seen=()), path, resolve=False)


def from_data(data: dict[str, Any], path: Path, resolve: bool = True) -> Sweep:
    """Validate and expand a sweep given as the mapping a sweep file holds (``path`` names it in errors); with
    ``resolve`` false, workload arguments are taken as written (``check``)."""
    where = str(path)
    _check_keys(data, TOP_KEYS, where)
    name = check_name(data.get("sweep", path.stem), where)
    run = run_settings(data.get("measure") or {}, f"{where}: measure")
    top_settings = data.get("settings") or {}
    groups = top_settings if isinstance(top_settings, list) else [top_settings]
    groups = [
        _mapping(g, f"{where}: settings[{i}]" if isinstance(top_settings, list) else f"{where}: settings")
        for i, g in enumerate(groups)
    ]
    entries = data.get("workloads")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where}: workloads: must be a non-empty list of {{name: ..., grid: ..., zip: ...}}")
    # Every entry's keys, lists and settings first, torch-free (a mistake in the last entry is told in a moment), then
    # the workloads themselves, which needs the registry and so torch.
    for resolving in (False, True) if resolve else (False,):
        cells: dict[str, Cell] = {}
        for i, entry in enumerate(entries):
            for group in groups:
                for cell in _expand(entry, group, f"{where}: workloads[{i}]", resolving):
                    cells.setdefault(cell.key, cell)
    return Sweep(name, path, list(cells.values()), run, str(data.get("description", "")))


def single_cell(workload: str, args: dict[str, Any], backend: str, settings: dict[str, Any]) -> Cell:
    """One cell from command-line values (``shufflebench time``), validated like a config entry."""
    entry = {"name": workload, "grid": args, "settings": {"backend": backend, **settings}}
    cells = _expand(entry, {}, "command line")
    return cells[0]


def _read_with_base(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if path.resolve() in seen:
        raise ConfigError(f"{path}: base: inheritance loops back to {path}")
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the sweep file ({e.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{line}: {problem}") from None
    data = _mapping(data, str(path))
    if "base" not in data:
        return data
    base = data["base"]
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base: must be a path relative to this file, got {base!r}")
    merged = _merge(_read_with_base(path.parent / base, (*seen, path.resolve())), data)
    merged.pop("base")
    if "sweep" not in data:  # the name comes from this file, not from its base
        merged.pop("sweep", None)
    return merged


def _merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in child.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def run_settings(data: Any, where: str) -> RunSettings:
    data = dict(_mapping(data, where))
    run_fields = {f.name: f for f in fields(RunSettings) if f.name != "measure"}
    measure_fields = {f.name: f for f in fields(MeasureSettings)}
    _check_keys(data, (*run_fields, *measure_fields), where)
    values = {
        key: _run_value(key, value, (run_fields.get(key) or measure_fields[key]).default, f"{where}.{key}")
        for key, value in data.items()
    }
    run_values = {k: v for k, v in values.items() if k in run_fields}
    measure_values = {k: v for k, v in values.items() if k in measure_fields}
    run = RunSettings(**run_values, measure=MeasureSettings(**measure_values))
    if run.max_processes < run.processes:
        raise ConfigError(
            f"{where}.max_processes: must be at least processes ({run.processes}), got {run.max_processes}"
        )
    return run


# Settings of the run that may be zero; every other number must be positive, and every number finite.
ZERO_ALLOWED = ("seed", "warmup_time", "warmup_calls")


def _run_value(key: str, value: Any, default: Any, where: str) -> Any:
    if value is None and default is None:  # target_ci: null turns it off
        return None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false, got {value!r}")
        return value
    kind = int if isinstance(default, int) else float
    positive = key not in ZERO_ALLOWED
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and not (kind is int and value % 1) and (value > 0 if positive else value >= 0)
    if not ok:
        if kind is int:
            wanted = "a positive integer" if positive else "a non-negative integer"
        else:
            wanted = "a finite number > 0" if positive else "a finite number >= 0"
        raise ConfigError(f"{where}: must be {wanted}, got {value!r}")
    if key == "target_ci" and value >= 1:
        raise ConfigError(f"{where}: must be a fraction of the median below 1 (e.g. 0.01), got {value!r}")
    return kind(value)


def _expand(entry: Any, top_settings: dict[str, Any], where: str, resolve: bool = True) -> list[Cell]:
    """The cells of one sweep entry; with ``resolve`` false, its workload arguments are taken as written (a check of
    everything else that needs no torch)."""
    entry = _mapping(entry, where)
    _check_keys(entry, ENTRY_KEYS, where)
    name = entry.get("name")
    if not isinstance(name, str):
        raise ConfigError(
            f"{where}.name: required: a workload name (see `shufflebench list`), an import path pkg.module:callable "
            "or an .onnx file"
        )
    import_error = None if workloads.is_onnx(name) or not resolve else _blocks_or_none()
    if import_error:
        raise ConfigError(f"{where}: {import_error}")
    grid = {k: _as_list(v, f"{where}.grid.{k}") for k, v in _mapping(entry.get("grid") or {}, f"{where}.grid").items()}
    zipped = _mapping(entry.get("zip") or {}, f"{where}.zip")
    for key, value in zipped.items():
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{where}.zip.{key}: must be a non-empty list (zip pairs values by position)")
    lengths = {key: len(value) for key, value in zipped.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k}: {n}" for k, n in lengths.items())
        raise ConfigError(f"{where}.zip: lists must have the same length ({detail})")
    overlap = set(grid) & set(zipped)
    if overlap or "batch" in grid or "batch" in zipped:
        key = sorted(overlap)[0] if overlap else "batch"
        raise ConfigError(f"{where}: {key!r} is given twice or is a setting; batch belongs under settings")
    settings = {**top_settings, **_mapping(entry.get("settings") or {}, f"{where}.settings")}
    _check_keys(settings, SETTING_KEYS, f"{where}.settings")
    if "backend" not in settings:
        raise ConfigError(f"{where}.settings.backend: required: one or more of {', '.join(backends.NAMES)}")

    zip_rows = [dict(zip(zipped, values)) for values in zip(*zipped.values())] if zipped else [{}]
    cells = []
    for zip_row in zip_rows:
        for grid_values in itertools.product(*grid.values()):
            raw_args = {**zip_row, **dict(zip(grid, grid_values))}
            args, source = _resolve(name, raw_args, where) if resolve else (_precheck(name, raw_args, where), None)
            cells.extend(_cells_for(name, args, source, settings, where))
    return cells


def _precheck(name: str, raw_args: dict[str, Any], where: str) -> dict[str, Any]:
    """A registered workload's arguments checked against the registry's index, without torch (shufflebench.catalog);
    as written where there is no index, or for a model of the user's."""
    from shufflebench import catalog

    catalog.precheck(name, raw_args, where, ConfigError)
    return raw_args


def _resolve(name: str, raw_args: dict[str, Any], where: str) -> tuple[dict[str, Any], str | None]:
    """The workload's arguments, checked and converted, and the content hash of a model of the user's."""
    if workloads.is_onnx(name):
        try:
            return workloads.onnx_args(name, raw_args, where)
        except UserError as e:
            raise ConfigError(str(e)) from None
    from shufflebench import blocks

    try:
        return blocks.resolve(name, **raw_args), blocks.source_digest(name)
    except blocks.WorkloadError as e:
        raise ConfigError(f"{where}: {e}") from None


def _cells_for(name: str, args: dict[str, Any], source: str | None, settings: dict[str, Any], where: str) -> list[Cell]:
    cells = []
    for backend_name in _as_list(settings["backend"], f"{where}.settings.backend"):
        if not isinstance(backend_name, str):
            raise ConfigError(f"{where}.settings.backend: must be backend names, got {backend_name!r}")
        try:
            backend = backends.get(backend_name)
        except UserError as e:
            raise ConfigError(f"{where}.settings.backend: {e}") from None
        if workloads.is_onnx(name) and not backend.needs_onnx:
            raise ConfigError(
                f"{where}: {name} is an ONNX file: it runs on ONNX Runtime backends only (ort-cpu, ort-cuda, "
                f"ort:<Provider>), not {backend_name}"
            )
        declared = backend.settings
        axes = [_as_list(settings.get(s.name, s.default), f"{where}.settings.{s.name}") for s in declared]
        for values in itertools.product(*axes):
            chosen = {
                s.name: _setting(s, v, f"{where}.settings.{s.name}", backend_name) for s, v in zip(declared, values)
            }
            batch = chosen.pop("batch")
            cells.append(Cell(name, args, backend_name, batch, chosen, source))
    return cells


def _setting(setting: backends.Setting, value: Any, where: str, backend: str) -> Any:
    try:
        return setting.check(value)
    except UserError as e:
        raise ConfigError(f"{where}: {e} (for {backend})") from None


def _blocks_or_none() -> str | None:
    try:
        from shufflebench import blocks  # noqa: F401
    except ImportError as e:
        return (
            f"building workloads needs torch ({e}); on a device without torch, run a bundle made by "
            "`shufflebench export` instead"
        )
    return None


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a mapping of key: value, got {type(value).__name__}")
    return value


def _check_keys(data: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r}; allowed: {', '.join(allowed)}")


def _as_list(value: Any, where: str) -> list[Any]:
    """A value or a list of values; an empty list would expand to no cells at all."""
    if value == []:
        raise ConfigError(f"{where}: an empty list expands to no cells; give at least one value")
    return value if isinstance(value, list) else [value]


def kv(values: dict[str, Any]) -> str:
    return ",".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in values.items())
