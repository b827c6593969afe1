"""The op-category map, the ORT profile parser on a real profile, and torch.profiler attribution."""

from __future__ import annotations

import pytest

from shufflebench import blocks
from shufflebench import breakdown
from shufflebench.export import export


@pytest.mark.parametrize(
    "op,category",
    [
        ("Conv", "Conv"),
        ("FusedConv", "Conv"),
        ("Gemm", "Conv"),
        ("Relu", "Elemwise"),
        ("Add", "Elemwise"),
        ("BatchNormalization", "Elemwise"),
        ("Clip", "Elemwise"),
        ("Concat", "Data"),
        ("Split", "Data"),
        ("Reshape", "Data"),
        ("MaxPool", "Other"),
        ("GlobalAveragePool", "Other"),
        ("SomethingNew", "Other"),
    ],
)
def test_onnx_categories(op, category):
    assert breakdown.onnx_category(op) == category


@pytest.mark.parametrize(
    "op,category",
    [
        ("aten::mkldnn_convolution", "Conv"),
        ("aten::addmm", "Conv"),
        ("aten::relu_", "Elemwise"),
        ("aten::add", "Elemwise"),
        ("aten::native_batch_norm", "Elemwise"),
        ("aten::cat", "Data"),
        ("aten::clone", "Data"),
        ("aten::max_pool2d_with_indices", "Other"),
    ],
)
def test_aten_categories(op, category):
    assert breakdown.aten_category(op) == category


def test_no_op_is_of_two_kinds():
    from shufflebench import categories

    for table in (categories.ONNX_KINDS, categories.ATEN_KINDS):
        kinds = list(table.items())
        for i, (a, ops_a) in enumerate(kinds):
            for b, ops_b in kinds[i + 1 :]:
                assert not ops_a & ops_b, (a, b, ops_a & ops_b)
    assert set(categories.TO_FIGURE2) == set(categories.KINDS)


@pytest.fixture(scope="module")
def small_shufflenet(tmp_path_factory):
    w = blocks.build("shufflenet_v2", width=0.5, resolution=64)
    path = tmp_path_factory.mktemp("onnx") / "s.onnx"
    export(w.module, w.input_shape, path)
    return w, path


def test_shuffle_nodes_are_found_from_the_exporters_module_metadata(small_shufflenet):
    _, path = small_shufflenet
    names = breakdown.shuffle_nodes(path)
    assert len(names) == 16 * 3  # Reshape, Transpose, Reshape per unit


@pytest.mark.parametrize("level", ["disable", "all"])
def test_ort_profile_of_a_real_model(small_shufflenet, tmp_path, level):
    w, path = small_shufflenet
    totals = breakdown.ort_breakdown(path, w.input_shape, opt_level=level, runs=3, workdir=tmp_path)
    assert totals["Conv"] > 0 and totals["Shuffle"] > 0 and totals["Data"] > 0
    shares = breakdown.shares(totals)
    assert list(shares) == list(breakdown.CATEGORIES) and sum(shares.values()) == pytest.approx(100)
    assert not list(tmp_path.glob("*.json"))  # the profile file is removed after parsing


def test_parser_skips_the_first_run():
    events = [
        {"name": "model_run", "ts": 0, "cat": "Session"},
        {"name": "model_run", "ts": 100, "cat": "Session"},
        {"name": "a_kernel_time", "cat": "Node", "ts": 10, "dur": 50, "args": {"op_name": "Conv"}},
        {"name": "a_kernel_time", "cat": "Node", "ts": 110, "dur": 5, "args": {"op_name": "Conv"}},
        {"name": "s_kernel_time", "cat": "Node", "ts": 120, "dur": 2, "args": {"op_name": "Transpose"}},
    ]
    assert breakdown.parse_ort_profile(events, shuffle={"s"}) == {"Conv": 5, "Shuffle": 2}


def test_torch_profile_attributes_the_shuffle(small_shufflenet):
    w, _ = small_shufflenet
    totals = breakdown.torch_breakdown(w.module, w.input_shape, runs=2)
    assert totals["Shuffle"] > 0 and totals["Conv"] > 0
    assert not any(m._forward_hooks for m in w.module.modules())  # hooks removed
