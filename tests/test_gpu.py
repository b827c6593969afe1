"""The CUDA backends, on a machine with an NVIDIA GPU (marker `gpu`; skipped elsewhere, e.g. the CPU-only CI)."""

from __future__ import annotations

import onnxruntime as ort
import pytest
import torch

import blocks
from bench.backends import ort_backend, torch_backend
from bench.export import export
from bench.measure import MeasureSettings, measure

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch on this machine"),
]


@pytest.mark.parametrize("tf32", [False, True])
def test_torch_cuda_applies_and_records_cudnn_and_tf32(tf32):
    w = blocks.build("g1", c1=128, c2=128, batch=8)
    timed = torch_backend.prepare(w.module, w.input_shape, device="cuda", cudnn_benchmark=True, tf32=tf32)
    assert timed.info["tf32"] is tf32 and timed.info["cudnn_benchmark"] is True
    assert torch.backends.cudnn.conv.fp32_precision == ("tf32" if tf32 else "ieee")
    assert timed.x.is_cuda and next(timed.module.parameters()).is_cuda
    m = measure(timed, MeasureSettings(min_time=0.2))
    assert m.samples and min(m.samples) > 0


def test_synchronised_blocks_grow_with_the_work():
    w = blocks.build("g4", c=128, batch=8)
    timed = torch_backend.prepare(w.module, w.input_shape, device="cuda")
    timed.time(3)
    assert timed.time(20) > 5 * timed.time(2)  # without a sync, both would time only the kernel launches


@pytest.mark.skipif(
    "CUDAExecutionProvider" not in ort.get_available_providers(), reason="onnxruntime-gpu not installed"
)
def test_ort_cuda_binds_input_and_output_on_the_gpu(tmp_path):
    w = blocks.build("g3", structure="2-fragment-parallel", c=128, batch=8)
    export(w.module, w.input_shape, tmp_path / "g3.onnx")
    timed = ort_backend.prepare(tmp_path / "g3.onnx", w.input_shape, provider="CUDAExecutionProvider")
    assert timed.info["provider"] == "CUDAExecutionProvider"
    timed.time(2)
    assert timed.binding.get_outputs()[0].device_name() == "cuda"
