"""The three ways to name a workload, and ONNX files as workloads (torch-free).

- a registered name: ``g1``, ``shufflenet_v2`` (blocks.registry);
- an import path ``package.module:callable`` or ``path/to/file.py:callable``: a function that returns an ``nn.Module``,
  or a module and the shape of one input sample; its keyword parameters come from ``key=value`` or the sweep file
  (blocks.registry converts them by the callable's annotations);
- a path to an ``.onnx`` file: run by ONNX Runtime backends only, its input shape read from the graph, or given as
  ``input_shape`` where the graph leaves dimensions open.

``input_shape`` is the shape of one sample, without the batch (``3x224x224``); the batch is the cell's setting. A cell
records a content hash of the ONNX file or of the callable's source file (``Cell.source``), so a model that changed is
never resumed as the old one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from shufflebench.errors import UserError

INPUT_SHAPE = "input_shape"


def is_onnx(name: str) -> bool:
    return name.endswith(".onnx")


def is_import_path(name: str) -> bool:
    return ":" in name and not is_onnx(name)


def parse_shape(value: Any, where: str) -> str:
    """``"3x224x224"``, ``"3,224,224"`` or ``[3, 224, 224]`` as the canonical ``"3x224x224"``."""
    items = value if isinstance(value, (list, tuple)) else str(value).replace(",", "x").split("x")
    try:
        dims = [int(d) for d in items]
    except (TypeError, ValueError):
        dims = []
    if not dims or any(d < 1 for d in dims):
        raise UserError(f"{where}: input_shape must be positive integers like 3x224x224 (no batch), got {value!r}")
    return "x".join(map(str, dims))


def shape_tuple(shape: str) -> tuple[int, ...]:
    return tuple(int(d) for d in shape.split("x"))


def digest(path: Path) -> str:
    """The first 12 hex digits of a file's SHA-256."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def onnx_args(name: str, args: dict[str, Any], where: str) -> tuple[dict[str, Any], str]:
    """Check an ONNX workload and its arguments (``input_shape`` only); returns the canonical arguments and the
    file's hash. Raises UserError naming the file and what is wrong."""
    unknown = sorted(set(args) - {INPUT_SHAPE})
    if unknown:
        raise UserError(f"{where}: {name}: an ONNX file takes no parameter {unknown[0]!r}, only input_shape")
    path = Path(name)
    if not path.is_file():
        raise UserError(f"{where}: {name}: no such ONNX file")
    dims = model_input(path, where)
    canonical = {INPUT_SHAPE: parse_shape(args[INPUT_SHAPE], where)} if INPUT_SHAPE in args else {}
    open_dims = [i for i, d in enumerate(dims[1:], start=1) if not isinstance(d, int)]
    if open_dims and not canonical:
        shown = "x".join(str(d) for d in dims[1:])
        raise UserError(
            f"{where}: {name}: its input has dynamic dimensions ({shown} after the batch); give input_shape, e.g. "
            "input_shape=3x224x224"
        )
    if canonical and len(shape_tuple(canonical[INPUT_SHAPE])) != len(dims) - 1:
        raise UserError(
            f"{where}: {name}: input_shape {canonical[INPUT_SHAPE]} has {len(shape_tuple(canonical[INPUT_SHAPE]))} "
            f"dimensions, the model's input has {len(dims) - 1} after the batch"
        )
    return canonical, digest(path)


def model_input(path: Path, where: str) -> list[int | str]:
    """The first input's dimensions of the model at ``path``; raises UserError when it is not an ONNX model."""
    from shufflebench import onnx_cost

    try:
        return onnx_cost.input_shape(onnx_cost.load(path))
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends: not a model
        raise UserError(f"{where}: {path}: not an ONNX model ({type(e).__name__})") from None


def onnx_input_shape(path: Path, args: dict[str, Any], batch: int) -> tuple[int, ...]:
    """The full input shape a cell runs the model at: the cell's batch, then the model's or the given dimensions."""
    dims = model_input(path, str(path))
    if isinstance(dims[0], int) and dims[0] != batch:
        raise UserError(
            f"{path}: the model's batch is fixed at {dims[0]}; use batch {dims[0]} or export it with a dynamic batch"
        )
    sample = shape_tuple(args[INPUT_SHAPE]) if INPUT_SHAPE in args else tuple(dims[1:])
    return (batch, *sample)
