"""The network zoo against published parameter counts and FLOPs, and its ONNX export."""

from __future__ import annotations

import onnx
import pytest
import torch

from shufflebench import blocks
from shufflebench import cost
from shufflebench.export import export
from shufflebench import papers
from shufflebench.papers import PUBLISHED, Published, flops_match, params_match

# every registered workload but the guideline blocks and the calibration ops
NETWORKS = [n for n in blocks.list_workloads() if n not in papers.GUIDELINE_WORKLOADS and not n.startswith("op_")]


def _id(entry: Published) -> str:
    return entry.workload + "".join(f"-{k}={v}" for k, v in entry.args.items())


@pytest.fixture(scope="module")
def counted():
    cache: dict[str, cost.Cost] = {}

    def count(entry: Published) -> cost.Cost:
        if _id(entry) not in cache:
            w = blocks.build(entry.workload, **entry.args)
            cache[_id(entry)] = cost.count(w.module, w.input_shape)
        return cache[_id(entry)]

    return count


@pytest.mark.parametrize("entry", [e for e in PUBLISHED if isinstance(e.params, int)], ids=_id)
def test_anchor_parameter_counts_are_exact(entry, counted):
    assert counted(entry).params == entry.params


@pytest.mark.parametrize("entry", [e for e in PUBLISHED if isinstance(e.params, str)], ids=_id)
def test_printed_parameter_counts_match_to_their_precision(entry, counted):
    assert params_match(counted(entry).params, entry.params), counted(entry).params


@pytest.mark.parametrize("entry", [e for e in PUBLISHED if e.mflops and e.reproducible], ids=_id)
def test_flops_within_two_percent_of_the_published_number(entry, counted):
    assert flops_match(counted(entry).flops / 1e6, entry.mflops), counted(entry).flops / 1e6


def test_every_network_has_a_published_row():
    assert {e.workload for e in PUBLISHED} == set(NETWORKS)


def test_resnet50_is_torchvisions_v1_5():
    w = blocks.build("resnet50")
    first_bottleneck_with_stride = w.module[0][5]  # layer2.0
    assert first_bottleneck_with_stride.conv1[0].stride == (1, 1)
    assert first_bottleneck_with_stride.conv2[0].stride == (2, 2)


@pytest.mark.parametrize("name", NETWORKS)
def test_resolution_sets_the_input_and_any_batch_runs(name):
    w = blocks.build(name, resolution=96)
    assert w.batched(2) == (2, 3, 96, 96)
    with torch.no_grad():
        assert w.module(torch.randn(w.batched(2))).shape == (2, 1000)


@pytest.mark.parametrize(
    "name,args,message",
    [
        ("shufflenet_v2", {"width": 0.75}, "must be one of 0.5, 1.0, 1.5, 2.0"),
        ("shufflenet_v1", {"groups": 5}, "must be one of 1, 2, 3, 4, 8"),
        ("mobilenet_v1", {"width": "wide"}, "must be a number"),
        ("resnet50", {"resolution": 0}, "must be positive"),
    ],
)
def test_network_parameters_are_validated(name, args, message):
    with pytest.raises(blocks.WorkloadError, match=message):
        blocks.build(name, **args)


@pytest.mark.slow
@pytest.mark.parametrize("name", NETWORKS)
def test_every_network_exports_and_matches_torch_in_onnx_runtime(name, tmp_path):
    w = blocks.build(name, resolution=64)
    info = export(w.module, w.input_shape, tmp_path / f"{name}.onnx")  # raises unless ORT matches to 1e-4
    assert info["max_abs_diff"] >= 0 and info["op_types"]["Conv"] > 0


def test_channel_shuffle_exports_as_reshape_transpose_reshape(tmp_path):
    w = blocks.build("shufflenet_v2", width=0.5, resolution=64)
    export(w.module, w.input_shape, tmp_path / "s.onnx")
    graph = onnx.load(str(tmp_path / "s.onnx")).graph
    producer = {out: node for node in graph.node for out in node.output}
    consumers = {}
    for node in graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    shuffles = [
        n
        for n in graph.node
        if n.op_type == "Transpose" and list(next(a for a in n.attribute if a.name == "perm").ints) == [0, 2, 1, 3, 4]
    ]
    assert len(shuffles) == 16  # one per unit: 4 + 8 + 4
    for t in shuffles:
        assert producer[t.input[0]].op_type == "Reshape"
        assert [c.op_type for c in consumers[t.output[0]]] == ["Reshape"]


@pytest.mark.parametrize("entry", [e for e in PUBLISHED if e.workload == "xception"], ids=_id)
def test_xception_levels_are_within_five_percent_of_table_8(entry, counted):
    """Table 8's Xception: the unit and the widths are not published, so the widths were set for the FLOPs."""
    assert abs(counted(entry).flops / 1e6 / entry.mflops - 1) <= 0.05, counted(entry).flops / 1e6
