"""Write the two ONNX graphs the ONNX Runtime probe times (shufflebench/probes/), so a board without torch or onnx can
run them: a square fp32 MatMul and a scale-by-one of a long fp32 vector (read once, written once). Their sizes are
symbolic: the probe chooses them. tests/test_probe.py checks the committed files are what this script writes.

Usage: python scripts/make_probe_models.py [FOLDER]   (default shufflebench/probes)
"""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
from onnx import TensorProto, helper

OPSET = 18


def matmul() -> onnx.ModelProto:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", "n"])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["n", "n"])
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT, ["n", "n"])
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "probe_matmul", [a, b], [c])
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


MODELS = {"matmul.onnx": matmul, "scale.onnx": scale}

if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "shufflebench" / "probes")
    folder.mkdir(parents=True, exist_ok=True)
    for name, make in MODELS.items():
        (folder / name).write_bytes(make().SerializeToString())
        print(folder / name)
