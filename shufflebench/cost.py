"""Params, FLOPs and memory access cost (MAC) of a torch module, per op, per layer and in total. [torch]

Counting happens at the ATen operator level with a ``TorchDispatchMode`` (as ``torch.utils.flop_counter`` does), on a
real forward pass of an example input, so functional code is seen too: the residual ``+``, ``torch.cat``,
``chunk``/``split``, the copy inside a channel shuffle, pooling, batch norm and activations.

Conventions (the papers' and ShuffleNet V2's):

- FLOPs are multiply-adds of convolution, linear and matmul ops, bias excluded. This is what the ShuffleNet, MobileNet,
  ResNet and EfficientNet papers call FLOPs; ``torch.utils.flop_counter.FlopCounterMode`` reports twice this number
  and thop calls it MACs.
- MAC (memory access cost, ShuffleNet V2 Sec. 2) of an op = elements of its tensor inputs (weights included) + elements
  of its output. Summed over ops this gives the paper's hw*(c1 + c2) + c1*c2 for a 1x1 conv. An in-place op counts
  its operand as read and written. Pure views (``view``, ``transpose``, ``split``, ``chunk``, ...) move no data and
  cost 0: the op that consumes the view pays for reading it. Allocations cost 0. An op with several named results
  counts the first one only (the others are bookkeeping: pooling indices, saved batch-norm statistics); an op that
  returns a list of tensors counts them all.
- ``mac_bytes`` = MAC x itemsize, summed tensor by tensor.
- ``elementwise_ops`` = output elements of element-wise ops (activations, adds, multiplies, batch norm). They add no
  FLOPs but cost time and MAC: this column is where ShuffleNet V2's G4 shows up.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from shufflebench.categories import COST_TOTALS, KINDS, aggregate_classes, aten_kind, op_class

CATEGORIES = KINDS  # the op kinds of shufflebench.categories


@dataclass(frozen=True)
class OpCost:
    """The cost of one ATen op call."""

    module: str  # path of the innermost module that ran it ("" for the root)
    op: str  # ATen overload packet name, e.g. "convolution", "add", "cat"
    category: str  # one of CATEGORIES
    flops: int  # multiply-adds
    mac: int  # elements read + written
    mac_bytes: int
    elementwise_ops: int
    op_class: str = ""  # shufflebench.categories.op_class: the kind, convolutions told apart (the predictor's classes)


class _Total:
    """A read-only attribute of Cost: the sum of the OpCost field of the same name over all ops."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, cost: Cost, owner: type | None = None) -> int:
        return sum(getattr(o, self.name) for o in cost.ops)


@dataclass
class Cost:
    """Cost of one forward pass: totals, and the op list they are summed from."""

    params: int
    ops: list[OpCost] = field(default_factory=list)
    layer_params: dict[str, int] = field(default_factory=dict)  # module path -> parameters owned directly
    layer_types: dict[str, str] = field(default_factory=dict)  # module path -> class name

    flops = _Total()
    mac = _Total()
    mac_bytes = _Total()
    elementwise_ops = _Total()

    def totals(self) -> dict[str, int]:
        """The cost columns of a results row."""
        return {name: getattr(self, name) for name in COST_TOTALS}

    def by_class(self) -> dict[str, list[int]]:
        """[op count, FLOPs, MAC bytes] per predictor class (shufflebench.categories.op_class): what
        shufflebench.predict reads."""
        return aggregate_classes((o.op_class, o.flops, o.mac_bytes) for o in self.ops)

    def by_category(self) -> dict[str, dict[str, int]]:
        """Op count, FLOPs and MAC per category."""
        out: dict[str, dict[str, int]] = {}
        for o in self.ops:
            row = out.setdefault(o.category, {"ops": 0, "flops": 0, "mac": 0})
            row["ops"] += 1
            row["flops"] += o.flops
            row["mac"] += o.mac
        return out

    def by_layer(self) -> list[dict[str, Any]]:
        """One row per module that ran ops or owns parameters, in execution order."""
        rows: dict[str, dict[str, Any]] = {}
        for o in self.ops:
            row = rows.setdefault(o.module, _layer_row(o.module, self))
            row["ops"][o.op] += 1
            for key in ("flops", "mac", "mac_bytes", "elementwise_ops"):
                row[key] += getattr(o, key)
        for path, n in self.layer_params.items():
            if n and path not in rows:
                rows[path] = _layer_row(path, self)
        # {"add": 2, "relu_": 1} -> "add x2 relu_": keeps per-layer tables readable
        for row in rows.values():
            row["ops"] = " ".join(op if n == 1 else f"{op} x{n}" for op, n in row["ops"].items())
        return list(rows.values())


