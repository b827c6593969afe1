"""Backends: how a cell's workload is run and timed.

Names: ``torch-cpu``, ``torch-cuda`` (PyTorch eager), ``ort-cpu``, ``ort-cuda`` and ``ort:<Provider>`` for any other
ONNX Runtime execution provider (``ort:OpenVINOExecutionProvider``). Each backend module has a ``prepare(...)`` that
returns an object with ``time(n) -> seconds`` and ``info`` (the settings as applied); the backend owns its
synchronisation. This module only parses names and declares which settings each backend takes, with their types,
defaults and allowed values, so it imports neither torch nor onnxruntime.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from bench.errors import UserError

ORT_PROVIDERS = {"ort-cpu": "CPUExecutionProvider", "ort-cuda": "CUDAExecutionProvider"}
NAMES = ("torch-cpu", "torch-cuda", "ort-cpu", "ort-cuda", "ort:<Provider>")
# ONNX Runtime providers that run on a GPU, with the device their inputs and outputs are bound on (IOBinding).
ORT_GPU_DEVICES = {
    "CUDAExecutionProvider": "cuda",
    "TensorrtExecutionProvider": "cuda",
    "NvTensorRTRTXExecutionProvider": "cuda",
    "ROCMExecutionProvider": "cuda",
    "MIGraphXExecutionProvider": "cuda",
    "DmlExecutionProvider": "dml",
}


@dataclass(frozen=True)
class Setting:
    """One setting a cell may carry: its type, default and, where the values are fixed, the allowed ones."""

    name: str
    kind: type  # int, bool or str
    default: Any
    choices: tuple[Any, ...] = ()
    help: str = ""

    def check(self, value: Any) -> Any:
        """``value`` as this setting stores it; raises UserError naming what is allowed."""
        if self.name == "threads" and value in ("physical", "logical"):
            import psutil

            return psutil.cpu_count(logical=value == "logical") or psutil.cpu_count()
        if self.kind is bool:
            if not isinstance(value, bool):
                raise UserError(f"must be true or false, got {value!r}")
            return value
        if self.kind is int:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                extra = ', "physical" or "logical"' if self.name == "threads" else ""
                raise UserError(f"must be a positive integer{extra}, got {value!r}")
            return value
        if value not in self.choices:
            raise UserError(f"must be one of {', '.join(self.choices)}, got {value!r}")
        return value

    def with_choices(self, *choices: Any) -> Setting:
        return Setting(self.name, self.kind, self.default, choices, self.help)


OPT_LEVELS = ("disable", "basic", "extended", "all")
DTYPES = ("float32", "float16", "bfloat16")
SETTINGS = {
    s.name: s
    for s in (
        Setting("batch", int, 1, help="images per call"),
        Setting("threads", int, "physical", help='CPU threads: an integer, "physical" or "logical" cores'),
        Setting("opt_level", str, "all", OPT_LEVELS, help="ONNX Runtime graph optimisation level"),
        Setting("cudnn_benchmark", bool, True, help="cuDNN autotuning (ORT: cudnn_conv_algo_search EXHAUSTIVE)"),
        Setting("tf32", bool, False, help="TF32 for fp32 convolutions and matmuls"),
        Setting("dtype", str, "float32", DTYPES, help="weights and activations"),
        Setting("channels_last", bool, False, help="NHWC memory format for the module and input"),
        Setting("cuda_graph", bool, False, help="capture one call as a CUDA graph and replay it"),
    )
}


@dataclass(frozen=True)
class Backend:
    name: str
    family: str  # "torch" or "ort"
    target: str  # torch device ("cpu", "cuda") or ORT execution provider

    @property
    def on_gpu(self) -> bool:
        return self.target == "cuda" or self.target in ORT_GPU_DEVICES

    @property
    def settings(self) -> tuple[Setting, ...]:
        """The settings that change what this backend runs, batch first; the others are dropped from its cells."""
        if self.family == "torch":
            if not self.on_gpu:
                names = ("batch", "threads")
            else:
                names = ("batch", "cudnn_benchmark", "tf32", "dtype", "channels_last", "cuda_graph")
            return tuple(SETTINGS[n] for n in names)
        if self.target == "CUDAExecutionProvider":
            names = ("batch", "opt_level", "cudnn_benchmark", "tf32", "dtype", "cuda_graph")
        elif self.on_gpu:
            names = ("batch", "opt_level", "dtype")
        else:
            names = ("batch", "threads", "opt_level")
        # ONNX Runtime's half precision is a float16-converted model; bfloat16 convolutions have no kernels there.
        return tuple(SETTINGS[n].with_choices("float32", "float16") if n == "dtype" else SETTINGS[n] for n in names)


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
        hint = " (install onnxruntime-gpu in place of onnxruntime)" if backend.target in ORT_GPU_DEVICES else ""
        return f"ONNX Runtime here has no {backend.target}{hint} (available: {available})"
    return None
