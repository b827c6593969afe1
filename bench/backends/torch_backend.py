"""PyTorch eager on CPU or CUDA. [torch]

Settings are applied here, per cell, inside the worker process (nothing is set at import): the intra-op thread count
on CPU; on CUDA cudnn.benchmark, TF32 (for both convolutions and matmuls), the dtype, the memory format and CUDA-graph
replay. The model runs in eval mode under ``torch.inference_mode``, on device-resident inputs.

A GPU measurement has two numbers (docs/design-notes.md, "What a GPU cell measures"):

- ``time(n)``, the headline: per-call latency. Every call is followed by ``torch.cuda.synchronize()``, so a call costs
  its launches, its kernels and the wait for them, as an application that needs the answer sees it.
- ``time_pipelined(n)``: one synchronisation after ``n`` calls, so the CPU queues call k+1 while the GPU runs call k;
  the time per call is the throughput of back-to-back calls (about max(launch, kernel time)).

On the CPU both are the same thing (the call returns when the work is done), so only GPU timers are ``asynchronous``.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch
from torch import nn

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class TorchTimed:
    """Times ``call`` (one forward pass); ``sync`` waits for the device, a no-op on the CPU. ``module`` and ``x`` are
    what ``call`` runs, for checks against other timers."""

    def __init__(
        self,
        call: Callable[[], Any],
        sync: Callable[[], None],
        info: dict[str, Any],
        asynchronous: bool,
        module: nn.Module | None = None,
        x: torch.Tensor | None = None,
    ) -> None:
        self.call, self.sync, self.info, self.asynchronous = call, sync, info, asynchronous
        self.module, self.x = module, x

    def time(self, n: int) -> float:
        """Seconds for ``n`` calls, each one waited for: per-call latency."""
        call, sync = self.call, self.sync
        with torch.inference_mode():
            sync()
            start = time.perf_counter()
            for _ in range(n):
                call()
                sync()
            return time.perf_counter() - start

    def time_pipelined(self, n: int) -> float:
        """Seconds for ``n`` calls queued back to back and waited for once: throughput."""
        call, sync = self.call, self.sync
        with torch.inference_mode():
            sync()
            start = time.perf_counter()
            for _ in range(n):
                call()
            sync()
            return time.perf_counter() - start


def prepare(
    module: nn.Module,
    input_shape: tuple[int, ...],
    *,
    device: str,
    threads: int | None = None,
    cudnn_benchmark: bool = True,
    tf32: bool = False,
    dtype: str = "float32",
    channels_last: bool = False,
    cuda_graph: bool = False,
) -> TorchTimed:
    """Configure torch for the cell and return a timer for ``module`` on a random input of ``input_shape``."""
    info: dict[str, Any] = {"torch": torch.__version__}
    torch.manual_seed(0)
    module = module.eval()
    if device == "cpu":
        torch.set_num_threads(threads)
        info["threads"] = torch.get_num_threads()
        x = torch.randn(input_shape)
        return TorchTimed(lambda: module(x), lambda: None, info, asynchronous=False, module=module, x=x)

    torch.backends.cudnn.benchmark = cudnn_benchmark
    precision = "tf32" if tf32 else "ieee"
    torch.backends.cudnn.conv.fp32_precision = precision
    torch.backends.cuda.matmul.fp32_precision = precision
    if dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        raise RuntimeError(f"{torch.cuda.get_device_name()} has no bfloat16 support; use dtype float16 or float32")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    module = module.to(device=device, dtype=DTYPES[dtype], memory_format=memory_format)
    x = torch.randn(input_shape, device=device, dtype=DTYPES[dtype]).contiguous(memory_format=memory_format)
    info.update(
        cudnn_benchmark=cudnn_benchmark,
        tf32=tf32,
        dtype=dtype,
        channels_last=channels_last,
        cuda_graph=cuda_graph,
        gpu=torch.cuda.get_device_name(),
        cudnn=torch.backends.cudnn.version(),
    )
    call = GraphReplay(lambda: module(x), torch.cuda) if cuda_graph else (lambda: module(x))
    return TorchTimed(call, torch.cuda.synchronize, info, asynchronous=True, module=module, x=x)


class GraphReplay:
    """One call as a captured CUDA graph: calling it replays the graph, which writes into ``output``."""

    def __init__(self, call: Callable[[], Any], cuda: Any, warmup: int = 3) -> None:
        """Capture ``call``. As torch.cuda.graphs documents: warm up on a side stream first (cuDNN autotuning and
        lazy allocations must not happen during capture), then capture. ``cuda`` is ``torch.cuda``, a parameter so
        that the plumbing is testable without a GPU."""
        with torch.inference_mode():
            side = cuda.Stream()
            side.wait_stream(cuda.current_stream())
            with cuda.stream(side):
                for _ in range(warmup):
                    call()
            cuda.current_stream().wait_stream(side)
            cuda.synchronize()
            self.graph = cuda.CUDAGraph()
            with cuda.graph(self.graph):
                self.output = call()

    def __call__(self) -> Any:
        self.graph.replay()
        return self.output
