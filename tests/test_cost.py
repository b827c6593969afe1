"""The cost model against FlopCounterMode, thop and the ops that the peers count as free."""

from __future__ import annotations

import pytest
import thop
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from shufflebench import blocks
from shufflebench import cost
from tests.conftest import example_params


@pytest.mark.parametrize("name", blocks.list_workloads())
def test_flops_are_half_of_flop_counter_mode(name):
    w = blocks.build(name, **example_params(name))
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        w.module(torch.randn(w.input_shape))
    assert cost.count(w.module, w.input_shape).flops * 2 == counter.get_total_flops()


@pytest.mark.parametrize(
    "module,shape",
    [
        (blocks.build("g1", c1=32, c2=96, hw=14).module, (1, 32, 14, 14)),
        (blocks.build("g2", g=4, c=64, hw=14).module, (1, 64, 14, 14)),
        (blocks.build("g3", structure="4-fragment-series", c=64, hw=14).module, (1, 32, 14, 14)),
        (
            nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, bias=False), nn.Conv2d(16, 16, 3, groups=16, bias=False)),
            (2, 3, 32, 32),
        ),
        (nn.Sequential(nn.Flatten(), nn.Linear(48, 10, bias=False)), (4, 3, 4, 4)),
    ],
    ids=["g1", "g2", "g3-series", "conv-dw", "linear"],
)
def test_flops_equal_thop_on_conv_and_linear_only_modules(module, shape):
    thop_macs, thop_params = thop.profile(module, inputs=(torch.randn(shape),), verbose=False)
    counted = cost.count(module, shape)
    assert counted.flops == int(thop_macs)
    assert counted.params == int(thop_params)


class _Functional(nn.Module):
    """The functional ops FLOP counters zero out: residual add, concat, chunk, channel-shuffle copy."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x) + x
        a, b = y.chunk(2, dim=1)
        y = torch.cat([b, a], dim=1)
        n, c, h, w = y.shape
        return y.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


def test_add_concat_and_shuffle_copy_have_mac_and_views_do_not():
    counted = cost.count(_Functional(), (1, 8, 4, 4))
    by_op = {o.op: o for o in counted.ops}
    n = 8 * 4 * 4
    assert by_op["add"].mac == 3 * n and by_op["add"].elementwise_ops == n
    assert by_op["cat"].mac == 2 * n and by_op["cat"].category == "data"
    assert by_op["clone"].mac == 2 * n and by_op["clone"].category == "data"  # the shuffle's .contiguous()
    for view in ("split", "view", "transpose"):
        assert by_op[view].mac == 0 and by_op[view].category == "view"
    assert counted.flops == 8 * 8 * 16


def test_inplace_ops_count_read_and_write_and_bn_is_elementwise():
    module = nn.Sequential(nn.Conv2d(4, 4, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU(inplace=True)).eval()
    counted = cost.count(module, (1, 4, 5, 5))
    relu = next(o for o in counted.ops if o.op == "relu_")
    assert relu.mac == 2 * 100 and relu.category == "elementwise"
    bn = next(o for o in counted.ops if o.category == "elementwise" and "batch_norm" in o.op)
    assert bn.mac == 100 + 4 * 4 + 100  # x, weight, bias, running mean and var, y
    assert counted.elementwise_ops == 200


def test_bias_adds_no_flops_but_counts_as_read():
    with_bias = cost.count(nn.Conv2d(4, 6, 1, bias=True), (1, 4, 3, 3))
    without = cost.count(nn.Conv2d(4, 6, 1, bias=False), (1, 4, 3, 3))
    assert with_bias.flops == without.flops == 4 * 6 * 9
    assert with_bias.mac == without.mac + 6


def test_per_layer_rows_sum_to_the_totals_and_name_the_module():
    w = blocks.build("g4", c=32, hw=8)
    counted = cost.count(w.module, w.input_shape)
    layers = counted.by_layer()
    for key in ("flops", "mac", "elementwise_ops"):
        assert sum(r[key] for r in layers) == getattr(counted, key)
    assert sum(r["params"] for r in layers) == counted.params
    first = layers[0]
    assert first["layer"] == "0.conv1" and first["type"] == "Conv2d" and first["ops"] == "convolution"
    assert any(r["layer"] == "0" and "add" in r["ops"] for r in layers)  # the functional shortcut add


def test_counting_leaves_the_module_unchanged():
    w = blocks.build("g4", c=32, hw=8)
    x = torch.randn(w.input_shape)
    with torch.no_grad():
        before = w.module(x)
        cost.count(w.module, w.input_shape)
        after = w.module(x)
    assert torch.equal(before, after)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in w.module.modules())
