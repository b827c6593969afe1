"""ONNX Runtime with any execution provider; needs onnxruntime and numpy only (no torch).

Session settings are explicit (methodology section 8): the provider list, intra-op threads, one inter-op thread,
sequential execution and the graph optimisation level. Input and output are bound once with IOBinding on the
provider's device, so a timed ``run_with_iobinding`` does no host-device copies; ``run`` returns only when the
device work is done (ORT synchronises its stream by default), so host timing is valid on CUDA too.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


class OrtTimed:
    def __init__(self, session: ort.InferenceSession, binding: ort.IOBinding, info: dict[str, Any]) -> None:
        self.session, self.binding, self.info = session, binding, info

    def time(self, n: int) -> float:
        run, binding = self.session.run_with_iobinding, self.binding
        start = time.perf_counter()
        for _ in range(n):
            run(binding)
        return time.perf_counter() - start


def session_options(*, threads: int | None, opt_level: str, profile_prefix: str | None = None) -> ort.SessionOptions:
    so = ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = OPT_LEVELS[opt_level]
    so.log_severity_level = 3  # errors only: the worker's stderr is kept for real failures
    if profile_prefix is not None:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return so


def prepare(
    model: Path, input_shape: tuple[int, ...], *, provider: str, threads: int | None = None, opt_level: str = "all"
) -> OrtTimed:
    """An ORT session for ``model`` on ``provider`` with a random input of ``input_shape`` bound on its device."""
    so = session_options(threads=threads, opt_level=opt_level)
    session = ort.InferenceSession(str(model), so, providers=[provider])
    used = session.get_providers()[0]
    if used != provider:
        raise RuntimeError(f"ONNX Runtime fell back to {used} instead of {provider}")
    device = "cuda" if provider == "CUDAExecutionProvider" else "cpu"
    x = np.random.default_rng(0).standard_normal(input_shape, dtype=np.float32)
    binding = session.io_binding()
    binding.bind_ortvalue_input(session.get_inputs()[0].name, ort.OrtValue.ortvalue_from_numpy(x, device, 0))
    for output in session.get_outputs():
        binding.bind_output(output.name, device)
    info = {"onnxruntime": ort.__version__, "provider": used, "threads": threads, "opt_level": opt_level}
    return OrtTimed(session, binding, info)
