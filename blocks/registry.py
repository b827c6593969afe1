"""The workload registry: every block and network shufflebench can build, by name.

Builders are plain keyword-only functions registered with ``@register_workload`` (the torchvision / timm pattern).
A builder returns the module and the shape of one input sample ``(C, H, W)``; :func:`build` validates and converts
the parameters and puts the module in eval mode. The batch size is not a workload parameter: it belongs to the cell
that runs the workload (``Workload.input_shape`` is the example input of batch 1). Parameter types come from the builder's
annotations: ``int``, ``float``, ``bool``, ``str`` or ``Literal[...]`` for a fixed set of allowed values. Every
numeric parameter is a count or a multiplier, so it must be positive; rules that involve several parameters
(``g`` divides ``c``) are checked by the builder with :func:`require`.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import typing
from dataclasses import dataclass
from typing import Any, Callable, Literal

from torch import nn

Builder = Callable[..., "tuple[nn.Module, tuple[int, ...]]"]

_BUILDERS: dict[str, Builder] = {}


class WorkloadError(ValueError):
    """A workload name or parameter that cannot be built; the message is one line meant for the user."""


@dataclass(frozen=True)
class Param:
    """One builder parameter as the user sees it."""

    name: str
    type: type
    default: Any  # inspect.Parameter.empty when required
    choices: tuple[Any, ...] | None = None

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    def describe(self) -> str:
        kind = "|".join(str(c) for c in self.choices) if self.choices else self.type.__name__
        return f"{self.name}: {kind}" if self.required else f"{self.name}: {kind} = {self.default}"


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
    builder = _builder(name)
    hints = typing.get_type_hints(builder)
    out = []
    for p in inspect.signature(builder).parameters.values():
        hint = hints[p.name]
        if typing.get_origin(hint) is Literal:
            choices = typing.get_args(hint)
            out.append(Param(p.name, type(choices[0]), p.default, choices))
        elif hint in (int, float, bool, str):
            out.append(Param(p.name, hint, p.default))
        else:
            raise TypeError(f"workload {name!r}: parameter {p.name!r} has unsupported type {hint!r}")
    return out


def require(condition: bool, message: str) -> None:
    """Raise :class:`WorkloadError` with ``message`` unless ``condition`` holds (for rules across parameters)."""
    if not condition:
        raise WorkloadError(message)


def resolve(name: str, **kwargs: Any) -> dict[str, Any]:
    """Validate and convert the parameters of workload ``name`` without building it; defaults filled in.

    Values may be Python values or strings (``"128"``, ``"true"``). Rules across parameters are checked by the
    builder, so only :func:`build` catches those.

    Raises:
        WorkloadError: unknown name (close matches listed first), unknown or missing parameter, a value of the wrong
            type, out of range or not among the allowed choices.
    """
    spec = {p.name: p for p in params(name)}
    unknown = sorted(set(kwargs) - set(spec))
    if unknown:
        raise WorkloadError(f"{name}: unknown parameter {unknown[0]!r}; parameters are: {_signature(spec)}")
    values = {}
    for p in spec.values():
        if p.name in kwargs:
            values[p.name] = _convert(name, p, kwargs[p.name])
        elif p.required:
            raise WorkloadError(f"{name}: missing parameter {p.name!r}; parameters are: {_signature(spec)}")
        else:
            values[p.name] = p.default
    return values


def build(name: str, **kwargs: Any) -> Workload:
    """Build workload ``name``; see :func:`resolve` for the parameters and the errors."""
    values = resolve(name, **kwargs)
    try:
        module, sample_shape = _BUILDERS[name](**values)
    except WorkloadError as e:
        raise WorkloadError(f"{name}: {e}") from None
    return Workload(name, values, module.eval(), tuple(sample_shape))


def _builder(name: str) -> Builder:
    if name not in _BUILDERS:
        names = sorted(_BUILDERS)
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.4)
        rest = [n for n in names if n not in close]
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise WorkloadError(f"unknown workload {name!r}; {hint}registered workloads: {', '.join(close + rest)}")
    return _BUILDERS[name]


def _signature(spec: dict[str, Param]) -> str:
    return ", ".join(p.describe() for p in spec.values())


def _convert(workload: str, p: Param, value: Any) -> Any:
    """Convert one user value to the parameter's type and check its range and choices."""
    where = f"{workload}: parameter {p.name!r}"
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
