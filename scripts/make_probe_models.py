"""Write the three ONNX graphs the ONNX Runtime probe times (shufflebench/probes/), so a board without torch or onnx
can run them: a square fp32 MatMul, a chain of 1x1 fp32 convolutions and a scale-by-one of a long fp32 vector (read
once, written once). Their sizes are symbolic: the probe chooses them. The chain's weight is a constant of the input's
channel count (ConstantOfShape), so the file stays small and, once the probe fixes the sizes, ONNX Runtime folds it
into the constant its blocked convolutions need. tests/test_probe.py checks the committed files are what this script
writes.

Usage: python scripts/make_probe_models.py [FOLDER]   (default shufflebench/probes)
"""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from shufflebench.probe import CONV_CHAIN

OPSET = 18


def matmul() -> onnx.ModelProto:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", "n"])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["n", "n"])
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT, ["n", "n"])
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "probe_matmul", [a, b], [c])
    return _model(graph)


def conv1x1() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "c", "hw", "hw"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "c", "hw", "hw"])
    constants = [
        helper.make_tensor("one", TensorProto.INT64, [1], [1]),
        helper.make_tensor("two", TensorProto.INT64, [1], [2]),
        helper.make_tensor("kernel", TensorProto.INT64, [2], [1, 1]),
    ]
    value = helper.make_tensor("value", TensorProto.FLOAT, [1], [0.5])
    weight = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Slice", ["shape", "one", "two"], ["c"]),
        helper.make_node("Concat", ["c", "c", "kernel"], ["weight_shape"], axis=0),
        helper.make_node("ConstantOfShape", ["weight_shape"], ["w"], value=value),
    ]
    names = ["x", *[f"h{i}" for i in range(1, CONV_CHAIN)], "y"]
    chain = [helper.make_node("Conv", [names[i], "w"], [names[i + 1]]) for i in range(CONV_CHAIN)]
    graph = helper.make_graph(weight + chain, "probe_conv1x1", [x], [y], constants)
    return _model(graph)


def scale() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "one"], ["y"])], "probe_scale", [x], [y], [one])
    return _model(graph)


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="shufflebench")
    model.ir_version = 8  # readable by every onnxruntime shufflebench supports (1.18 and newer)
    onnx.checker.check_model(model, full_check=True)
    return model


MODELS = {"matmul.onnx": matmul, "conv1x1.onnx": conv1x1, "scale.onnx": scale}

if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "shufflebench" / "probes")
    folder.mkdir(parents=True, exist_ok=True)
    for name, make in MODELS.items():
        (folder / name).write_bytes(make().SerializeToString())
        print(folder / name)
