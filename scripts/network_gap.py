"""What a whole network adds to the time of its ops: the experiment behind the predictor's cold-cache calibration.

For one network on ONNX Runtime (CPU, one thread, all optimisations), every node of the graph ORT runs is timed three
ways and summed by op class:

- in the network: ORT's own profile of the whole run (mean per run, the first run skipped);
- isolated, warm: the node alone as a one-node model, called back to back, so that its weights and input stay in
  cache (what a calibration cell measures);
- isolated, L2 or L3 evicted: the same, with a buffer of 4x the L2 or 4x the last-level cache written before every
  call (not timed), so that weights and input come from the L3 or from memory.

It also prints the run's wall time against the sum of its nodes' profiled times (what the runtime spends between
nodes). On torch every ATen op the network dispatches is timed the same three ways, inside the network by a dispatch
mode around the kernel call, in rounds interleaved with plain runs of the network. Run it with the heap a torch worker
has (the ``malloc: steady`` setting):
``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296
python scripts/network_gap.py [shufflenet_v2 width=1.0]``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

CALLS = 100
ROUNDS = 9  # torch: rounds of the network run plainly, with its ops timed inside, and its ops alone


def _flush_buffers() -> dict[str, np.ndarray]:
    """Buffers of 4x the L2 and 4x the last-level cache: writing one before a call evicts that level."""
    from shufflebench import device

    caches = device.collect()["cpu"]["caches_kb"]
    return {level: np.zeros(4 * caches[level] * 1024 // 8) for level in ("l2", "l3")}


def _median_call(call, flush: np.ndarray | None, overhead: float = 0.0, calls: int = CALLS) -> float:
    """Median seconds of one call over ``calls`` calls less ``overhead``, the buffer written before each when given."""
    times = []
    for _ in range(calls if flush is None or flush.nbytes < 2**24 else max(calls // 4, 1)):
        if flush is not None:
            flush += 1.0
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start - overhead)
    return statistics.median(times)


Gap = tuple[float, dict[str, list[float]], dict[str, list[int]]]


def ort_gap(name: str, args: dict, flush: dict[str, np.ndarray]) -> Gap:
    """The run's microseconds; per op class, microseconds [in network, alone warm, L2 evicted, L3 evicted]; and the
    graph as the predictor sees it, {class: [ops, FLOPs, bytes]}."""
    import onnx
    import onnxruntime as ort

    from shufflebench import onnx_cost
    from shufflebench.backends.ort_backend import session_options
    from shufflebench.blocks import registry
    from shufflebench.breakdown import node_times
    from shufflebench.categories import aggregate_classes
    from shufflebench.export import export

    built = registry.build(name, **args)
    module, shape = built.module, (1, *built.sample_shape)
    work = Path(tempfile.mkdtemp())
    export(module.eval(), shape, work / "net.onnx")
    nodes = node_times(work / "net.onnx", shape, runs=50, workdir=work)
    optimized = onnx.load(str(work / "net.optimized.onnx"))
    shapes = onnx_cost.run_shapes(work / "net.optimized.onnx", shape)
    shapes[optimized.graph.input[0].name] = list(shape)
    session = ort.InferenceSession(str(work / "net.onnx"), session_options(threads=1, opt_level="all"))
    x = {session.get_inputs()[0].name: np.random.default_rng(0).standard_normal(shape, dtype=np.float32)}
    run = _median_call(lambda: session.run(None, x), None)
    overhead = _ort_call_overhead()
    initializers = {i.name: i for i in optimized.graph.initializer}
    by_name = {n.name: n for n in optimized.graph.node}
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for node in nodes:
        proto = by_name[node["node"]]
        feeds = [i for i in proto.input if i and i not in initializers]
        graph = onnx.helper.make_graph(
            [proto],
            "one",
            [onnx.helper.make_tensor_value_info(i, onnx.TensorProto.FLOAT, shapes[i]) for i in feeds],
            [onnx.helper.make_empty_tensor_value_info(o) for o in proto.output if o],
            [initializers[i] for i in proto.input if i in initializers],
        )
        one = onnx.helper.make_model(graph, opset_imports=optimized.opset_import, ir_version=optimized.ir_version)
        alone = ort.InferenceSession(one.SerializeToString(), session_options(threads=1, opt_level="disable"))
        feed = {i: np.random.default_rng(1).standard_normal(shapes[i], dtype=np.float32) for i in feeds}
        row = totals[node["op_class"]]
        row[0] += node["time_us"]
        for i, buffer in enumerate((None, flush["l2"], flush["l3"]), 1):
            row[i] += _median_call(lambda: alone.run(None, feed), buffer, overhead) * 1e6
    return run * 1e6, totals, aggregate_classes((n["op_class"], n["flops"], n["mac_bytes"]) for n in nodes)


def _ort_call_overhead() -> float:
    """Seconds of one ``run`` of a one-node session on one float: Python and the runtime's own cost per call."""
    import onnx
    import onnxruntime as ort

    value = [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1]) for n in ("x", "y")]
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "id", value[:1], value[1:])
    session = ort.InferenceSession(onnx.helper.make_model(graph).SerializeToString())
    feed = {"x": np.zeros(1, np.float32)}
    return _median_call(lambda: session.run(None, feed), None)


