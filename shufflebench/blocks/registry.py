"""The workload registry: every block and network shufflebench can build, by name.

Builders are plain keyword-only functions registered with ``@register_workload`` (the torchvision / timm pattern).
A builder returns the module and the shape of one input sample ``(C, H, W)``; :func:`build` validates and converts
the parameters and puts the module in eval mode. The batch size is not a workload parameter: it belongs to the cell
that runs the workload (``Workload.input_shape`` is the example input of batch 1). Parameter types come from the
builder's annotations: ``int``, ``float``, ``bool``, ``str`` or ``Literal[...]`` for a fixed set of allowed values.
Every numeric parameter is a count or a multiplier, so it must be positive; rules that involve several parameters
(``g`` divides ``c``) are checked by the builder with :func:`require`.

A name may also be an import path, ``package.module:callable`` or ``path/to/file.py:callable`` (shufflebench.workloads):
the callable returns an ``nn.Module`` or a module and its sample shape; its parameters are converted by its annotations
where it has them and read as YAML reads values where it does not, and ``input_shape`` gives the sample shape where
the callable gives none.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib
import importlib.util
import inspect
import os
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from torch import nn

from shufflebench.catalog import Param, WorkloadError, check, convert, signature, unknown_workload
from shufflebench.catalog import write_index as write_index_file
from shufflebench.workloads import INPUT_SHAPE, is_import_path, shape_tuple

Builder = Callable[..., "tuple[nn.Module, tuple[int, ...]]"]

_BUILDERS: dict[str, Builder] = {}


@dataclass(frozen=True)
class Workload:
    """A built workload: the module in eval mode and the shape of one input sample."""

    name: str
    params: dict[str, Any]  # every builder parameter, defaults filled in
    module: nn.Module
    sample_shape: tuple[int, ...]  # (C, H, W)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The example input: one sample, batch 1."""
        return self.batched(1)

    def batched(self, batch: int) -> tuple[int, ...]:
        return (batch, *self.sample_shape)


def register_workload(builder: Builder) -> Builder:
    """Register ``builder`` under its function name; every parameter must be keyword-only and annotated."""
    name = builder.__name__
    if name in _BUILDERS:
        raise ValueError(f"workload {name!r} is already registered")
    for p in inspect.signature(builder).parameters.values():
        if p.kind is not inspect.Parameter.KEYWORD_ONLY:
            raise TypeError(f"workload {name!r}: parameter {p.name!r} must be keyword-only")
    _BUILDERS[name] = builder
    params(name)  # fail at registration, not at first use, on an unsupported annotation
    return builder


def list_workloads(pattern: str = "*") -> list[str]:
    """Registered workload names matching a shell-style ``pattern``, sorted."""
    return sorted(n for n in _BUILDERS if fnmatch.fnmatchcase(n, pattern))


def params(name: str) -> list[Param]:
    """The parameters of workload ``name``, in signature order."""
    if is_import_path(name):
        return _callable_params(name)
    builder = _builder(name)
    hints = typing.get_type_hints(builder)
    return [_param(name, p, hints[p.name]) for p in inspect.signature(builder).parameters.values()]


def _param(name: str, p: inspect.Parameter, hint: Any, strict: bool = True) -> Param:
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        return Param(p.name, type(choices[0]), p.default, choices)
    if hint in (int, float, bool, str):
        return Param(p.name, hint, p.default)
    if strict:
        raise TypeError(f"workload {name!r}: parameter {p.name!r} has unsupported type {hint!r}")
    return Param(p.name, None, p.default)


