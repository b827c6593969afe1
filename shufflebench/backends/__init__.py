"""Backends: how a cell's workload is run and timed, as objects in a small registry.

Names: ``torch-cpu``, ``torch-cuda`` (PyTorch eager), ``ort-cpu``, ``ort-cuda`` and ``ort:<Provider>`` for any other
ONNX Runtime execution provider (``ort:OpenVINOExecutionProvider``). A backend declares, as data, the settings it
takes (name, type, default, allowed values), whether it runs an exported ONNX file, and why it cannot run on this
device; its ``prepare`` returns a ``Timed`` (shufflebench.measure) that owns its synchronisation. Config validation,
cell keys, the results columns and the command-line help all come from these declarations, and nothing else branches on
a backend's name. This module imports neither torch nor onnxruntime; each backend imports its runtime in ``prepare``.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from shufflebench.errors import UserError
from shufflebench.probe import NOISE_N, Reference

if TYPE_CHECKING:
    from shufflebench.measure import Timed
    from shufflebench.probe import Roofs

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

    def describe(self) -> str:
        allowed = "|".join(self.choices) if self.choices else self.kind.__name__
        return f"{self.name}: {allowed} = {str(self.default).lower() if self.kind is bool else self.default}"

    def restricted(self, *choices: Any) -> Setting:
        return Setting(self.name, self.kind, self.default, choices, self.help)


# glibc.malloc tunables of the "steady" heap (the malloc setting); see docs/design-notes.md, "Two speeds of one cell".
STEADY_HEAP = ("glibc.malloc.mmap_threshold=33554432", "glibc.malloc.trim_threshold=4294967296")
ONNX_OPSET = 18  # the opset of every exported file (shufflebench.export); a row of another opset is measured again
OPT_LEVELS = ("disable", "basic", "extended", "all")
DTYPES = ("float32", "float16", "bfloat16")
ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2}
SETTINGS = {
    s.name: s
    for s in (
        Setting("batch", int, 1, help="images per call"),
        Setting("threads", int, "physical", help='CPU threads: an integer, "physical" or "logical" cores'),
        Setting("malloc", str, "steady", ("steady", "glibc"), help="heap of the worker: kept (steady) or glibc's own"),
        Setting("opt_level", str, "all", OPT_LEVELS, help="ONNX Runtime graph optimisation level"),
        Setting("spinning", bool, True, help="ONNX Runtime intra-op threads spin while waiting for work"),
        Setting("cudnn_benchmark", bool, True, help="cuDNN autotuning (ORT: cudnn_conv_algo_search EXHAUSTIVE)"),
        Setting("tf32", bool, False, help="TF32 for fp32 convolutions and matmuls"),
        Setting("dtype", str, "float32", DTYPES, help="weights and activations"),
        Setting("channels_last", bool, False, help="NHWC memory format for the module and input"),
        Setting("cuda_graph", bool, False, help="capture one call as a CUDA graph and replay it"),
        Setting("cache", str, "warm", ("warm", "cold"), help="cold: L2 evicted before each call, as in a network"),
    )
}


@dataclass(frozen=True)
class Backend:
    """A way to run a workload. Subclasses declare their settings and know how to prepare a timer."""

    name: str
    target: str  # torch device ("cpu", "cuda") or ORT execution provider
    on_gpu: bool
    settings: tuple[Setting, ...]  # batch first
    needs_onnx: bool  # runs the workload's exported ONNX file (and can go into a bundle)
    # What this backend did before it declared a setting, where that was not the setting's default: rows written then
    # lack the setting and were measured with this value.
    BEFORE_SETTING: ClassVar[dict[str, Any]] = {}
    probe_precisions: ClassVar[bool] = False  # its probe can run matrix products in tf32, float16 and bfloat16

    def setting_before(self, name: str) -> Any:
        """The value of setting ``name`` in rows written before this backend declared it (results.read_table reads
        such a row as measured with it, so a setting added later keeps the cell of its earlier measurements)."""
        return self.BEFORE_SETTING.get(name, SETTINGS[name].default)

    def unavailable_reason(self) -> str | None:
        """Why this backend cannot run on this device, or None when it can."""
        raise NotImplementedError

    def prepare(
        self,
        workload: str,
        args: dict[str, Any],
        onnx: Path | None,
        input_shape: tuple[int, ...],
        settings: dict[str, Any],
    ) -> Timed:
        """A timer for the workload on this backend with the cell's ``settings`` (batch excluded)."""
        raise NotImplementedError

    def probe(self, threads: int | None, precision: str = "fp32") -> Roofs:
        """This device's peak matmul throughput in ``precision`` (shufflebench.probe.precision; only fp32 where
        ``probe_precisions`` is false) and memory bandwidth, with this backend's kernels (shufflebench.probe)."""
        raise NotImplementedError

    def reference(self, threads: int | None) -> Timed | None:
        """The noise floor's kernel with this backend's kernels at ``threads``, timed between a CPU cell's samples as
        the machine's speed at the time (shufflebench.measure); None on a GPU, whose clocks are its own."""
        raise NotImplementedError

    def runtime_cost(self, onnx: Path, input_shape: tuple[int, ...], settings: dict[str, Any]) -> dict[str, Any]:
        """The cost of the graph the runtime makes of ``onnx`` with these settings (backends that run ONNX files)."""
        raise NotImplementedError

    @property
    def preload(self) -> tuple[str, ...]:
        """The modules a worker of this backend imports before it is forked (shufflebench.launcher): its runtime's, and
        nothing that runs an op."""
        raise NotImplementedError

    def defaults(self, **overrides: Any) -> dict[str, Any]:
        """Every setting this backend takes but batch, at its default unless overridden, checked."""
        unknown = set(overrides) - {s.name for s in self.settings}
        if unknown:
            raise UserError(f"{self.name} takes no setting {sorted(unknown)[0]!r}; it takes: {self.describe()}")
        return {s.name: s.check(overrides.get(s.name, s.default)) for s in self.settings if s.name != "batch"}

    def describe(self) -> str:
        return ", ".join(s.describe() for s in self.settings)

    def worker_env(self, settings: dict[str, Any]) -> dict[str, str]:
        """Environment variables the worker process must start with for these settings (read before main)."""
        if settings.get("malloc") != "steady":
            return {}
        # glibc reads its tunables at process start. Large buffers from the heap (up to 32 MiB) and freed memory never
        # handed back: the steady state of a long-running process, with no page faults per call (design-notes).
        tunables = [t for t in os.environ.get("GLIBC_TUNABLES", "").split(":") if t and t not in STEADY_HEAP]
        return {"GLIBC_TUNABLES": ":".join([*tunables, *STEADY_HEAP])}


