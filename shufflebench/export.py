"""torch -> ONNX, checked against torch. [torch]

Rules: eval mode, the dynamo exporter (``dynamo=True``) with a pinned opset and static
shapes (every cell has a fixed batch and resolution, so ONNX Runtime can fold shape arithmetic), constants folded but
no fusions (batch norm stays a node: the runtime fuses at the cell's optimisation level); if it fails, the
TorchScript exporter, and the exporter actually used is recorded. Every file is then checked: ``onnx.checker`` with
``full_check``, no custom-domain (ATen fallback) nodes, and ONNX Runtime's output on CPU equal to torch's within a
relative tolerance of 1e-4 of the output's magnitude.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections import Counter
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
import onnxscript.optimizer
import torch
from torch import nn

from shufflebench.backends import ONNX_OPSET

OPSET = ONNX_OPSET
RTOL = 1e-4


class ExportError(RuntimeError):
    """The model could not be exported, or the exported file does not compute what torch computes."""


def export(module: nn.Module, input_shape: tuple[int, ...], path: Path) -> dict[str, Any]:
    """Write ``module`` to ``path`` as ONNX and verify it; returns what to record (exporter, versions, op counts)."""
    module = module.eval()
    x = torch.randn(input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = module(x).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    exporter = _export(module, x, path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    foreign = sorted({n.domain for n in model.graph.node if n.domain not in ("", "ai.onnx")})
    if foreign:
        raise ExportError(f"exported graph has nodes outside the ONNX domain: {', '.join(foreign)}")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    error = float(np.max(np.abs(got - expected)))
    scale = float(np.max(np.abs(expected)))
    if error > RTOL * scale:
        raise ExportError(f"ONNX Runtime output differs from torch by {error:.3g} (output magnitude {scale:.3g})")
    return {
        "exporter": exporter,
        "opset": OPSET,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxscript": version("onnxscript"),
        "max_abs_diff": error,
        "op_types": dict(Counter(n.op_type for n in model.graph.node)),
    }


def _export(module: nn.Module, x: torch.Tensor, path: Path) -> str:
    # The dynamo exporter prints progress lines and warns about torchvision ops we never use; keep both quiet.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)  # deprecations inside torch's exporter
            # The model as it is defined: constants folded, but no graph rewrites (the exporter's optimizer would fold
            # batch norm into the convolutions). Fusions are the runtime's job, at the cell's opt_level, and
            # shufflebench.onnx_cost counts what the runtime made of the graph (mac_runtime).
            program = torch.onnx.export(module, (x,), dynamo=True, opset_version=OPSET, optimize=False)
            onnxscript.optimizer.fold_constants(program.model)
            onnxscript.optimizer.remove_unused_nodes(program.model)
            model = program.model_proto
            _drop_zero_biases(model)
            onnx.save(model, str(path))
        return "dynamo"
    except Exception as dynamo_error:  # noqa: BLE001 - any failure of the new exporter falls back to the old one
        try:
            torch.onnx.export(module, (x,), str(path), dynamo=False, opset_version=OPSET)
        except Exception as e:
            raise ExportError(f"export failed with both exporters: dynamo: {dynamo_error}; torchscript: {e}") from e
        return f"torchscript (dynamo failed: {type(dynamo_error).__name__})"


def _drop_zero_biases(model: onnx.ModelProto) -> None:
    """Remove the all-zero bias the exporter gives a convolution that has none, so the graph is the model's."""
    initializers = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Conv" and len(node.input) == 3 and node.input[2] in initializers:
            if not onnx.numpy_helper.to_array(initializers[node.input[2]]).any():
                del node.input[2]
    used = {name for node in model.graph.node for name in node.input}
    unused = [i for i in model.graph.initializer if i.name not in used]
    for initializer in unused:
        model.graph.initializer.remove(initializer)
