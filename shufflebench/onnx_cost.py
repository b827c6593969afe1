"""Params, FLOPs and MAC of an ONNX graph, with shufflebench.cost's conventions, without torch.

It counts any ``.onnx`` file after shape inference, and the graph ONNX Runtime really runs: the optimised model a
session writes (``optimized_model_filepath``), where batch norm is folded into the convolutions, activations are fused
into them and the layout may be blocked (NCHWc), with shapes from the value_info ONNX Runtime records.

Conventions, as in shufflebench/cost.py:

- FLOPs are multiply-adds of convolutions and matrix products, bias excluded.
- MAC of a node = elements of its inputs (initializers, the weights, included) + elements of its outputs; views
  (Reshape, Flatten, Squeeze, Unsqueeze, Identity, Shape, Constant) cost 0. Ops whose extra outputs are bookkeeping
  (MaxPool indices, Dropout masks, BatchNormalization statistics) count their first output only.
- ``params`` = elements of the floating-point initializers, batch norm's running statistics excepted (torch counts
  them as buffers, not parameters).

Where the ONNX graph and the torch ops differ, so does MAC (tests/test_onnx_cost.py states the tolerance): torch's
``split``/``chunk`` are views and ONNX's Split copies; SiLU exports as Sigmoid and Mul; ReLU6 exports as Clip with two
scalar bounds. FLOPs agree exactly.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shufflebench.categories import COST_TOTALS, NCHWC_DOMAIN, aggregate_classes, onnx_kind, op_class

FLOAT_TYPES = {1: 4, 10: 2, 11: 8, 16: 2}  # TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16 -> itemsize
FIRST_OUTPUT_ONLY = {"MaxPool", "Dropout", "BatchNormalization"}
# The activations ONNX Runtime's blocked (NCHWc) convolution kernels apply to their accumulators. Any other activation
# fused into a blocked convolution (Clip for ReLU6, HardSigmoid, Sigmoid, ...), and every activation fused into a
# plain one (FusedConv, whose im2col and SGEMM are followed by MlasActivation), is MLAS applying it in a second pass
# over the output the kernel wrote, so the predictor's graph of a CPU session counts it as an element-wise op on that
# output (read and written) beside the convolution, of class elementwise_exp for a Sigmoid or a Tanh.
BLOCKED_ACTIVATIONS = ("Relu",)


@dataclass(frozen=True)
class NodeCost:
    name: str
    op: str  # op type
    op_class: str  # shufflebench.categories.op_class
    flops: int
    mac_bytes: int


@dataclass
class OnnxCost:
    params: int = 0
    flops: int = 0
    mac: int = 0
    mac_bytes: int = 0
    elementwise_ops: int = 0
    ops: Counter = field(default_factory=Counter)  # op type -> node count
    nodes: list[NodeCost] = field(default_factory=list)
    unknown_shapes: int = 0  # node inputs or outputs whose shape inference could not tell (counted as 0)

    def by_class(self) -> dict[str, list[int]]:
        """[node count, FLOPs, MAC bytes] per predictor class (shufflebench.categories.op_class)."""
        return aggregate_classes((n.op_class, n.flops, n.mac_bytes) for n in self.nodes)

    def totals(self) -> dict[str, int]:
        """The cost columns of a results row."""
        return {name: getattr(self, name) for name in COST_TOTALS}


def load(source: str | Path | Any) -> Any:
    """An onnx ModelProto from a path or a ModelProto."""
    import onnx

    return source if isinstance(source, onnx.ModelProto) else onnx.load(str(source), load_external_data=False)


def input_shape(model: Any) -> list[int | str]:
    """The first graph input's shape, dimensions as numbers or, when symbolic, their names."""
    dims = _graph_inputs(model)[0].type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]


def count(
    source: str | Path | Any,
    shape: tuple[int, ...] | None = None,
    known: dict[str, list[int]] | None = None,
    runtime: bool = False,
) -> OnnxCost:
    """The cost of one run of the graph; ``shape`` fixes the first input's shape where the graph leaves it open, and
    ``known`` gives shapes that shape inference cannot (a runtime's contrib ops: see :func:`run_shapes`). ``runtime``:
    the graph is one ONNX Runtime optimised for the CPU, whose depthwise and grouped convolutions outside the NCHWc
    domain run its plain kernels (classes ``depthwise_plain`` and ``grouped_plain``) and whose fused activations may
    take a pass of their own (see BLOCKED_ACTIVATIONS)."""
    import onnx

    model = load(source)
    if shape is not None:
        model = _with_input_shape(model, shape)
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - a runtime-optimised graph with contrib ops: keep the shapes it carries
        pass
    shapes, itemsizes = _shapes(model)
    shapes.update(known or {})
    weights = {i.name for i in model.graph.initializer} | {
        o for n in model.graph.node if n.op_type == "Constant" for o in n.output
    }
    cost = OnnxCost()
    statistics = {n for node in model.graph.node if node.op_type == "BatchNormalization" for n in node.input[3:5]}
    cost.params = sum(
        math.prod(i.dims)
        for i in model.graph.initializer
        if i.data_type in FLOAT_TYPES and len(i.dims) > 0 and i.name not in statistics
    )
    for node in model.graph.node:
        cost.ops[node.op_type] += 1
        kind = onnx_kind(node.op_type)
        if kind == "view":
            cost.nodes.append(NodeCost(node.name, node.op_type, "view", 0, 0))
            continue
        outputs = node.output[:1] if node.op_type in FIRST_OUTPUT_ONLY else node.output
        names = [n for n in [*node.input, *outputs] if n]
        sizes = [_elements(shapes.get(n)) for n in names]
        cost.unknown_shapes += sum(size is None for size in sizes)
        node_bytes = sum((size or 0) * itemsizes.get(n, 4) for n, size in zip(names, sizes))
        cost.mac += sum(size or 0 for size in sizes)
        cost.mac_bytes += node_bytes
        out_elements = _elements(shapes.get(node.output[0])) or 0
        if kind == "elementwise":
            cost.elementwise_ops += out_elements
        node_flops = _flops(node, kind, shapes, out_elements, weights)
        cost.flops += node_flops
        name = _class(node, kind, shapes, runtime)
        cost.nodes.append(NodeCost(node.name, node.op_type, name, node_flops, node_bytes))
        activation = _string_attr(node, "activation")
        if runtime and kind == "conv" and activation and (activation not in BLOCKED_ACTIVATIONS or not _blocked(node)):
            out_bytes = out_elements * itemsizes.get(node.output[0], 4)
            pass_class = op_class("elementwise", op=activation)
            cost.nodes.append(NodeCost(f"{node.name}/{activation}", activation, pass_class, 0, 2 * out_bytes))
    return cost


