"""ONNX Runtime with any execution provider; needs onnxruntime and numpy only (no torch).

Session settings are explicit: the provider and its options, intra-op threads, one inter-op
thread, sequential execution and the graph optimisation level. Input and output are bound once with IOBinding on the
provider's device (outputs preallocated where their shape is static), so a timed ``run_with_iobinding`` does no
host-device copies.

GPU providers are timed as torch-cuda is (docs/design-notes.md, "What a GPU cell measures"): ``time(n)`` is per-call
latency, because ``run`` synchronises the provider's stream before it returns; ``time_pipelined(n)``
queues ``n - 1`` runs with that synchronisation switched off and lets the last run wait for all of them. The CUDA
provider's options are set from the cell, never left to ORT's defaults: ``use_tf32`` follows ``tf32`` (ORT turns it on
by default, torch-cuda off), ``cudnn_conv_algo_search`` follows ``cudnn_benchmark`` (EXHAUSTIVE, as cuDNN's benchmark
mode, or HEURISTIC), and ``enable_cuda_graph`` follows ``cuda_graph``. Every node must run on the requested provider:
a session that placed compute nodes on the CPU says so in its ``warnings``.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnxruntime as ort

from shufflebench.backends import ORT_GPU_DEVICES
from shufflebench.backends import cache
from shufflebench.probe import (
    CPU_MATMUL_SIZES,
    NOISE_N,
    Roofs,
    best_seconds,
    fastest_conv,
    fastest_matmul,
    noise,
    roofs,
)

OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
# Nodes ONNX Runtime deliberately keeps on the CPU next to a GPU provider: shape arithmetic, not compute.
SHAPE_OPS = frozenset({"Shape", "Size", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Range"})


class OrtTimed:
    def __init__(
        self,
        session: ort.InferenceSession,
        binding: ort.IOBinding,
        info: dict[str, Any],
        *,
        asynchronous: bool,
        keep: list[Any],
        evict: cache.Evictor | None = None,
    ) -> None:
        self.session, self.binding, self.info, self.asynchronous = session, binding, info, asynchronous
        self.evict = evict
        # The input array and the OrtValues live as long as the session: releases before 1.32 keep no reference to
        # a bound OrtValue, so dropping ours would time runs on freed memory.
        self.keep = keep
        self.no_sync = ort.RunOptions()
        self.no_sync.add_run_config_entry("disable_synchronize_execution_providers", "1")

    def time(self, n: int) -> float:
        """Seconds for ``n`` runs, each synchronised by ORT before it returns: per-call latency."""
        run, binding = self.session.run_with_iobinding, self.binding
        if self.evict is not None:
            return cache.time_cold(lambda: run(binding), n, self.evict)
        start = time.perf_counter()
        for _ in range(n):
            run(binding)
        return time.perf_counter() - start

    def time_pipelined(self, n: int) -> float:
        """Seconds for ``n`` runs queued back to back; only the last one synchronises: throughput."""
        run, binding, no_sync = self.session.run_with_iobinding, self.binding, self.no_sync
        start = time.perf_counter()
        for _ in range(n - 1):
            run(binding, no_sync)
        if n:
            run(binding)
        return time.perf_counter() - start


def session_options(
    *, threads: int | None, opt_level: str, spinning: bool | None = None, profile_prefix: str | None = None
) -> ort.SessionOptions:
    so = ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = threads
    if spinning is not None:  # spinning intra-op threads answer sooner and burn a core while they wait
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = OPT_LEVELS[opt_level]
    so.log_severity_level = 3  # errors only: the worker's stderr is kept for real failures
    if profile_prefix is not None:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return so


def provider_options(provider: str, settings: dict[str, Any]) -> dict[str, str]:
    """The options ``provider`` is created with; every CUDA option that changes speed is explicit."""
    if provider == "CUDAExecutionProvider":
        return {
            "device_id": "0",
            "use_tf32": str(int(settings["tf32"])),
            "cudnn_conv_algo_search": "EXHAUSTIVE" if settings["cudnn_benchmark"] else "HEURISTIC",
            "enable_cuda_graph": str(int(settings["cuda_graph"])),
            "do_copy_in_default_stream": "1",
        }
    if provider in ORT_GPU_DEVICES:
        return {"device_id": "0"}
    return {}


def float16_model(model: Path) -> bytes:
    """``model`` with float16 weights, activations, input and output (ONNX Runtime's own converter)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(onnx.load(str(model)), keep_io_types=False).SerializeToString()


def prepare(model: Path, input_shape: tuple[int, ...], *, provider: str, settings: dict[str, Any]) -> OrtTimed:
    """An ORT session for ``model`` on ``provider`` with a random input of ``input_shape`` bound on its device.

    ``settings`` holds every setting the backend declares (shufflebench.backends; ``Backend.defaults()`` fills them in).
    """
    device = ORT_GPU_DEVICES.get(provider, "cpu")
    if device == "cuda" and hasattr(ort, "preload_dlls"):
        ort.preload_dlls()  # CUDA and cuDNN from pip's nvidia-* packages, where ORT would not find them itself
    options = provider_options(provider, settings)
    # settings a provider does not declare are None: CPU providers run the model's own dtype, GPU ones own threads
    source: str | bytes = float16_model(model) if settings.get("dtype") == "float16" else str(model)
    with tempfile.TemporaryDirectory(prefix="shufflebench-ort-") as tmp:
        profile = str(Path(tmp) / "placement") if provider != "CPUExecutionProvider" else None
        so = session_options(
            threads=settings.get("threads"),
            opt_level=settings["opt_level"],
            spinning=settings.get("spinning"),
            profile_prefix=profile,
        )
        session = ort.InferenceSession(source, so, providers=[(provider, options)])
        used = session.get_providers()[0]
        if used != provider:
            raise RuntimeError(f"ONNX Runtime fell back to {used} instead of {provider}")
        binding, keep = bind(session, input_shape, device)
        warnings: list[str] = []
        if profile is not None:  # one profiled run says where every node ran; profiling stops after it
            session.run_with_iobinding(binding)
            placement = node_placement(json.loads(Path(session.end_profiling()).read_text()))
            warnings = placement_warnings(placement, provider)
    info = {
        "onnxruntime": ort.__version__,
        "provider": used,
        "provider_options": session.get_provider_options().get(provider, {}),
        **settings,
        "session_options": {
            "intra_op_num_threads": so.intra_op_num_threads,
            "inter_op_num_threads": so.inter_op_num_threads,
            "execution_mode": str(so.execution_mode),
            "graph_optimization_level": str(so.graph_optimization_level),
            "allow_spinning": (
                so.get_session_config_entry("session.intra_op.allow_spinning") if "spinning" in settings else None
            ),
        },
        "io_device": device,
        "warnings": warnings,
    }
    evict = cache.Evictor() if settings.get("cache") == "cold" else None
    return OrtTimed(session, binding, info, asynchronous=device != "cpu", keep=keep, evict=evict)


def runtime_cost(
    model: Path, input_shape: tuple[int, ...], *, provider: str, settings: dict[str, Any]
) -> dict[str, Any]:
    """The cost of the graph ONNX Runtime makes of ``model`` with a cell's settings (its optimisation level, and on
    the CPU the NCHWc layout this machine's ISA gets): the same for every process of a cell, so counted once, in
    preparation (shufflebench.preparation)."""
    source: str | bytes = float16_model(model) if settings.get("dtype") == "float16" else str(model)
    with tempfile.TemporaryDirectory(prefix="shufflebench-ort-") as tmp:
        so = session_options(
            threads=settings.get("threads"), opt_level=settings["opt_level"], spinning=settings.get("spinning")
        )
        so.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(source, so, providers=[(provider, provider_options(provider, settings))])
        return optimized_cost(Path(so.optimized_model_filepath), input_shape, cpu=provider == "CPUExecutionProvider")


def optimized_cost(path: Path, input_shape: tuple[int, ...], cpu: bool) -> dict[str, Any]:
    """MAC and op counts of the graph ONNX Runtime made of the model at this cell's optimisation level
    (shufflebench.onnx_cost), with the CPU's kernels where ``cpu``; ``{"error": ...}`` where it cannot be counted
    (no onnx package, a graph it cannot read)."""
    try:
        from shufflebench import onnx_cost

        counted = onnx_cost.count(path, input_shape, onnx_cost.run_shapes(path, input_shape), runtime=cpu)
    except Exception as e:  # noqa: BLE001 - counting is an extra: the cell is measured all the same
        return {"error": f"{type(e).__name__}: {e}"}
    return {
        "mac": counted.mac,
        "mac_bytes": counted.mac_bytes,
        "flops": counted.flops,
        "ops": dict(counted.ops),
        "classes": counted.by_class(),
        "unknown_shapes": counted.unknown_shapes,
    }


def bind(session: ort.InferenceSession, input_shape: tuple[int, ...], device: str) -> tuple[ort.IOBinding, list]:
    """Bind a random input and the outputs on ``device``; returns the binding and the values it must outlive."""
    first = session.get_inputs()[0]
    x = np.random.default_rng(0).standard_normal(input_shape, dtype=np.float32).astype(NUMPY_TYPES[first.type])
    value = ort.OrtValue.ortvalue_from_numpy(x, device, 0)
    binding = session.io_binding()
    binding.bind_ortvalue_input(first.name, value)
    keep: list[Any] = [x, value]
    for output in session.get_outputs():
        if all(isinstance(d, int) for d in output.shape):  # static: a fixed buffer, as CUDA graphs need
            buffer = ort.OrtValue.ortvalue_from_shape_and_type(output.shape, NUMPY_TYPES[output.type], device, 0)
            binding.bind_ortvalue_output(output.name, buffer)
            keep.append(buffer)
        else:
            binding.bind_output(output.name, device)
    return binding, keep


def node_placement(profile: list[dict[str, Any]]) -> Counter:
    """(provider, op type) -> node count, from an ORT profile's node events."""
    seen = {
        e["name"]: (e["args"].get("provider", "?"), e["args"].get("op_name", "?"))
        for e in profile
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")
    }
    return Counter(seen.values())


def placement_warnings(placement: Counter, provider: str) -> list[str]:
    """What to say when nodes ran somewhere other than ``provider``."""
    elsewhere = Counter()
    for (where, op), n in placement.items():
        if where != provider:
            elsewhere[op] += n
    if not elsewhere:
        return []
    ops = ", ".join(f"{n} {op}" for op, n in sorted(elsewhere.items()))
    compute = "" if set(elsewhere) <= SHAPE_OPS else " (compute nodes among them)"
    return [f"nodes not on {provider}: {ops}{compute}; check this provider's support for those ops"]


PROBES = Path(__file__).resolve().parents[1] / "probes"


def _probe_call(
    name: str,
    shapes: dict[str, tuple[int, ...]],
    provider: str,
    threads: int | None,
    dims: dict[str, int] | None = None,
) -> Callable[[], None]:
    """A call of probe graph ``name`` on ``provider``, its inputs and outputs bound on the provider's device (run()
    waits for it), no graph optimisation; a graph with symbolic ``dims`` given has them fixed and is optimised as
    cells are (the convolution chain's weight folds into a constant and its convolutions into blocked ones)."""
    device = ORT_GPU_DEVICES.get(provider, "cpu")
    options = provider_options(provider, {"tf32": False, "cudnn_benchmark": True, "cuda_graph": False})
    so = session_options(threads=threads, opt_level="all" if dims else "disable")
    for dim, size in (dims or {}).items():
        so.add_free_dimension_override_by_name(dim, size)
    session = ort.InferenceSession(str(PROBES / f"{name}.onnx"), so, providers=[(provider, options)])
    binding = session.io_binding()
    values = {k: ort.OrtValue.ortvalue_from_shape_and_type(shape, np.float32, device, 0) for k, shape in shapes.items()}
    for item in session.get_inputs():
        binding.bind_ortvalue_input(item.name, values[item.name])
    for item in session.get_outputs():
        binding.bind_ortvalue_output(item.name, values[item.name])
    return lambda: session.run_with_iobinding(binding)


def square(n: int, provider: str, threads: int | None) -> Callable[[], None]:
    """One call of an n x n fp32 matrix product (the MatMul probe graph); n = NOISE_N is the noise floor's kernel."""
    return _probe_call("matmul", {"a": (n, n), "b": (n, n), "c": (n, n)}, provider, threads)


def conv_chain(c: int, hw: int, provider: str, threads: int | None) -> Callable[[], None]:
    """One call of the chain of 1x1 convolutions (the Conv probe graph) on c channels of an hw x hw image."""
    image = (1, c, hw, hw)
    return _probe_call("conv1x1", {"x": image, "y": image}, provider, threads, {"c": c, "hw": hw})


def probe(provider: str, threads: int | None) -> Roofs:
    """This device's roofs with ONNX Runtime's kernels on ``provider``: the MatMul, Conv (on a CPU) and Mul graphs of
    shufflebench/probes (shufflebench.probe)."""
    on_gpu = provider in ORT_GPU_DEVICES
    sizes, nbytes = ((4096,), 2**30) if on_gpu else (CPU_MATMUL_SIZES, 2**28)
    matmul, n = fastest_matmul(lambda n: best_seconds(square(n, provider, threads)), sizes)
    conv = None if on_gpu else fastest_conv(lambda c, hw: best_seconds(conv_chain(c, hw, provider, threads)))
    copy = best_seconds(_probe_call("scale", {"x": (nbytes // 4,), "y": (nbytes // 4,)}, provider, threads))
    return roofs(matmul, n, copy, nbytes, noise(square(NOISE_N, provider, threads)), conv)
