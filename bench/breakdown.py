"""Time shares by op category (ShuffleNet V2 Fig. 2): Conv, Elemwise, Data, Shuffle, Other.

Two sources, both reported as percentages of profiled time only (profiling adds overhead, so its absolute times are
not latencies):

- ONNX Runtime's per-node profile (CPU, ARM): ``Node`` events ending in ``_kernel_time``, the first run skipped as
  ORT's profile_explorer does. A node belongs to Shuffle when the exporter recorded it as part of a
  ``ChannelShuffle`` module (``pkg.torch.onnx.class_hierarchy`` metadata); at full graph optimisation BN folds into
  Conv and activations fuse into it, so the breakdown is taken at both levels and labelled.
- torch.profiler [torch]: ATen ops' self CPU time, and on a CUDA device also their self device (kernel) time at the
  paper's GPU batch of 8, with the ops that run inside a ``ChannelShuffle`` module counted as Shuffle.

The op -> category map is the one table below (methodology section 9.3).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

CATEGORIES = ("Conv", "Elemwise", "Data", "Shuffle", "Other")

# category -> (ONNX op types, ATen op names); anything unlisted is Other.
CATEGORY_MAP: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "Conv": (
        frozenset({"Conv", "FusedConv", "ConvTranspose", "Gemm", "MatMul", "NchwcConv", "QLinearConv"}),
        frozenset(
            {
                "aten::convolution",
                "aten::_convolution",
                "aten::mkldnn_convolution",
                "aten::cudnn_convolution",
                "aten::conv2d",
                "aten::addmm",
                "aten::mm",
                "aten::linear",
                "aten::_slow_conv2d_forward",
                "aten::thnn_conv2d",
                "aten::_conv_depthwise2d",
                "aten::convolution_overrideable",
                "aten::_nnpack_spatial_convolution",
            }
        ),
    ),
    "Elemwise": (
        frozenset(
            {
                "Relu",
                "Clip",
                "Add",
                "Mul",
                "Sum",
                "Sigmoid",
                "HardSigmoid",
                "BatchNormalization",
                "Div",
                "Sub",
                "Swish",
                "FusedMul",
                "FusedAdd",
            }
        ),
        frozenset(
            {
                "aten::relu",
                "aten::relu_",
                "aten::add",
                "aten::add_",
                "aten::mul",
                "aten::mul_",
                "aten::batch_norm",
                "aten::native_batch_norm",
                "aten::_native_batch_norm_legit_no_training",
                "aten::hardtanh",
                "aten::hardtanh_",
                "aten::sigmoid",
                "aten::silu",
                "aten::silu_",
                "aten::clamp",
                "aten::clamp_",
                "aten::clamp_min",
                "aten::clamp_min_",
                "aten::_batch_norm_impl_index",
            }
        ),
    ),
    "Data": (
        frozenset(
            {
                "Concat",
                "Split",
                "Slice",
                "Reshape",
                "Transpose",
                "Flatten",
                "Identity",
                "Cast",
                "Squeeze",
                "Unsqueeze",
                "MemcpyFromHost",
                "MemcpyToHost",
                "ReorderInput",
                "ReorderOutput",
                "Gather",
            }
        ),
        frozenset(
            {
                "aten::cat",
                "aten::split",
                "aten::chunk",
                "aten::slice",
                "aten::copy_",
                "aten::contiguous",
                "aten::clone",
                "aten::to",
                "aten::view",
                "aten::transpose",
                "aten::reshape",
                "aten::flatten",
                "aten::empty",
                "aten::narrow",
                "aten::_to_copy",
            }
        ),
    ),
}


def onnx_category(op_type: str) -> str:
    return next((c for c, (onnx_ops, _) in CATEGORY_MAP.items() if op_type in onnx_ops), "Other")


def aten_category(name: str) -> str:
    return next((c for c, (_, aten_ops) in CATEGORY_MAP.items() if name in aten_ops), "Other")


def shuffle_nodes(model_path: Path) -> set[str]:
    """Names of the ONNX nodes exported from a ChannelShuffle module."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    return {
        node.name
        for node in model.graph.node
        if any(p.key == "pkg.torch.onnx.class_hierarchy" and "ChannelShuffle" in p.value for p in node.metadata_props)
    }


def parse_ort_profile(events: list[dict[str, Any]] | dict[str, Any], shuffle: set[str]) -> dict[str, float]:
    """Microseconds per category from an ORT profile (a Chrome trace), skipping the first run."""
    if isinstance(events, dict):
        events = events["traceEvents"]
    runs = sorted(e["ts"] for e in events if e.get("name") == "model_run")
    start = runs[1] if len(runs) > 1 else float("-inf")
    totals: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time") or e["ts"] < start:
            continue
        node = e["name"].removesuffix("_kernel_time")
        category = "Shuffle" if node in shuffle else onnx_category(e["args"]["op_name"])
        totals[category] += e["dur"]
    return dict(totals)