def _settings(*names: str, dtypes: tuple[str, ...] = DTYPES) -> tuple[Setting, ...]:
    return tuple(SETTINGS[n].restricted(*dtypes) if n == "dtype" else SETTINGS[n] for n in ("batch", *names))


class TorchBackend(Backend):
    """PyTorch eager (shufflebench.backends.torch_backend); builds the workload in the worker process."""

    BEFORE_SETTING: ClassVar[dict[str, Any]] = {"malloc": "glibc"}  # workers started with glibc's own heap
    probe_precisions: ClassVar[bool] = True

    def unavailable_reason(self) -> str | None:
        if importlib.util.find_spec("torch") is None:
            return "torch is not installed (pip install 'shufflebench[torch]')"
        try:
            import torch
        except ImportError as e:
            return f"torch is installed but does not import: {e}"
        if self.on_gpu and not torch.cuda.is_available():
            return "CUDA is not available to torch on this device"
        return None

    def prepare(self, workload, args, onnx, input_shape, settings):  # noqa: ANN001, ANN201 (see Backend)
        from shufflebench import blocks
        from shufflebench.backends import torch_backend

        module = blocks.build(workload, **args).module
        return torch_backend.prepare(module, input_shape, device=self.target, settings=settings)

    def probe(self, threads, precision="fp32"):  # noqa: ANN001, ANN201 (see Backend)
        from shufflebench.backends import torch_backend

        return torch_backend.probe(self.target, threads, precision)

    def reference(self, threads):  # noqa: ANN001, ANN201 (see Backend)
        from shufflebench.backends import torch_backend

        return None if self.on_gpu else Reference(torch_backend.noise_kernel("cpu"))

    @property
    def preload(self) -> tuple[str, ...]:
        return ("torch", "shufflebench.blocks", "shufflebench.backends.torch_backend")


