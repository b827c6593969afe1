"""Time shares by op category (ShuffleNet V2 Fig. 2): Conv, Elemwise, Data, Shuffle, Other.

Two sources, both reported as percentages of profiled time only (profiling adds overhead, so its absolute times are
not latencies):

- ONNX Runtime's per-node profile (CPU, ARM): ``Node`` events ending in ``_kernel_time``, the first run skipped as
  ORT's profile_explorer does. A node belongs to Shuffle when the exporter recorded it as part of a
  ``ChannelShuffle`` module (``pkg.torch.onnx.class_hierarchy`` metadata); at full graph optimisation BN folds into
  Conv and activations fuse into it, so the breakdown is taken at both levels and labelled.
- torch.profiler [torch]: ATen ops' self CPU time, and on a CUDA device also their self device (kernel) time at the
  paper's GPU batch of 8, with the ops that run inside a ``ChannelShuffle`` module counted as Shuffle.

Ops are grouped by the one vocabulary of shufflebench.categories.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from shufflebench.categories import FIGURE2, aten_kind, figure2, onnx_kind
from shufflebench.errors import UserError

CATEGORIES = FIGURE2


def onnx_category(op_type: str) -> str:
    return figure2(onnx_kind(op_type))


def aten_category(name: str) -> str:
    return figure2(aten_kind(name) or "other")


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
    events = _ort_profile(model, input_shape, opt_level=opt_level, threads=threads, runs=runs, workdir=workdir)
    return parse_ort_profile(events, shuffle_nodes(model))


def _ort_profile(
    model: Path,
    input_shape: tuple[int, ...],
    *,
    opt_level: str,
    threads: int,
    runs: int,
    workdir: Path,
    optimized: Path | None = None,
) -> list[dict[str, Any]]:
    """The events of ``runs`` + 1 profiled runs on ONNX Runtime's CPU provider (the graph it ran saved to
    ``optimized`` when given)."""
    import numpy as np
    import onnxruntime as ort

    from shufflebench.backends.ort_backend import session_options

    workdir.mkdir(parents=True, exist_ok=True)
    so = session_options(threads=threads, opt_level=opt_level, profile_prefix=str(workdir / "ort_profile"))
    if optimized is not None:
        so.optimized_model_filepath = str(optimized)
    session = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.random.default_rng(0).standard_normal(input_shape, dtype=np.float32)}
    for _ in range(runs + 1):
        session.run(None, feed)
    profile = Path(session.end_profiling())
    events = json.loads(profile.read_text())
    profile.unlink()
    return events["traceEvents"] if isinstance(events, dict) else events


def node_times(
    model: Path, input_shape: tuple[int, ...], *, threads: int = 1, runs: int = 20, workdir: Path
) -> list[dict[str, Any]]:
    """Every node of the graph ONNX Runtime runs at opt_level all, with its FLOPs, bytes moved and mean time per run
    (the first run skipped): the points of a per-node roofline."""
    from shufflebench import onnx_cost

    optimized = workdir / f"{model.stem}.optimized.onnx"
    events = _ort_profile(
        model, input_shape, opt_level="all", threads=threads, runs=runs, workdir=workdir, optimized=optimized
    )
    starts = sorted(e["ts"] for e in events if e.get("name") == "model_run")
    first = starts[1] if len(starts) > 1 else float("-inf")
    micros: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and e["ts"] >= first:
            micros[e["name"].removesuffix("_kernel_time")] += e["dur"] / runs
    costs = onnx_cost.count(optimized, input_shape, onnx_cost.run_shapes(optimized, input_shape), runtime=True)
    return [
        {
            "node": n.name,
            "op": n.op,
            "op_class": n.op_class,
            "flops": n.flops,
            "mac_bytes": n.mac_bytes,
            "time_us": round(micros[n.name], 3),
        }
        for n in costs.nodes
        if n.name in micros
    ]


def torch_breakdown(
    module: Any, input_shape: tuple[int, ...], *, threads: int = 1, runs: int = 20, device: str = "cpu"
) -> dict[str, float]:
    """Profile ``runs`` calls with torch.profiler; microseconds per category. [torch]

    On the CPU an op's time is its self CPU time; on CUDA it is the self device time of the op, i.e. the kernels the
    op itself launched, so the host-side launch cost is not counted as the op's.
    """
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile, record_function

    from shufflebench.blocks.layers import ChannelShuffle

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


NODE_ROOFLINE = ("shufflenet_v2 1x", "shufflenet_v2", {"width": 1.0})
NODE_COLUMNS = ["network", "node", "op", "op_class", "flops", "mac_bytes", "time_us"]


def profile_figure2(folder: Path, runs: int = 20) -> Path:
    """Profile Figure 2's two networks with ORT (optimisation off and on) and torch (CPU, and CUDA where torch sees a
    GPU) into ``breakdown.csv``, and ShuffleNet V2's nodes on ORT into ``node_roofline.csv``. [torch]"""
    from shufflebench import blocks
    from shufflebench.export import export
    from shufflebench.results import write_rows

    for label, name, args in FIGURE2_NETWORKS:
        path = profile(folder, label, name, args, runs)
    label, name, args = NODE_ROOFLINE
    workload = blocks.build(name, **args)
    model = folder / "onnx" / f"breakdown-{name}.onnx"
    export(workload.module, workload.input_shape, model)
    nodes = node_times(model, workload.input_shape, runs=runs, workdir=folder / "onnx")
    write_rows(folder / "node_roofline.csv", [{"network": label, **n} for n in nodes], NODE_COLUMNS)
    return path


