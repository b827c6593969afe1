"""The registered workloads' names and parameters, readable without torch.

The registry (shufflebench.blocks) needs torch to load, which takes seconds; a wrong name or value should be told in a
moment. So when the registry loads it writes an index of its workloads and their parameters to the user's cache,
keyed by a hash of the blocks' source files, and the commands check a registered workload against it before they
import torch (``precheck``). The checks themselves (``check``, ``convert``) are the registry's own, so both paths
answer the same. Without a current index (a first run, a changed block) the registry checks, as before.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import inspect
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shufflebench.errors import UserError
from shufflebench.workloads import INPUT_SHAPE, is_import_path, is_onnx, parse_shape

BLOCKS = Path(__file__).resolve().parent / "blocks"
TYPES = {t.__name__: t for t in (int, float, bool, str)}


class WorkloadError(ValueError):
    """A workload name or parameter that cannot be built; the message is one line meant for the user."""


@dataclass(frozen=True)
class Param:
    """One builder parameter as the user sees it."""

    name: str
    type: type | None  # None: any value (an import path's parameter without a usable annotation)
    default: Any  # inspect.Parameter.empty when required
    choices: tuple[Any, ...] | None = None

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    def describe(self) -> str:
        kind = "|".join(str(c) for c in self.choices) if self.choices else getattr(self.type, "__name__", "any")
        return f"{self.name}: {kind}" if self.required else f"{self.name}: {kind} = {self.default}"


def cache_folder() -> Path:
    """The user's cache: ``SHUFFLEBENCH_CACHE``, or ``$XDG_CACHE_HOME/shufflebench`` (``~/.cache/shufflebench``)."""
    if os.environ.get("SHUFFLEBENCH_CACHE"):
        return Path(os.environ["SHUFFLEBENCH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "shufflebench"


def signature(spec: dict[str, Param]) -> str:
    return ", ".join(p.describe() for p in spec.values())


def convert(workload: str, p: Param, value: Any) -> Any:
    """Convert one user value to the parameter's type and check its range and choices."""
    import yaml

    where = f"{workload}: parameter {p.name!r}"
    if p.name == INPUT_SHAPE and is_import_path(workload):
        try:
            return parse_shape(value, where)
        except Exception as e:  # noqa: BLE001 - the UserError of parse_shape: the same message as a WorkloadError
            raise WorkloadError(str(e)) from None
    if p.type is None:  # untyped: a string from the command line is read as YAML reads it (8, true, 0.5, name)
        return yaml.safe_load(value) if isinstance(value, str) else value
    if p.type is bool:
        words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        if isinstance(value, str) and value.lower() in words:
            value = words[value.lower()]
        if not isinstance(value, bool):
            raise WorkloadError(f"{where} must be true or false, got {value!r}")
        return value
    if p.type in (int, float):
        kind, allowed = ("an integer", (int,)) if p.type is int else ("a number", (int, float))
        if isinstance(value, str):
            try:
                value = p.type(value)
            except ValueError:
                raise WorkloadError(f"{where} must be {kind}, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, allowed):
            raise WorkloadError(f"{where} must be {kind}, got {value!r}")
        if value <= 0:
            raise WorkloadError(f"{where} must be positive, got {value!r}")
    elif not isinstance(value, str):
        raise WorkloadError(f"{where} must be a string, got {value!r}")
    if p.choices is not None and value not in p.choices:
        allowed = ", ".join(str(c) for c in p.choices)
        raise WorkloadError(f"{where} must be one of {allowed}, got {value!r}")
    return value


def unknown_workload(name: str, names: list[str]) -> WorkloadError:
    import difflib

    names = sorted(names)
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.4)
    rest = [n for n in names if n not in close]
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return WorkloadError(f"unknown workload {name!r}; {hint}registered workloads: {', '.join(close + rest)}")


def check(name: str, spec: dict[str, Param], kwargs: dict[str, Any]) -> dict[str, Any]:
    """A registered workload's parameters, converted, defaults filled in; WorkloadError for an unknown or missing
    one or a bad value. Rules across parameters are the builder's."""
    unknown = sorted(set(kwargs) - set(spec))
    if unknown:
        raise WorkloadError(f"{name}: unknown parameter {unknown[0]!r}; parameters are: {signature(spec)}")
    values = {}
    for p in spec.values():
        if p.name in kwargs:
            values[p.name] = convert(name, p, kwargs[p.name])
        elif p.required:
            raise WorkloadError(f"{name}: missing parameter {p.name!r}; parameters are: {signature(spec)}")
        else:
            values[p.name] = p.default
    return values


@functools.cache
def _digest() -> str:
    h = hashlib.sha256()
    for path in sorted(BLOCKS.rglob("*.py")) + [Path(__file__)]:
        h.update(str(path.relative_to(BLOCKS.parent)).encode() + path.read_bytes())
    return h.hexdigest()[:16]


def _index_path() -> Path:
    return cache_folder() / f"workloads-{_digest()}.json"


def write_index(specs: dict[str, list[Param]]) -> None:
    """Write the index of the registered workloads, unless a current one is there (the registry calls this)."""
    path = _index_path()
    if path.exists():
        return
    data = {
        name: [[p.name, p.type.__name__, None if p.required else p.default, p.choices] for p in params]
        for name, params in specs.items()
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_text(json.dumps(data))
        partial.replace(path)
    except OSError:  # a read-only home: the registry checks instead
        pass


def index() -> dict[str, dict[str, Param]] | None:
    """The registered workloads and their parameters, or None without a current index."""
    try:
        data = json.loads(_index_path().read_text())
    except (OSError, ValueError):
        return None
    empty = inspect.Parameter.empty
    return {
        name: {p: Param(p, TYPES[t], empty if d is None else d, tuple(c) if c else None) for p, t, d, c in params}
        for name, params in data.items()
    }


def names(pattern: str = "*") -> list[str] | None:
    """Registered names matching ``pattern``, from the index; None without one."""
    known = index()
    return None if known is None else sorted(n for n in known if fnmatch.fnmatchcase(n, pattern))


def precheck(name: str, params: dict[str, Any], where: str = "", error: type[UserError] = UserError) -> None:
    """Tell a wrong registered name or value now, from the index, as ``error`` (prefixed with ``where``); nothing to
    say for an import path, an ONNX file, or without an index."""
    if is_import_path(name) or is_onnx(name):
        return
    known = index()
    if known is None:
        return
    try:
        if name not in known:
            raise unknown_workload(name, list(known))
        check(name, known[name], params)
    except WorkloadError as e:
        raise error(f"{where}: {e}" if where else str(e)) from None