@functools.cache
def _callable(name: str) -> Callable[..., Any]:
    """The function an import path names; WorkloadError with the module and the reason when it does not import."""
    module_name, _, attribute = name.rpartition(":")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name).resolve()
            if not path.is_file():
                raise WorkloadError(f"{name}: no such file {module_name}")
            # under its own name, unless that is taken (a file named shufflebench.py must not replace the package)
            as_name = path.stem if path.stem not in sys.modules else f"shufflebench_user_{path.stem}"
            spec = importlib.util.spec_from_file_location(as_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[as_name] = module
            spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:  # as `python -m` does: a module beside the user is found
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except WorkloadError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever the user's module raised while importing
        raise WorkloadError(f"{name}: cannot import {module_name} ({type(e).__name__}: {e})") from None
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise WorkloadError(f"{name}: {module_name} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise WorkloadError(f"{name}: {attribute} is not callable")
    return target


def _callable_params(name: str) -> list[Param]:
    fn = _callable(name)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - annotations that do not evaluate: treat the parameters as untyped
        hints = {}
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    out = [
        _param(name, p, hints.get(p.name), strict=False)
        for p in inspect.signature(fn).parameters.values()
        if p.kind in kinds
    ]
    return [*out, Param(INPUT_SHAPE, str, None)]


def _takes_any_keyword(name: str) -> bool:
    fn = _callable(name)
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())


def source_digest(name: str) -> str | None:
    """A content hash of an import path's source file (None for a registered workload): a changed model is a new
    cell."""
    if not is_import_path(name):
        return None
    from shufflebench.workloads import digest

    try:
        source = inspect.getsourcefile(_callable(name))
    except TypeError:  # a builtin or C extension: no source file
        return None
    return digest(Path(source)) if source else None


def require(condition: bool, message: str) -> None:
    """Raise :class:`WorkloadError` with ``message`` unless ``condition`` holds (for rules across parameters)."""
    if not condition:
        raise WorkloadError(message)


def resolve(name: str, **kwargs: Any) -> dict[str, Any]:
    """Validate and convert the parameters of workload ``name`` without building it.

    Values may be Python values or strings (``"128"``, ``"true"``). A registered workload gets its defaults filled in;
    an import path keeps only the parameters given (its callable's defaults are its own business). Rules across
    parameters are checked by the builder, so only :func:`build` catches those.

    Raises:
        WorkloadError: unknown name (close matches listed first), an import path that does not import, unknown or
            missing parameter, a value of the wrong type, out of range or not among the allowed choices.
    """
    spec = {p.name: p for p in params(name)}
    if not is_import_path(name):
        return check(name, spec, kwargs)
    open_ended = _takes_any_keyword(name)
    unknown = sorted(set(kwargs) - set(spec))
    if unknown and not open_ended:
        raise WorkloadError(f"{name}: unknown parameter {unknown[0]!r}; parameters are: {signature(spec)}")
    values = {p.name: convert(name, p, kwargs[p.name]) for p in spec.values() if p.name in kwargs}
    for key in unknown:  # passed on to the callable's **kwargs
        values[key] = convert(name, Param(key, None, None), kwargs[key])
    return values


def build(name: str, **kwargs: Any) -> Workload:
    """Build workload ``name``; see :func:`resolve` for the parameters and the errors."""
    values = resolve(name, **kwargs)
    if is_import_path(name):
        return _build_callable(name, values)
    try:
        module, sample_shape = _BUILDERS[name](**values)
    except WorkloadError as e:
        raise WorkloadError(f"{name}: {e}") from None
    return Workload(name, values, module.eval(), tuple(sample_shape))


def _build_callable(name: str, values: dict[str, Any]) -> Workload:
    arguments = {k: v for k, v in values.items() if k != INPUT_SHAPE}
    result = _callable(name)(**arguments)
    module, shape = (result, None) if isinstance(result, nn.Module) else (None, None)
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], nn.Module):
        module, shape = result[0], tuple(result[1])
    if module is None:
        raise WorkloadError(
            f"{name} returned {type(result).__name__}; it must return an nn.Module, or a module and its input shape"
        )
    if INPUT_SHAPE in values:
        shape = shape_tuple(values[INPUT_SHAPE])
    if shape is None:
        raise WorkloadError(
            f"{name} returned a module without an input shape; give one sample's shape, e.g. input_shape=3x224x224"
        )
    return Workload(name, values, module.eval(), shape)


def _builder(name: str) -> Builder:
    if name not in _BUILDERS:
        raise unknown_workload(name, list(_BUILDERS))
    return _BUILDERS[name]


def write_index() -> None:
    """Every registered workload's parameters into the user's cache, for checks without torch (shufflebench.catalog)."""
    write_index_file({name: params(name) for name in _BUILDERS})