def profile(folder: Path, label: str, name: str, args: dict[str, Any], runs: int = 20) -> Path:
    """Time shares of one workload (a registered name, an import path or an .onnx file) by category, from every
    source that can run it here, into ``folder/breakdown.csv`` under ``label`` (replacing that label's rows)."""
    from shufflebench import workloads
    from shufflebench.results import read_table, write_rows

    sources: dict[str, dict[str, float]] = {}
    if workloads.is_onnx(name):  # the user's graph, on ONNX Runtime only
        canonical, _ = workloads.onnx_args(name, args, "command line")
        model, shape, module = Path(name), workloads.onnx_input_shape(Path(name), canonical, 1), None
    else:
        from shufflebench import blocks
        from shufflebench.export import export

        try:
            workload = blocks.build(name, **args)
        except blocks.WorkloadError as e:
            raise UserError(f"command line: {e}") from None
        module, shape = workload.module, workload.input_shape
        model = folder / "onnx" / f"breakdown-{Path(name.replace(':', '-')).name}.onnx"
        export(module, shape, model)
    for level in ("disable", "all"):
        sources[f"ort-cpu opt={level}"] = ort_breakdown(
            model, shape, opt_level=level, runs=runs, workdir=folder / "onnx"
        )
    if module is not None:
        import torch

        sources["torch-cpu"] = torch_breakdown(module, shape, runs=runs)
        if torch.cuda.is_available():  # the paper's GPU batch, 8
            gpu_shape = (GPU_BATCH, *shape[1:])
            sources[f"torch-cuda batch={GPU_BATCH}"] = torch_breakdown(module, gpu_shape, runs=runs, device="cuda")
    path = folder / "breakdown.csv"
    kept = [r for r in read_table(path, required="category")[0] if r["network"] != label] if path.exists() else []
    rows = [
        {
            "network": label,
            "source": source,
            "category": category,
            "percent": round(percent, 2),
            "time_us": round(totals.get(category, 0.0), 1),
        }
        for source, totals in sources.items()
        for category, percent in shares(totals).items()
    ]
    write_rows(path, kept + rows, BREAKDOWN_COLUMNS)
    return path
