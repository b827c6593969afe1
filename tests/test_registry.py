"""The workload registry: names, parameter validation and the errors users see."""

from __future__ import annotations

import pytest
from torch import nn

from shufflebench import blocks
from shufflebench.blocks.registry import register_workload
from tests.conftest import example_params


@pytest.mark.parametrize("name", blocks.list_workloads())
def test_every_workload_builds_in_eval_mode_with_its_input_shape(name):
    w = blocks.build(name, **example_params(name))
    assert isinstance(w.module, nn.Module) and not w.module.training
    assert w.input_shape == (1, *w.sample_shape) and w.batched(2)[0] == 2 and len(w.sample_shape) == 3
    assert "batch" not in w.params  # the batch belongs to the cell


def test_list_with_wildcards():
    assert blocks.list_workloads("g*")[:4] == ["g1", "g2", "g3", "g4"]
    assert blocks.list_workloads("nothing*") == []


def test_strings_are_converted_to_the_parameter_types():
    w = blocks.build("g4", c="64", relu="false", shortcut="true")
    assert w.params == {"c": 64, "relu": False, "shortcut": True, "hw": 56}


@pytest.mark.parametrize(
    "name,params,message",
    [
        ("g5", {}, "unknown workload 'g5'; did you mean g"),
        ("g1", {"c1": "abc", "c2": 128}, "g1: parameter 'c1' must be an integer, got 'abc'"),
        ("g1", {"c1": 1.5, "c2": 128}, "g1: parameter 'c1' must be an integer"),
        ("g1", {"c1": 128, "c2": 128, "depth": 3}, "g1: unknown parameter 'depth'; parameters are: c1: int"),
        ("g1", {"c1": 128}, "g1: missing parameter 'c2'"),
        ("g2", {"g": 4, "c": -8}, "g2: parameter 'c' must be positive, got -8"),
        ("g2", {"g": 8, "c": 180}, "g2: g=8 must divide c=180"),
        ("g3", {"structure": "3-fragment", "c": 64}, "must be one of 1-fragment, 2-fragment-series"),
        ("g4", {"c": 64, "relu": "sometimes"}, "g4: parameter 'relu' must be true or false"),
        ("g4", {"c": 64, "relu": 1}, "g4: parameter 'relu' must be true or false"),
        ("g1", {"c1": True, "c2": 8}, "g1: parameter 'c1' must be an integer"),
    ],
)
def test_bad_parameters_name_the_parameter_and_what_is_allowed(name, params, message):
    with pytest.raises(blocks.WorkloadError) as info:
        blocks.build(name, **params)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_workload(blocks.registry._BUILDERS["g1"])


def test_builders_must_take_keyword_only_parameters():
    def positional(c: int):  # pragma: no cover - never called
        raise AssertionError

    with pytest.raises(TypeError, match="keyword-only"):
        register_workload(positional)
