"""Backend names, settings, and the torch and ONNX Runtime timers on real (small) workloads."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

import blocks
from bench import backends
from bench.backends import ort_backend, torch_backend
from bench.errors import UserError
from bench.export import export


@pytest.mark.parametrize(
    "name,family,target",
    [
        ("torch-cpu", "torch", "cpu"),
        ("torch-cuda", "torch", "cuda"),
        ("ort-cpu", "ort", "CPUExecutionProvider"),
        ("ort-cuda", "ort", "CUDAExecutionProvider"),
        ("ort:OpenVINOExecutionProvider", "ort", "OpenVINOExecutionProvider"),
    ],
)
def test_names(name, family, target):
    b = backends.parse(name)
    assert (b.family, b.target) == (family, target)


@pytest.mark.parametrize("name", ["torch", "ort:", "ort:Foo", "tensorrt"])
def test_unknown_names_list_the_allowed_ones(name):
    with pytest.raises(UserError, match="allowed: torch-cpu, torch-cuda, ort-cpu, ort-cuda, ort:<Provider>"):
        backends.parse(name)


def test_unavailable_backends_say_why():
    assert backends.unavailable_reason(backends.parse("torch-cpu")) is None
    assert backends.unavailable_reason(backends.parse("ort-cpu")) is None
    if not torch.cuda.is_available():
        assert "CUDA is not available" in backends.unavailable_reason(backends.parse("torch-cuda"))
    assert "no NoSuchExecutionProvider" in backends.unavailable_reason(backends.parse("ort:NoSuchExecutionProvider"))


def test_torch_backend_applies_threads_and_times_calls():
    w = blocks.build("g1", c1=8, c2=8, hw=8)
    timed = torch_backend.prepare(w.module, w.input_shape, device="cpu", threads=1)
    assert timed.info["threads"] == 1 == torch.get_num_threads()
    assert timed.time(5) > timed.time(0) >= 0


def test_export_is_verified_and_ort_times_it(tmp_path):
    w = blocks.build("g3", structure="2-fragment-parallel", c=16, hw=8)
    info = export(w.module, w.input_shape, tmp_path / "g3.onnx")
    assert info["exporter"] == "dynamo" and info["opset"] == 18
    assert info["op_types"] == {"Conv": 20, "Add": 10}
    assert info["max_abs_diff"] <= 1e-4 * 1
    timed = ort_backend.prepare(
        tmp_path / "g3.onnx", w.input_shape, provider="CPUExecutionProvider", threads=1, opt_level="disable"
    )
    assert timed.info["provider"] == "CPUExecutionProvider" and timed.info["opt_level"] == "disable"
    assert timed.time(3) > 0
    model = onnx.load(str(tmp_path / "g3.onnx"))
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == list(w.input_shape)  # static


def test_ort_output_matches_torch_through_the_bound_session(tmp_path):
    w = blocks.build("g4", c=16, hw=8)
    export(w.module, w.input_shape, tmp_path / "g4.onnx")
    timed = ort_backend.prepare(tmp_path / "g4.onnx", w.input_shape, provider="CPUExecutionProvider", threads=1)
    timed.time(1)
    got = timed.binding.copy_outputs_to_cpu()[0]
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(w.input_shape, dtype=np.float32))
    with torch.no_grad():
        expected = w.module(x).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_the_opt_levels_a_config_accepts_are_the_ones_ort_knows():
    assert tuple(ort_backend.OPT_LEVELS) == backends.OPT_LEVELS
