"""PyTorch eager on CPU or CUDA. [torch]

Settings are applied here, per cell, inside the worker process (nothing is set at import): the intra-op thread count
on CPU; cudnn.benchmark and TF32 (for both convolutions and matmuls) on CUDA. The model runs in eval mode under
``torch.inference_mode``, on device-resident inputs; on CUDA each timed block is bracketed by
``torch.cuda.synchronize()`` so it measures finished work, not kernel launches (methodology R1.2).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn


class TorchTimed:
    def __init__(self, module: nn.Module, x: torch.Tensor, info: dict[str, Any]) -> None:
        self.module, self.x, self.info = module, x, info
        self._sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)

    def time(self, n: int) -> float:
        module, x, sync = self.module, self.x, self._sync
        with torch.inference_mode():
            sync()
            start = time.perf_counter()
            for _ in range(n):
                module(x)
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
) -> TorchTimed:
    """Configure torch for the cell and return a timer for ``module`` on a random input of ``input_shape``."""
    info: dict[str, Any] = {"torch": torch.__version__}
    if device == "cpu":
        torch.set_num_threads(threads)
        info["threads"] = torch.get_num_threads()
    else:
        torch.backends.cudnn.benchmark = cudnn_benchmark
        precision = "tf32" if tf32 else "ieee"
        torch.backends.cudnn.conv.fp32_precision = precision
        torch.backends.cuda.matmul.fp32_precision = precision
        info.update(
            cudnn_benchmark=cudnn_benchmark,
            tf32=tf32,
            gpu=torch.cuda.get_device_name(),
            cudnn=torch.backends.cudnn.version(),
        )
    torch.manual_seed(0)
    x = torch.randn(input_shape, device=device)
    return TorchTimed(module.eval().to(device), x, info)
