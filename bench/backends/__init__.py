"""Backends: how a cell's workload is run and timed.

Names: ``torch-cpu``, ``torch-cuda`` (PyTorch eager), ``ort-cpu``, ``ort-cuda`` and ``ort:<Provider>`` for any other
ONNX Runtime execution provider (``ort:OpenVINOExecutionProvider``). Each backend module has a ``prepare(...)`` that
returns an object with ``time(n) -> seconds`` and ``info`` (the settings as applied); the backend owns its
synchronisation. This module only parses names and says which settings apply to which backend, so it imports
neither torch nor onnxruntime.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from bench.errors import UserError

ORT_PROVIDERS = {"ort-cpu": "CPUExecutionProvider", "ort-cuda": "CUDAExecutionProvider"}
NAMES = ("torch-cpu", "torch-cuda", "ort-cpu", "ort-cuda", "ort:<Provider>")

# Settings a cell may carry, with their defaults. "threads" defaults to the physical core count (resolved by the
# config); "opt_level" is ONNX Runtime's graph optimisation level.
SETTING_DEFAULTS: dict[str, Any] = {
    "batch": 1,
    "threads": "physical",
    "opt_level": "all",
    "cudnn_benchmark": True,
    "tf32": False,
}
OPT_LEVELS = ("disable", "basic", "extended", "all")


@dataclass(frozen=True)
class Backend:
    name: str
    family: str  # "torch" or "ort"
    target: str  # torch device ("cpu", "cuda") or ORT execution provider

    @property
    def on_gpu(self) -> bool:
        return self.target in ("cuda", "CUDAExecutionProvider")

    @property
    def settings(self) -> tuple[str, ...]:
        """The settings that change what this backend runs; the others are dropped from its cells."""
        if self.family == "torch":
            return ("batch", "cudnn_benchmark", "tf32") if self.on_gpu else ("batch", "threads")
        return ("batch", "opt_level") if self.on_gpu else ("batch", "threads", "opt_level")


def parse(name: str) -> Backend:
    """The backend called ``name``; raises UserError listing the allowed names."""
    if name in ("torch-cpu", "torch-cuda"):
        return Backend(name, "torch", name.removeprefix("torch-"))
    if name in ORT_PROVIDERS:
        return Backend(name, "ort", ORT_PROVIDERS[name])
    if name.startswith("ort:") and name.endswith("ExecutionProvider") and len(name) > len("ort:ExecutionProvider"):
        return Backend(name, "ort", name.removeprefix("ort:"))
    raise UserError(f"unknown backend {name!r}; allowed: {', '.join(NAMES)}")


def unavailable_reason(backend: Backend) -> str | None:
    """Why ``backend`` cannot run on this device, or None when it can."""
    if backend.family == "torch":
        if importlib.util.find_spec("torch") is None:
            return "torch is not installed (pip install 'shufflebench[torch]')"
        try:
            import torch
        except ImportError as e:
            return f"torch is installed but does not import: {e}"
        if backend.on_gpu and not torch.cuda.is_available():
            return "CUDA is not available to torch on this device"
        return None
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed (pip install 'shufflebench[ort]')"
    import onnxruntime

    if backend.target not in onnxruntime.get_available_providers():
        available = ", ".join(onnxruntime.get_available_providers())
        return f"ONNX Runtime here has no {backend.target} (available: {available})"
    return None