def ort_breakdown(
    model: Path, input_shape: tuple[int, ...], *, opt_level: str, threads: int = 1, runs: int = 20, workdir: Path
) -> dict[str, float]:
    """Profile ``runs`` ORT runs of ``model`` on the CPU and return microseconds per category."""
    import numpy as np
    import onnxruntime as ort

    from bench.backends.ort_backend import session_options

    workdir.mkdir(parents=True, exist_ok=True)
    so = session_options(threads=threads, opt_level=opt_level, profile_prefix=str(workdir / "ort_profile"))
    session = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.random.default_rng(0).standard_normal(input_shape, dtype=np.float32)}
    for _ in range(runs + 1):
        session.run(None, feed)
    profile = Path(session.end_profiling())
    events = json.loads(profile.read_text())
    profile.unlink()
    return parse_ort_profile(events, shuffle_nodes(model))


def torch_breakdown(
    module: Any, input_shape: tuple[int, ...], *, threads: int = 1, runs: int = 20, device: str = "cpu"
) -> dict[str, float]:
    """Profile ``runs`` calls with torch.profiler; microseconds per category. [torch]

    On the CPU an op's time is its self CPU time; on CUDA it is the self device time of the op, i.e. the kernels the
    op itself launched (methodology section 9), so the host-side launch cost is not counted as the op's.
    """
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile, record_function

    from blocks.layers import ChannelShuffle

    torch.set_num_threads(threads)
    module = module.eval().to(device)
    x = torch.randn(input_shape, device=device)
    on_gpu = device != "cpu"
    activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA] if on_gpu else [ProfilerActivity.CPU]
    contexts: dict[int, Any] = {}

    def enter(mod: Any, _: Any) -> None:
        contexts[id(mod)] = record_function("channel_shuffle")
        contexts[id(mod)].__enter__()

    def leave(mod: Any, _: Any, __: Any) -> None:
        contexts.pop(id(mod)).__exit__(None, None, None)

    handles = [
        h
        for m in module.modules()
        if isinstance(m, ChannelShuffle)
        for h in (m.register_forward_pre_hook(enter), m.register_forward_hook(leave))
    ]
    try:
        with torch.inference_mode():
            for _ in range(3):
                module(x)
            with profile(activities=activities) as prof:
                for _ in range(runs):
                    module(x)
                if on_gpu:
                    torch.cuda.synchronize()
    finally:
        for h in handles:
            h.remove()
    totals: dict[str, float] = defaultdict(float)
    for event in prof.events():
        if event.name == "channel_shuffle" or event.device_type != DeviceType.CPU:
            continue  # kernels are counted through the op that launched them
        parent, in_shuffle = event.cpu_parent, False
        while parent is not None:
            in_shuffle = in_shuffle or parent.name == "channel_shuffle"
            parent = parent.cpu_parent
        spent = event.self_device_time_total if on_gpu else event.self_cpu_time_total
        totals["Shuffle" if in_shuffle else aten_category(event.name)] += spent
    return dict(totals)


def shares(totals: dict[str, float]) -> dict[str, float]:
    """Percent of the total per category, every category present."""
    total = sum(totals.values()) or 1.0
    return {c: 100 * totals.get(c, 0.0) / total for c in CATEGORIES}


FIGURE2_NETWORKS = [
    ("shufflenet_v1 1x g=3", "shufflenet_v1", {"groups": 3, "width": 1.0}),
    ("mobilenet_v2 1x", "mobilenet_v2", {"width": 1.0}),
]
BREAKDOWN_COLUMNS = ["network", "source", "category", "percent", "time_us"]
GPU_BATCH = 8


def profile_figure2(folder: Path, runs: int = 20) -> Path:
    """Profile Figure 2's two networks with ORT (optimisation off and on) and torch (CPU, and CUDA where torch sees a
    GPU); write ``breakdown.csv``. [torch]"""
    import blocks
    from bench.export import export
    from bench.results import write_rows

    import torch

    rows = []
    for label, name, args in FIGURE2_NETWORKS:
        workload = blocks.build(name, **args)
        model = folder / "onnx" / f"breakdown-{name}.onnx"
        export(workload.module, workload.input_shape, model)
        sources = {
            f"ort-cpu opt={level}": ort_breakdown(
                model, workload.input_shape, opt_level=level, runs=runs, workdir=folder / "onnx"
            )
            for level in ("disable", "all")
        }
        sources["torch-cpu"] = torch_breakdown(workload.module, workload.input_shape, runs=runs)
        if torch.cuda.is_available():  # the paper's GPU batch, 8
            gpu_shape = workload.batched(GPU_BATCH)
            sources[f"torch-cuda batch={GPU_BATCH}"] = torch_breakdown(
                workload.module, gpu_shape, runs=runs, device="cuda"
            )
        for source, totals in sources.items():
            for category, percent in shares(totals).items():
                rows.append(
                    {
                        "network": label,
                        "source": source,
                        "category": category,
                        "percent": round(percent, 2),
                        "time_us": round(totals.get(category, 0.0), 1),
                    }
                )
    path = folder / "breakdown.csv"
    write_rows(path, rows, BREAKDOWN_COLUMNS)
    return path