class OrtBackend(Backend):
    """ONNX Runtime with one execution provider (shufflebench.backends.ort_backend): runs the exported file, no
    torch."""

    BEFORE_SETTING: ClassVar[dict[str, Any]] = {"tf32": True}  # the CUDA provider's own default, use_tf32=1

    def unavailable_reason(self) -> str | None:
        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime is not installed (pip install 'shufflebench[ort]')"
        import onnxruntime

        if self.target not in onnxruntime.get_available_providers():
            available = ", ".join(onnxruntime.get_available_providers())
            hint = " (install onnxruntime-gpu in place of onnxruntime)" if self.on_gpu else ""
            return f"ONNX Runtime here has no {self.target}{hint} (available: {available})"
        return None

    def prepare(self, workload, args, onnx, input_shape, settings):  # noqa: ANN001, ANN201 (see Backend)
        from shufflebench.backends import ort_backend

        return ort_backend.prepare(onnx, input_shape, provider=self.target, settings=settings)

    def probe(self, threads, precision="fp32"):  # noqa: ANN001, ANN201 (see Backend)
        from shufflebench.backends import ort_backend

        if precision != "fp32":
            raise ValueError(f"{self.name} probes fp32 only, not {precision}")
        return ort_backend.probe(self.target, threads)

    def reference(self, threads):  # noqa: ANN001, ANN201 (see Backend)
        from shufflebench.backends import ort_backend

        return None if self.on_gpu else Reference(ort_backend.square(NOISE_N, self.target, threads))

    def runtime_cost(self, onnx, input_shape, settings):  # noqa: ANN001, ANN201 (see Backend)
        from shufflebench.backends import ort_backend

        return ort_backend.runtime_cost(onnx, input_shape, provider=self.target, settings=settings)

    @property
    def preload(self) -> tuple[str, ...]:
        return ()  # import onnxruntime starts a thread, so the child imports it (shufflebench.launcher)


def _ort(name: str, provider: str) -> OrtBackend:
    if provider == "CUDAExecutionProvider":
        # ONNX Runtime's half precision is a float16-converted model; it has no bfloat16 convolutions.
        declared = _settings("opt_level", "cudnn_benchmark", "tf32", "dtype", "cuda_graph", dtypes=DTYPES[:2])
    elif provider in ORT_GPU_DEVICES:
        declared = _settings("opt_level", "dtype", dtypes=DTYPES[:2])
    else:
        declared = _settings("threads", "opt_level", "spinning", "cache")
    return OrtBackend(name, provider, provider in ORT_GPU_DEVICES, declared, needs_onnx=True)


REGISTRY: dict[str, Backend] = {
    "torch-cpu": TorchBackend("torch-cpu", "cpu", False, _settings("threads", "malloc", "cache"), needs_onnx=False),
    "torch-cuda": TorchBackend(
        "torch-cuda",
        "cuda",
        True,
        _settings("cudnn_benchmark", "tf32", "dtype", "channels_last", "cuda_graph"),
        needs_onnx=False,
    ),
    "ort-cpu": _ort("ort-cpu", "CPUExecutionProvider"),
    "ort-cuda": _ort("ort-cuda", "CUDAExecutionProvider"),
}


def get(name: str) -> Backend:
    """The backend called ``name``; raises UserError listing the allowed names."""
    if name in REGISTRY:
        return REGISTRY[name]
    if name.startswith("ort:") and name.endswith("ExecutionProvider") and len(name) > len("ort:ExecutionProvider"):
        return _ort(name, name.removeprefix("ort:"))
    raise UserError(f"unknown backend {name!r}; allowed: {', '.join(NAMES)}")


def describe() -> str:
    """Every backend with its settings, for ``--help`` and ``shufflebench list --backends``."""
    lines = []
    for backend in REGISTRY.values():
        lines.append(f"{backend.name}: {backend.describe()}")
    lines.append(f"ort:<Provider>: as ort-cpu, or as ort-cuda for GPU providers ({', '.join(ORT_GPU_DEVICES)})")
    return "\n".join(lines)
