"""The CUDA backends, on a machine with an NVIDIA GPU (marker `gpu`; skipped elsewhere, e.g. the CPU-only CI).

`make gpu-check` runs these first. Each check can fail: the timers are compared with CUDA events, CUDA-graph replay
with eager execution, and the provider options with what ONNX Runtime reports it applied.
"""

from __future__ import annotations

import onnxruntime as ort
import pytest
import torch

from shufflebench import blocks
from shufflebench import backends
from shufflebench.backends import ort_backend, torch_backend
from shufflebench.export import export
from shufflebench.measure import MeasureSettings, measure

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch on this machine"),
]
TORCH_CUDA = backends.get("torch-cuda")
needs_ort_cuda = pytest.mark.skipif(
    "CUDAExecutionProvider" not in ort.get_available_providers(), reason="onnxruntime-gpu not installed"
)


@pytest.mark.parametrize("tf32", [False, True])
def test_torch_cuda_applies_and_records_cudnn_and_tf32(tf32):
    w = blocks.build("g1", c1=128, c2=128)
    settings = TORCH_CUDA.defaults(cudnn_benchmark=True, tf32=tf32)
    timed = torch_backend.prepare(w.module, w.batched(8), device="cuda", settings=settings)
    assert timed.info["tf32"] is tf32 and timed.info["cudnn_benchmark"] is True
    assert torch.backends.cudnn.conv.fp32_precision == ("tf32" if tf32 else "ieee")
    assert torch.backends.cuda.matmul.fp32_precision == ("tf32" if tf32 else "ieee")
    assert next(w.module.parameters()).is_cuda
    m = measure(timed, MeasureSettings(min_time=0.2))
    assert m.samples and min(m.samples) > 0
    assert m.pipelined and min(m.pipelined) > 0  # a GPU timer also samples back-to-back calls


def _event_ms(call, n: int = 1) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    with torch.inference_mode():
        torch.cuda.synchronize()
        start.record()
        for _ in range(n):
            call()
        end.record()
        torch.cuda.synchronize()
    return start.elapsed_time(end)


def test_per_call_and_pipelined_times_cover_the_gpu_work():
    # About 2 TFLOP of fp32 convolutions per call: tens of ms of GPU work, against well under 1 ms of launches.
    w = blocks.build("g1", c1=1024, c2=1024)
    timed = torch_backend.prepare(w.module, w.batched(16), device="cuda", settings=TORCH_CUDA.defaults(tf32=False))
    timed.time(2)
    gpu_ms = _event_ms(timed.call)
    assert gpu_ms > 5, "the workload is too small to tell launches from work"
    # Without a synchronisation each host time would be the launch time alone, a small fraction of gpu_ms.
    assert timed.time(1) * 1e3 >= 0.9 * gpu_ms
    assert timed.time_pipelined(3) * 1e3 >= 0.9 * 3 * gpu_ms


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_dtype_and_channels_last_reach_the_module_and_input(dtype):
    if dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        pytest.skip("no bfloat16 on this GPU")
    w = blocks.build("g4", c=32)
    settings = TORCH_CUDA.defaults(dtype=dtype, channels_last=True)
    timed = torch_backend.prepare(w.module, w.batched(8), device="cuda", settings=settings)
    out = timed.call()
    assert out.dtype == torch_backend.DTYPES[dtype]
    weight = next(p for p in w.module.parameters() if p.dim() == 4)
    assert weight.dtype == torch_backend.DTYPES[dtype] and weight.is_contiguous(memory_format=torch.channels_last)
    assert timed.info["dtype"] == dtype and timed.info["channels_last"] is True


def test_cuda_graph_replay_computes_what_eager_computes():
    w = blocks.build("g3", structure="4-fragment-series", c=128)
    module = w.module.eval().cuda()
    x = torch.randn(w.batched(8), device="cuda")
    replay = torch_backend.GraphReplay(lambda: module(x), torch.cuda)
    with torch.inference_mode():
        torch.testing.assert_close(replay().clone(), module(x))
        x.copy_(torch.randn_like(x))  # a replay reads the captured input's memory, so it sees the new values
        torch.testing.assert_close(replay().clone(), module(x))


def test_cuda_graph_cells_time_the_replay():
    w = blocks.build("g3", structure="4-fragment-series", c=128)
    timed = torch_backend.prepare(w.module, w.batched(8), device="cuda", settings=TORCH_CUDA.defaults(cuda_graph=True))
    assert isinstance(timed.call, torch_backend.GraphReplay) and timed.info["cuda_graph"] is True
    assert timed.time(5) > 0 and timed.time_pipelined(5) > 0


@needs_ort_cuda
@pytest.mark.parametrize("tf32", [False, True])
def test_ort_cuda_options_follow_the_cell(tmp_path, tf32):
    w = blocks.build("g3", structure="2-fragment-parallel", c=128)
    export(w.module, w.batched(8), tmp_path / "g3.onnx")
    settings = backends.get("ort-cuda").defaults(tf32=tf32, cudnn_benchmark=False)
    timed = ort_backend.prepare(tmp_path / "g3.onnx", w.batched(8), provider="CUDAExecutionProvider", settings=settings)
    options = timed.info["provider_options"]
    assert options["use_tf32"] == str(int(tf32)) and options["cudnn_conv_algo_search"] == "HEURISTIC"
    assert timed.binding.get_outputs()[0].device_name() == "cuda"
    assert not timed.info["warnings"], timed.info["warnings"]
    assert timed.time(2) > 0 and timed.time_pipelined(4) > 0
