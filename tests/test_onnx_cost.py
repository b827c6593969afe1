"""The cost of an ONNX graph against the cost of the torch module it was exported from, and of the graph ONNX
Runtime really runs."""

from __future__ import annotations

import platform

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from shufflebench import blocks
from shufflebench import cost, onnx_cost
from shufflebench.backends import ORT_GPU_DEVICES  # noqa: F401  (the ORT backend's import path stays torch-free)
from shufflebench.export import export
from tests.conftest import example_params

# Where the exported graph is not the torch op graph, MAC differs by this much (ONNX over torch), for these reasons:
MAC_DIFFERENCES = {
    "efficientnet": (0.30, 0.40, "SiLU exports as Sigmoid and Mul: two element-wise ops where torch runs one"),
    "shufflenet_v2": (0.05, 0.10, "torch's chunk is a view, ONNX's Split copies both halves"),
    "densenet121": (-0.01, 0.0, "torch.cat of a single tensor copies it; the exporter drops that Concat"),
    "op_concat": (0.999, 1.001, "the halves are views in torch; ONNX's Split copies them: twice the MAC"),
}


@pytest.mark.parametrize("name", blocks.list_workloads())
def test_the_graph_costs_what_the_module_costs(name, tmp_path):
    w = blocks.build(name, **example_params(name))
    export(w.module, w.input_shape, tmp_path / "m.onnx")
    torch_cost, graph_cost = cost.count(w.module, w.input_shape), onnx_cost.count(tmp_path / "m.onnx")
    assert graph_cost.flops == torch_cost.flops and graph_cost.params == torch_cost.params
    low, high, _ = next((v for k, v in MAC_DIFFERENCES.items() if name.startswith(k)), (-0.001, 0.001, ""))
    assert low <= graph_cost.mac / torch_cost.mac - 1 <= high
    assert graph_cost.unknown_shapes == 0


def test_flops_are_half_of_flop_counter_mode_for_every_conv_kind(tmp_path):
    module = torch.nn.Sequential(
        torch.nn.Conv2d(8, 16, 3, padding=1),
        torch.nn.Conv2d(16, 16, 3, groups=16, padding=1),
        torch.nn.ConvTranspose2d(16, 8, 2, stride=2),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 16 * 16, 10),
    ).eval()
    export(module, (2, 8, 8, 8), tmp_path / "m.onnx")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(torch.randn(2, 8, 8, 8))
    assert onnx_cost.count(tmp_path / "m.onnx").flops * 2 == counter.get_total_flops()


def test_a_graph_with_an_open_batch_is_counted_at_the_shape_given(tmp_path):
    module = torch.nn.Conv2d(4, 8, 1).eval()
    torch.onnx.export(
        module,
        (torch.randn(1, 4, 8, 8),),
        str(tmp_path / "d.onnx"),
        dynamo=False,
        dynamic_axes={"x": {0: "n"}},
        input_names=["x"],
    )
    assert onnx_cost.input_shape(onnx_cost.load(tmp_path / "d.onnx")) == ["n", 4, 8, 8]
    assert onnx_cost.count(tmp_path / "d.onnx", (3, 4, 8, 8)).flops == 3 * 8 * 8 * 4 * 8


def _runtime_mac(tmp_path, opt_level: str, **g4) -> int:
    from shufflebench import backends
    from shufflebench.backends import ort_backend

    w = blocks.build("g4", c=64, hw=28, **g4)
    path = tmp_path / f"g4-{g4['relu']}-{g4['shortcut']}.onnx"
    if not path.exists():
        export(w.module, w.input_shape, path)
    settings = backends.get("ort-cpu").defaults(threads=1, opt_level=opt_level)
    runtime = ort_backend.runtime_cost(path, w.input_shape, provider="CPUExecutionProvider", settings=settings)
    assert runtime["unknown_shapes"] == 0, runtime
    return runtime["mac"]


def test_a_fused_relu_costs_nothing_in_the_graph_onnx_runtime_runs(tmp_path):
    # G4 without the shortcut: every ReLU follows a convolution, and at opt_level=all each is fused into it
    relu, plain = ({"relu": r, "shortcut": False} for r in (True, False))
    assert _runtime_mac(tmp_path, "all", **relu) == _runtime_mac(tmp_path, "all", **plain)
    assert _runtime_mac(tmp_path, "disable", **relu) > _runtime_mac(tmp_path, "disable", **plain)
    # with the shortcut, the ReLU after the residual add has no convolution to fuse into: it still costs
    assert _runtime_mac(tmp_path, "all", relu=True, shortcut=True) > _runtime_mac(
        tmp_path, "all", relu=False, shortcut=True
    )