def torch_gap(name: str, args: dict, flush: dict[str, np.ndarray]) -> Gap:
    """The ATen ops a torch network dispatches, each timed inside the network (a dispatch mode times the kernel call
    and nothing of its own) and alone on the same arguments, in ROUNDS interleaved with plain runs of the network, so
    that the machine's drift falls on both sides alike. Returns what ort_gap returns."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from shufflebench import cost
    from shufflebench.blocks import registry
    from shufflebench.categories import aggregate_classes

    class Timed(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[tuple] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 (torch's signature)
            kwargs = kwargs or {}
            start = time.perf_counter()
            out = func(*args, **kwargs)
            self.calls.append((func, args, kwargs, out, time.perf_counter() - start - overhead))
            return out

    torch.set_num_threads(1)
    built = registry.build(name, **args)
    module, x = built.module.eval(), torch.randn(1, *built.sample_shape)
    runs, inside, alone = [], [], []
    with torch.no_grad():  # as the cost counter runs it: the dispatch mode sees the kernels, not composite ops
        module(x)
        one = torch.zeros(1)
        overhead = _median_call(lambda: torch.ops.aten.alias.default(one), None)  # calling an op from Python
        for _ in range(ROUNDS):
            runs.append(_median_call(lambda: module(x), None, calls=5))
            timed = Timed()
            with timed:
                module(x)
            inside.append([c[-1] for c in timed.calls])
            alone.append(
                [
                    [
                        _median_call(lambda: func(*a, **kw), buffer, overhead, calls=3)
                        for buffer in (None, flush["l2"], flush["l3"])
                    ]
                    for func, a, kw, _, _ in timed.calls
                ]
            )
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    costs = [cost.op_cost(func, a, kw, out, "") for func, a, kw, out, _ in timed.calls]
    for i, op in enumerate(costs):
        row = totals[op.op_class]
        row[0] += statistics.median(r[i] for r in inside) * 1e6
        for level in range(3):
            row[level + 1] += statistics.median(r[i][level] for r in alone) * 1e6
    return statistics.median(runs) * 1e6, totals, aggregate_classes((o.op_class, o.flops, o.mac_bytes) for o in costs)


def predicted_us(backend: str, classes: dict[str, list[int]]) -> dict[str, float]:
    """Microseconds per class (and the call) that this device's fitted predictor sums for the graph, one thread;
    empty where the device has no calibration of that backend in results/."""
    from shufflebench import device, predict, results

    model = predict.models_for(results.device_rows(Path("results") / device.collect()["device_id"])).get((backend, 1))
    return {} if model is None else {k: v * 1e3 for k, v in model.contributions(classes).items()}


def _print(title: str, gap: Gap, predicted: dict[str, float], inside: str) -> None:
    run_us, totals, classes = gap
    print(f"\n{title}: the whole run {run_us:.0f} us")
    print("microseconds per run; alone: the op by itself, its call overhead subtracted, warm or after evicting a level")
    print("predicted: the sum of ops of the predictor fitted on results/<device id>/ (before its network factor)")
    head = ("in network", "alone warm", "L2 evicted", "L3 evicted", "predicted")
    print(f"{'class':18} {'nodes':>5} " + " ".join(f"{h:>11}" for h in head))
    sums = np.zeros(5)
    for name in sorted(totals, key=lambda k: -totals[k][2]) + ["call"] * ("call" in predicted):
        times = [*totals.get(name, [0.0] * 4), predicted.get(name, np.nan)]
        sums += np.nan_to_num(times)
        print(f"{name:18} {classes.get(name, [0])[0]:5} " + " ".join(f"{t:11.0f}" for t in times))
    print(f"{'total':18} {'':5} " + " ".join(f"{t:11.0f}" for t in sums))
    print(f"{inside}: {sums[0]:.0f} us of the run's {run_us:.0f} us ({sums[0] / run_us:.0%})")
    print("sums alone, and predicted, as a share of the whole run: " + ", ".join(f"{t / run_us:.0%}" for t in sums[1:]))


if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "shufflenet_v2"
    args = dict(a.split("=") for a in sys.argv[2:]) or {"width": "1.0"}
    args = {k: float(v) if "." in v else int(v) if v.isdigit() else v for k, v in args.items()}
    flush = _flush_buffers()
    for backend, gap, inside in (
        ("ort-cpu", ort_gap, "sum of profiled nodes"),
        ("torch-cpu", torch_gap, "sum of its ops timed inside"),
    ):
        measured = gap(name, args, flush)
        _print(f"{name} {args} on {backend}, one thread", measured, predicted_us(backend, measured[2]), inside)