def run_shapes(source: str | Path, input_shape: tuple[int, ...]) -> dict[str, list[int]]:
    """The shape of every value in a graph, by running it once on zeros with ONNX Runtime's CPU provider.

    ONNX Runtime's optimised graphs use contrib ops (NCHWc convolutions and reorders, fused convolutions) that ONNX's
    shape inference does not know, and do not record every shape; running the graph tells them all.
    """
    import numpy as np
    import onnx
    import onnxruntime as ort

    model = load(source)
    outputs = {o.name for o in model.graph.output}
    for node in model.graph.node:
        for name in node.output:
            if name and name not in outputs:
                model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
                outputs.add(name)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0]
    dtype = np.float16 if first.type == "tensor(float16)" else np.float32
    values = session.run(None, {first.name: np.zeros(input_shape, dtype=dtype)})
    return {o.name: list(v.shape) for o, v in zip(session.get_outputs(), values) if hasattr(v, "shape")}


def _flops(node: Any, kind: str, shapes: dict[str, list[int]], out_elements: int, weights: set[str]) -> int:
    if kind == "conv" and len(node.input) > 1 and shapes.get(node.input[1]):
        w = shapes[node.input[1]]  # [C_out, C_in / groups, k...]; ConvTranspose: [C_in, C_out / groups, k...]
        per_element = w[1] * math.prod(w[2:])
        if node.op_type == "ConvTranspose":  # scatters each input element, as shufflebench.cost counts it
            return (_elements(shapes.get(node.input[0])) or 0) * per_element
        return out_elements * per_element
    if kind == "matmul" and shapes.get(node.input[0]):
        a = shapes[node.input[0]]
        trans_a = node.op_type == "Gemm" and _attr(node, "transA", 0)
        inner = a[0] if trans_a else a[-1]
        return out_elements * inner
    return 0


def _class(node: Any, kind: str, shapes: dict[str, list[int]], runtime: bool) -> str:
    if kind != "conv" or len(node.input) < 2 or not shapes.get(node.input[1]):
        return op_class(kind, op=node.op_type)
    w, x = shapes[node.input[1]], shapes.get(node.input[0]) or [0, 0]
    name = op_class("conv", math.prod(w[2:]), _attr(node, "group", 1), x[1])
    return f"{name}_plain" if runtime and name in ("depthwise", "grouped") and not _blocked(node) else name


def _blocked(node: Any) -> bool:  # a convolution ONNX Runtime runs in its blocked NCHWc layout
    return node.domain == NCHWC_DOMAIN


def _attr(node: Any, name: str, default: int) -> int:  # an integer attribute of a node
    return next((a.i for a in node.attribute if a.name == name), default)


def _string_attr(node: Any, name: str) -> str:  # a string attribute of a node, "" where it has none
    return next((a.s.decode() for a in node.attribute if a.name == name), "")


def _shapes(model: Any) -> tuple[dict[str, list[int]], dict[str, int]]:
    """Every known static shape by value name, and the itemsize of each value."""
    shapes: dict[str, list[int]] = {}
    itemsizes: dict[str, int] = {}
    for value in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        if tensor.HasField("shape") and all(d is not None for d in dims):
            shapes[value.name] = dims
        itemsizes[value.name] = FLOAT_TYPES.get(tensor.elem_type, 8 if tensor.elem_type == 7 else 4)
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
        itemsizes[init.name] = FLOAT_TYPES.get(init.data_type, 8 if init.data_type == 7 else 4)
    return shapes, itemsizes


def _elements(shape: list[int] | None) -> int | None:
    return None if shape is None else math.prod(shape)


def _graph_inputs(model: Any) -> list[Any]:
    initializers = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def _with_input_shape(model: Any, shape: tuple[int, ...]) -> Any:
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())
    dims = _graph_inputs(model)[0].type.tensor_type.shape.dim
    if len(dims) != len(shape):
        raise ValueError(f"the model's input has {len(dims)} dimensions, the shape given has {len(shape)}")
    for dim, value in zip(dims, shape):
        dim.Clear()
        dim.dim_value = value
    return model