def _cpu_runtime_classes(module: torch.nn.Module, shape: tuple[int, ...], path) -> dict[str, list[int]]:
    """The predictor's classes of the graph ONNX Runtime's CPU provider runs for ``module`` (opt_level all)."""
    from shufflebench import backends
    from shufflebench.backends import ort_backend

    export(module.eval(), shape, path)
    settings = backends.get("ort-cpu").defaults(threads=1, opt_level="all")
    return ort_backend.runtime_cost(path, shape, provider="CPUExecutionProvider", settings=settings)["classes"]


NCHWC = pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64"), reason="ONNX Runtime's NCHWc layout is x86 only"
)


@NCHWC
def test_depthwise_and_grouped_convolutions_onnx_runtime_cannot_block_are_classes_of_their_own(tmp_path):
    classes = {}
    for c, groups in ((58, 58), (64, 64), (60, 3), (48, 3)):  # 58 and 60 / 3 channels are no multiple of the block
        w = blocks.build("op_conv", c=c, hw=14, k=3 if groups == c else 1, groups=groups, repeat=2)
        classes[c] = _cpu_runtime_classes(w.module, w.input_shape, tmp_path / f"conv{c}.onnx")
    assert classes[58]["depthwise_plain"][0] == 2 and "depthwise" not in classes[58]
    assert classes[64]["depthwise"][0] == 2 and "depthwise_plain" not in classes[64]
    assert classes[60]["grouped_plain"][0] == 2 and "grouped" not in classes[60]
    assert classes[48]["grouped"][0] == 2 and "grouped_plain" not in classes[48]
    # a 3 x 3 group convolution is a class of its own, blocked (8 channels per group) or not (4)
    for c, groups in ((32, 4), (16, 4)):
        w = blocks.build("op_conv", c=c, hw=14, k=3, groups=groups, repeat=2)
        kxk = _cpu_runtime_classes(w.module, w.input_shape, tmp_path / f"kxk{c}.onnx")
        assert kxk["grouped_kxk"][0] == 2 and not {"grouped", "grouped_plain"} & set(kxk)
    # the model itself, as exported, has plain depthwise convolutions only as ONNX Runtime runs them
    assert onnx_cost.count(tmp_path / "conv58.onnx").by_class()["depthwise"][0] == 2


@NCHWC
@pytest.mark.parametrize(
    ("c", "activation", "passes"),
    [
        (64, torch.nn.ReLU, 0),  # the blocked kernel applies ReLU to its accumulators
        (64, torch.nn.ReLU6, 1),  # Clip: a second pass over the output
        (64, torch.nn.Hardsigmoid, 1),
        (58, torch.nn.ReLU, 1),  # the plain kernel's SGEMM is followed by a pass for any activation
        (64, torch.nn.Sigmoid, 1),  # a pass that evaluates an exponential per element: elementwise_exp
    ],
)
def test_an_activation_fused_into_a_convolution_but_applied_after_it_is_an_elementwise_op(
    c, activation, passes, tmp_path
):
    layers = [torch.nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False), torch.nn.BatchNorm2d(c), activation()]
    classes = _cpu_runtime_classes(torch.nn.Sequential(*layers), (1, c, 14, 14), tmp_path / "m.onnx")
    assert sum(ops for name, (ops, _, _) in classes.items() if name.startswith("depthwise")) == 1  # fused: one conv
    output_bytes = c * 14 * 14 * 4
    pass_class = "elementwise_exp" if activation is torch.nn.Sigmoid else "elementwise"
    assert classes.get(pass_class, [0, 0, 0]) == [passes, 0, passes * 2 * output_bytes]  # read and written
    assert len([name for name in classes if name.startswith("elementwise")]) == (1 if passes else 0)


def test_element_wise_ops_that_evaluate_an_exponential_are_a_class_of_their_own(tmp_path):
    """SiLU (which ONNX Runtime fuses into one QuickGelu node) and sigmoid cost per element far more than an add or a
    ReLU of the same bytes: the predictor tells them apart, in ONNX Runtime's graph and in torch's."""
    from shufflebench import cost

    module = torch.nn.Sequential(torch.nn.SiLU(), torch.nn.Sigmoid(), torch.nn.ReLU(), torch.nn.Hardswish())
    shape = (1, 16, 8, 8)
    tensor_bytes = 16 * 8 * 8 * 4
    ort_classes = _cpu_runtime_classes(module, shape, tmp_path / "m.onnx")
    assert ort_classes["elementwise_exp"] == [2, 0, 2 * 2 * tensor_bytes]  # QuickGelu and Sigmoid
    torch_classes = cost.count(module, shape).by_class()
    assert torch_classes["elementwise_exp"] == [2, 0, 2 * 2 * tensor_bytes]  # silu and sigmoid
    assert torch_classes["elementwise"][0] == 2  # relu and hardswish
