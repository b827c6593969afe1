"""PyTorch eager on CPU or CUDA. [torch]

Settings are applied here, per cell, inside the worker process (nothing is set at import): the intra-op thread count
on CPU (and the worker's heap, ``malloc``, which the runner sets when it starts the process); on CUDA cudnn.benchmark,
TF32 (for both convolutions and matmuls), the dtype, the memory format and CUDA-graph replay. The model runs in eval
mode under ``torch.inference_mode``, on device-resident inputs.

A GPU measurement has two numbers (docs/design-notes.md, "What a GPU cell measures"):

- ``time(n)``, the headline: per-call latency. Every call is followed by ``torch.cuda.synchronize()``, so a call costs
  its launches, its kernels and the wait for them, as an application that needs the answer sees it.
- ``time_pipelined(n)``: one synchronisation after ``n`` calls, so the CPU queues call k+1 while the GPU runs call k;
  the time per call is the throughput of back-to-back calls (about max(launch, kernel time)).

On the CPU both are the same thing (the call returns when the work is done), so only GPU timers are ``asynchronous``
and only they are sampled back to back.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

import torch
from torch import nn

from shufflebench.backends import cache
from shufflebench.probe import (
    CONV_CHAIN,
    CPU_MATMUL_SIZES,
    NOISE_N,
    Roofs,
    best_seconds,
    fastest_conv,
    fastest_matmul,
    noise,
    roofs,
)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class TorchTimed:
    """Times ``module(*inputs)`` (``x`` is the first input). On a GPU, ``sync`` waits for the device and ``call`` is
    what one call runs (the module, or the replay of its CUDA graph); on the CPU there is nothing to wait for and the
    module is called directly, so the timed loop is the bare loop a user would write."""

    def __init__(
        self,
        module: nn.Module,
        inputs: tuple[torch.Tensor, ...],
        info: dict[str, Any],
        call: Callable[[], Any] | None = None,
        sync: Callable[[], None] | None = None,
        evict: cache.Evictor | None = None,
    ) -> None:
        self.module, self.inputs, self.info, self.evict = module, inputs, info, evict
        self.x = inputs[0] if inputs else None
        self.call = call or (lambda: module(*inputs))
        self.sync = sync
        self.asynchronous = sync is not None

    def time(self, n: int) -> float:
        """Seconds for ``n`` calls, each one waited for: per-call latency."""
        if self.evict is not None:
            with torch.inference_mode():
                return cache.time_cold(self.call, n, self.evict)
        if self.sync is None:
            module, inputs = self.module, self.inputs
            with torch.inference_mode():
                start = time.perf_counter()
                for _ in range(n):
                    module(*inputs)
                return time.perf_counter() - start
        return self._calls(n, wait_each=True)

    def time_pipelined(self, n: int) -> float:
        """Seconds for ``n`` calls queued back to back and waited for once: throughput."""
        return self._calls(n, wait_each=False)

    def _calls(self, n: int, wait_each: bool) -> float:
        call, sync = self.call, self.sync or (lambda: None)
        with torch.inference_mode():
            sync()
            start = time.perf_counter()
            for _ in range(n):
                call()
                if wait_each:
                    sync()
            if not wait_each:
                sync()
            return time.perf_counter() - start


def prepare(
    module: nn.Module,
    input_shape: tuple[int, ...],
    *,
    device: str,
    settings: dict[str, Any],
    inputs: tuple[torch.Tensor, ...] | None = None,
) -> TorchTimed:
    """Configure torch for the cell and return a timer for ``module`` on a random input of ``input_shape``, or on the
    example ``inputs`` given (shufflebench.api; on a GPU, moved there, floating ones in the cell's dtype).

    ``settings`` holds every setting the backend declares (shufflebench.backends; ``Backend.defaults()`` fills them in).
    """
    info: dict[str, Any] = {"torch": torch.__version__}
    torch.manual_seed(0)
    module = module.eval()
    if device == "cpu":
        torch.set_num_threads(settings["threads"])
        # the heap was set up when the worker started (shufflebench.backends.Backend.worker_env); record what it got
        info.update(
            threads=torch.get_num_threads(),
            malloc=settings["malloc"],
            glibc_tunables=os.environ.get("GLIBC_TUNABLES"),
            cache=settings["cache"],
        )
        evict = cache.Evictor() if settings["cache"] == "cold" else None
        return TorchTimed(module, inputs or (torch.randn(input_shape),), info, evict=evict)

    torch.backends.cudnn.benchmark = settings["cudnn_benchmark"]
    precision = "tf32" if settings["tf32"] else "ieee"
    torch.backends.cudnn.conv.fp32_precision = precision
    torch.backends.cuda.matmul.fp32_precision = precision
    dtype = settings["dtype"]
    if dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        raise RuntimeError(f"{torch.cuda.get_device_name()} has no bfloat16 support; use dtype float16 or float32")
    memory_format = torch.channels_last if settings["channels_last"] else torch.contiguous_format
    module = module.to(device=device, dtype=DTYPES[dtype], memory_format=memory_format)
    on_device = tuple(
        t.to(device=device, dtype=DTYPES[dtype] if t.is_floating_point() else t.dtype).contiguous(
            memory_format=memory_format if t.dim() == 4 else torch.contiguous_format
        )
        for t in inputs or (torch.randn(input_shape),)
    )
    info.update(settings, gpu=torch.cuda.get_device_name(), cudnn=torch.backends.cudnn.version())
    call = GraphReplay(lambda: module(*on_device), torch.cuda) if settings["cuda_graph"] else None
    return TorchTimed(module, on_device, info, call=call, sync=torch.cuda.synchronize)


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


def noise_kernel(device: str) -> Callable[[], Any]:
    """One call of the noise floor's fixed product (shufflebench.probe.NOISE_N, fp32) on ``device``."""
    a, b = (torch.randn(NOISE_N, NOISE_N, device=device) for _ in range(2))
    c = torch.empty(NOISE_N, NOISE_N, device=device)
    return lambda: torch.mm(a, b, out=c)


def probe(device: str, threads: int | None, precision: str = "fp32") -> Roofs:
    """This device's roofs with torch's kernels: a matrix product in ``precision`` (fp32 with TF32 off, tf32, float16
    or bfloat16), on a CPU a chain of 1x1 convolutions in ``precision``, and a copy (shufflebench.probe)."""
    on_gpu = device != "cpu"
    if threads is not None:
        torch.set_num_threads(threads)
    if on_gpu:
        torch.backends.cuda.matmul.fp32_precision = "tf32" if precision == "tf32" else "ieee"
    dtype = DTYPES.get(precision, torch.float32)
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    sizes, nbytes = ((4096,), 2**30) if on_gpu else (CPU_MATMUL_SIZES, 2**28)

    def product(n: int) -> float:
        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        c = torch.empty(n, n, device=device, dtype=dtype)
        return best_seconds(lambda: torch.mm(a, b, out=c), sync)

    def chain(c: int, hw: int) -> float:
        x, w = torch.randn(1, c, hw, hw, dtype=dtype), torch.randn(c, c, 1, 1, dtype=dtype)

        def convolve() -> torch.Tensor:
            h = x
            for _ in range(CONV_CHAIN):
                h = torch.nn.functional.conv2d(h, w)
            return h

        return best_seconds(convolve)

    with torch.inference_mode():
        matmul, n = fastest_matmul(product, sizes)
        conv = None if on_gpu else fastest_conv(chain)
        floor = noise(noise_kernel(device), sync)
        x = torch.ones(nbytes // 4, device=device)
        y = torch.empty_like(x)
        copy = best_seconds(lambda: y.copy_(x), sync)
    return roofs(matmul, n, copy, nbytes, floor, conv)