def _layer_row(path: str, cost: Cost) -> dict[str, Any]:
    return {
        "layer": path or "(root)",
        "type": cost.layer_types.get(path, ""),
        "params": cost.layer_params.get(path, 0),
        "flops": 0,
        "mac": 0,
        "mac_bytes": 0,
        "elementwise_ops": 0,
        "ops": defaultdict(int),
    }


def count(
    module: nn.Module,
    input_shape: tuple[int, ...],
    dtype: torch.dtype = torch.float32,
    inputs: tuple[torch.Tensor, ...] | None = None,
) -> Cost:
    """Count params, FLOPs and MAC of ``module`` on one forward pass of a random input of ``input_shape``, or of the
    example ``inputs`` given (a module that takes several)."""
    cost = Cost(params=sum(p.numel() for p in module.parameters()))
    stack: list[str] = []  # module paths, innermost last

    def leave(*_: Any) -> None:
        stack.pop()  # a forward hook must return None, or its value replaces the module's output

    handles = []
    for path, sub in module.named_modules():
        cost.layer_params[path] = sum(p.numel() for p in sub.parameters(recurse=False))
        cost.layer_types[path] = type(sub).__name__
        handles.append(sub.register_forward_pre_hook(lambda *_, path=path: stack.append(path)))
        handles.append(sub.register_forward_hook(leave))
    if inputs is None:
        inputs = (torch.randn(input_shape, generator=torch.Generator().manual_seed(0)).to(dtype),)
    try:
        # no_grad, not inference_mode: under inference_mode the dispatch mode sees composite ops (conv2d, linear,
        # contiguous) before they decompose into the kernels that actually run.
        with torch.no_grad(), _OpCounter(cost.ops, stack):
            module(*inputs)
    finally:
        for h in handles:
            h.remove()
    return cost


class _OpCounter(TorchDispatchMode):
    def __init__(self, ops: list[OpCost], stack: list[str]) -> None:
        super().__init__()
        self.ops = ops
        self.stack = stack

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 (torch's signature)
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.ops.append(op_cost(func, args, kwargs, out, self.stack[-1] if self.stack else ""))
        return out


def op_cost(func: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any, module: str) -> OpCost:
    """Cost of one dispatched op call (see the module docstring for the conventions)."""
    name = func.overloadpacket.__name__
    inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
    if isinstance(out, torch.Tensor):
        outputs = [out]
    elif isinstance(out, tuple):
        outputs = [out[0]] if out and isinstance(out[0], torch.Tensor) else []
    else:
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
    category = _category(func, name, inputs)
    if category in ("view", "alloc"):
        return OpCost(module, name, category, 0, 0, 0, 0, category)
    tensors = inputs + outputs
    out_elems = sum(t.numel() for t in outputs)
    return OpCost(
        module=module,
        op=name,
        category=category,
        flops=_flops(name, args, outputs),
        mac=sum(t.numel() for t in tensors),
        mac_bytes=sum(t.numel() * t.element_size() for t in tensors),
        elementwise_ops=out_elems if category == "elementwise" else 0,
        op_class=_op_class(category, name, args),
    )


def _op_class(category: str, name: str, args: tuple) -> str:
    if name != "convolution":
        return op_class(category, op=name)
    x, w, groups = args[0], args[1], args[8]
    return op_class("conv", math.prod(w.shape[2:]), groups, x.shape[1])


def _category(func: torch._ops.OpOverload, name: str, inputs: list[torch.Tensor]) -> str:
    """The op's kind from the shared table, else from ATen's own tags."""
    kind = aten_kind(name)
    if kind is not None:
        return kind
    if func.is_view:
        return "view"
    if torch.Tag.pointwise in func.tags:
        return "elementwise"
    if not inputs:
        return "alloc"
    return "other"


def _flops(name: str, args: tuple, outputs: list[torch.Tensor]) -> int:
    """Multiply-adds of conv / matmul ops, bias excluded; 0 for everything else."""
    if name == "convolution":
        x, w, transposed = args[0], args[1], args[6]
        # Each output element of a conv is a dot product over (c_in / groups) * kernel elements; a transposed conv
        # scatters each input element the same way, so count over its input instead.
        per_element = w.shape[1] * math.prod(w.shape[2:])
        return (x.numel() if transposed else outputs[0].numel()) * per_element
    if name in ("mm", "addmm", "bmm", "baddbmm"):
        a, b = args[-2], args[-1]
        return math.prod(a.shape) * b.shape[-1]
    return 0
