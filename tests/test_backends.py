"""Backend names, settings, and the torch and ONNX Runtime timers on real (small) workloads."""

from __future__ import annotations

import contextlib
import gc
import time
import weakref

import numpy as np
import onnx
import pytest
import torch

from shufflebench import blocks
from shufflebench import backends
from shufflebench.backends import cache, ort_backend, torch_backend
from shufflebench.errors import UserError
from shufflebench.export import export

TORCH_CPU, ORT_CPU, CPU = backends.get("torch-cpu"), backends.get("ort-cpu"), "CPUExecutionProvider"


@pytest.mark.parametrize(
    "name,kind,target,needs_onnx,on_gpu",
    [
        ("torch-cpu", backends.TorchBackend, "cpu", False, False),
        ("torch-cuda", backends.TorchBackend, "cuda", False, True),
        ("ort-cpu", backends.OrtBackend, "CPUExecutionProvider", True, False),
        ("ort-cuda", backends.OrtBackend, "CUDAExecutionProvider", True, True),
        ("ort:OpenVINOExecutionProvider", backends.OrtBackend, "OpenVINOExecutionProvider", True, False),
        ("ort:TensorrtExecutionProvider", backends.OrtBackend, "TensorrtExecutionProvider", True, True),
    ],
)
def test_names(name, kind, target, needs_onnx, on_gpu):
    b = backends.get(name)
    assert isinstance(b, kind) and (b.target, b.needs_onnx, b.on_gpu) == (target, needs_onnx, on_gpu)
    assert b.settings[0].name == "batch"


@pytest.mark.parametrize("name", ["torch", "ort:", "ort:Foo", "tensorrt"])
def test_unknown_names_list_the_allowed_ones(name):
    with pytest.raises(UserError, match="allowed: torch-cpu, torch-cuda, ort-cpu, ort-cuda, ort:<Provider>"):
        backends.get(name)


def test_every_setting_a_backend_takes_is_declared_once_with_a_valid_default():
    for backend in [*backends.REGISTRY.values(), backends.get("ort:TensorrtExecutionProvider")]:
        names = [s.name for s in backend.settings]
        assert len(names) == len(set(names))
        for setting in backend.settings:
            assert backends.SETTINGS[setting.name].kind is setting.kind
            if setting.default not in ("physical",):
                assert setting.check(setting.default) == setting.default
    assert "bfloat16" not in backends.get("ort-cuda").settings[4].choices  # ORT runs fp16-converted models only
    assert "dtype: float32|float16|bfloat16 = float32" in backends.describe()


def test_defaults_fill_every_declared_setting_and_refuse_others():
    assert ORT_CPU.defaults(threads=2) == {"threads": 2, "opt_level": "all", "spinning": True, "cache": "warm"}
    with pytest.raises(UserError, match="ort-cpu takes no setting 'tf32'"):
        ORT_CPU.defaults(tf32=True)
    with pytest.raises(UserError, match="must be one of steady, glibc"):
        TORCH_CPU.defaults(malloc="jemalloc")


def test_unavailable_backends_say_why():
    assert backends.get("torch-cpu").unavailable_reason() is None
    assert backends.get("ort-cpu").unavailable_reason() is None
    if not torch.cuda.is_available():
        assert "CUDA is not available" in backends.get("torch-cuda").unavailable_reason()
    reason = backends.get("ort-cuda").unavailable_reason()
    assert reason is None or "install onnxruntime-gpu" in reason
    assert "no NoSuchExecutionProvider" in backends.get("ort:NoSuchExecutionProvider").unavailable_reason()


def test_torch_backend_applies_threads_and_times_calls():
    w = blocks.build("g1", c1=8, c2=8, hw=8)
    timed = torch_backend.prepare(w.module, w.input_shape, device="cpu", settings=TORCH_CPU.defaults(threads=1))
    assert timed.info["threads"] == 1 == torch.get_num_threads()
    assert timed.time(5) > timed.time(0) >= 0


def test_export_is_verified_and_ort_times_it(tmp_path):
    w = blocks.build("g3", structure="2-fragment-parallel", c=16, hw=8)
    info = export(w.module, w.input_shape, tmp_path / "g3.onnx")
    assert info["exporter"] == "dynamo" and info["opset"] == 18
    assert info["op_types"] == {"Conv": 20, "Add": 10}
    assert info["max_abs_diff"] <= 1e-4 * 1
    timed = ort_backend.prepare(
        tmp_path / "g3.onnx", w.input_shape, provider=CPU, settings=ORT_CPU.defaults(threads=1, opt_level="disable")
    )
    assert timed.info["provider"] == "CPUExecutionProvider" and timed.info["opt_level"] == "disable"
    assert timed.time(3) > 0
    model = onnx.load(str(tmp_path / "g3.onnx"))
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == list(w.input_shape)  # static


def test_ort_output_matches_torch_through_the_bound_session(tmp_path):
    w = blocks.build("g4", c=16, hw=8)
    export(w.module, w.input_shape, tmp_path / "g4.onnx")
    timed = ort_backend.prepare(tmp_path / "g4.onnx", w.input_shape, provider=CPU, settings=ORT_CPU.defaults(threads=1))
    timed.time(1)
    got = timed.binding.copy_outputs_to_cpu()[0]
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(w.input_shape, dtype=np.float32))
    with torch.no_grad():
        expected = w.module(x).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_the_opt_levels_a_config_accepts_are_the_ones_ort_knows():
    assert tuple(ort_backend.OPT_LEVELS) == backends.OPT_LEVELS


def test_spinning_is_set_explicitly_and_recorded(tmp_path):
    w = blocks.build("g4", c=16, hw=8)
    export(w.module, w.input_shape, tmp_path / "g4.onnx")
    for spinning in (True, False):
        settings = ORT_CPU.defaults(threads=1, spinning=spinning)
        timed = ort_backend.prepare(tmp_path / "g4.onnx", w.input_shape, provider=CPU, settings=settings)
        assert timed.info["session_options"]["allow_spinning"] == ("1" if spinning else "0")


def test_the_bound_input_outlives_a_binding_that_keeps_no_reference(tmp_path, monkeypatch):
    """Releases before ONNX Runtime 1.32 keep no reference to a bound OrtValue: the timer must keep its own."""
    w = blocks.build("g4", c=16, hw=8)
    export(w.module, w.input_shape, tmp_path / "g4.onnx")
    bound = []

    class ForgetfulBinding:  # forwards to the real binding but holds only weak references to what is bound
        def __init__(self, real):
            self.real = real

        def bind_ortvalue_input(self, name, value):
            bound.append(weakref.ref(value))
            self.real.bind_ortvalue_input(name, value)

        def __getattr__(self, name):
            return getattr(self.real, name)

    real_io_binding = ort_backend.ort.InferenceSession.io_binding
    monkeypatch.setattr(
        ort_backend.ort.InferenceSession, "io_binding", lambda self: ForgetfulBinding(real_io_binding(self))
    )
    timed = ort_backend.prepare(tmp_path / "g4.onnx", w.input_shape, provider=CPU, settings=ORT_CPU.defaults(threads=1))
    gc.collect()
    assert bound and bound[0]() is not None  # still alive: the timer holds it
    x = timed.keep[0]
    assert timed.time(2) > 0
    np.testing.assert_array_equal(bound[0]().numpy(), x)


class CountingSync:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def test_gpu_latency_waits_after_every_call_and_throughput_once_per_block():
    sync, calls = CountingSync(), []
    timed = torch_backend.TorchTimed(None, (), {}, call=lambda: calls.append(sync.calls), sync=sync)
    assert timed.asynchronous
    timed.time(5)
    assert sync.calls == 6 and calls == [1, 2, 3, 4, 5]  # each call starts after the previous one was waited for
    sync.calls, calls[:] = 0, []
    timed.time_pipelined(5)
    assert sync.calls == 2 and calls == [1, 1, 1, 1, 1]  # queued back to back, one wait at the end


class FakeCuda:
    """Just enough of torch.cuda to follow GraphReplay's steps."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.current = "default"
        fake = self

        class Stream:
            def wait_stream(self, other):
                fake.log.append("side waits for default")

        class CUDAGraph:
            def replay(self):
                fake.log.append("replay")

        self.Stream, self.CUDAGraph = Stream, CUDAGraph

    def current_stream(self):
        fake = self

        class Current:
            def wait_stream(self, other):
                fake.log.append("default waits for side")

        return Current()

    @contextlib.contextmanager
    def stream(self, stream):
        self.current = "side"
        yield
        self.current = "default"

    @contextlib.contextmanager
    def graph(self, graph):
        self.current = "capture"
        yield
        self.current = "default"

    def synchronize(self):
        self.log.append("synchronize")


def test_graph_replay_warms_up_on_a_side_stream_then_captures_one_call():
    cuda, output = FakeCuda(), torch.ones(2)
    replay = torch_backend.GraphReplay(lambda: cuda.log.append(f"call on {cuda.current}") or output, cuda, warmup=2)
    assert cuda.log == [
        "side waits for default",
        "call on side",
        "call on side",
        "default waits for side",
        "synchronize",
        "call on capture",
    ]
    assert replay() is output and cuda.log[-1] == "replay"  # a call replays; it does not run the module


def test_dtype_and_memory_format_settings_reach_a_module():
    w = blocks.build("g4", c=16, hw=8)
    module = w.module.to(device="cpu", dtype=torch_backend.DTYPES["bfloat16"], memory_format=torch.channels_last)
    weight = next(p for p in module.parameters() if p.dim() == 4)
    assert weight.dtype == torch.bfloat16 and weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("tf32,autotune,graph", [(False, True, False), (True, False, True)])
def test_ort_cuda_options_are_explicit_and_follow_the_cell(tf32, autotune, graph):
    settings = backends.get("ort-cuda").defaults(cudnn_benchmark=autotune, tf32=tf32, cuda_graph=graph)
    options = ort_backend.provider_options("CUDAExecutionProvider", settings)
    assert options["use_tf32"] == ("1" if tf32 else "0")  # ORT's own default is 1; torch-cuda's is off
    assert options["cudnn_conv_algo_search"] == ("EXHAUSTIVE" if autotune else "HEURISTIC")
    assert options["enable_cuda_graph"] == ("1" if graph else "0")
    assert options["device_id"] == "0"
    assert ort_backend.provider_options(CPU, ORT_CPU.defaults()) == {}


def test_ort_prepare_creates_the_provider_with_its_options(tmp_path, monkeypatch):
    w = blocks.build("g4", c=16, hw=8)
    export(w.module, w.input_shape, tmp_path / "g4.onnx")
    seen = {}

    def fake_session(source, options, providers):
        seen["providers"] = providers
        raise RuntimeError("stop here")

    monkeypatch.setattr(ort_backend.ort, "InferenceSession", fake_session)
    monkeypatch.setattr(ort_backend.ort, "preload_dlls", lambda: seen.setdefault("preloaded", True), raising=False)
    with pytest.raises(RuntimeError, match="stop here"):
        settings = backends.get("ort-cuda").defaults(tf32=True)
        ort_backend.prepare(tmp_path / "g4.onnx", w.input_shape, provider="CUDAExecutionProvider", settings=settings)
    [(provider, options)] = seen["providers"]
    assert provider == "CUDAExecutionProvider" and options["use_tf32"] == "1" and seen["preloaded"]


class FakeSession:
    def __init__(self) -> None:
        self.runs: list[object] = []

    def run_with_iobinding(self, binding, run_options=None):
        self.runs.append(run_options)


def test_ort_pipelined_runs_skip_the_sync_except_the_last():
    session = FakeSession()
    timed = ort_backend.OrtTimed(session, object(), {}, asynchronous=True, keep=[])
    timed.time_pipelined(4)
    assert session.runs[:3] == [timed.no_sync] * 3 and session.runs[3] is None
    session.runs.clear()
    timed.time(3)
    assert session.runs == [None] * 3  # latency: ORT synchronises every run


def test_node_placement_finds_nodes_off_the_provider(tmp_path):
    w = blocks.build("g4", c=16, hw=8)
    export(w.module, w.input_shape, tmp_path / "g4.onnx")
    timed = ort_backend.prepare(tmp_path / "g4.onnx", w.input_shape, provider=CPU, settings=ORT_CPU.defaults(threads=1))
    assert timed.info["warnings"] == [] and not timed.asynchronous
    events = [
        {"cat": "Node", "name": "conv_kernel_time", "args": {"provider": "CUDAExecutionProvider", "op_name": "Conv"}},
        {"cat": "Node", "name": "shape_kernel_time", "args": {"provider": "CPUExecutionProvider", "op_name": "Shape"}},
        {"cat": "Node", "name": "add_kernel_time", "args": {"provider": "CPUExecutionProvider", "op_name": "Add"}},
        {"cat": "Session", "name": "model_run", "args": {}},
    ]
    placement = ort_backend.node_placement(events)
    assert placement == {
        ("CUDAExecutionProvider", "Conv"): 1,
        ("CPUExecutionProvider", "Shape"): 1,
        ("CPUExecutionProvider", "Add"): 1,
    }
    [warning] = ort_backend.placement_warnings(placement, "CUDAExecutionProvider")
    assert "1 Add, 1 Shape" in warning and "compute nodes" in warning
    shape_only = {("CPUExecutionProvider", "Shape"): 2}
    assert "compute" not in ort_backend.placement_warnings(shape_only, "CUDAExecutionProvider")[0]


def test_float16_model_converts_weights_and_io(tmp_path):
    w = blocks.build("g1", c1=8, c2=16, hw=8)
    export(w.module, w.input_shape, tmp_path / "g1.onnx")
    model = onnx.load_from_string(ort_backend.float16_model(tmp_path / "g1.onnx"))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert {t.data_type for t in model.graph.initializer} == {onnx.TensorProto.FLOAT16}


class _Recorder:
    """An evictor and a call that record their order; the evictor also takes a known, long time."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def evict(self) -> None:
        self.events.append("evict")
        time.sleep(0.05)

    def call(self) -> None:
        self.events.append("call")


def test_a_cold_cell_evicts_the_l2_before_every_call_and_does_not_time_the_eviction():
    recorder = _Recorder()
    seconds = cache.time_cold(recorder.call, 3, recorder.evict)
    assert recorder.events == ["evict", "call"] * 3
    assert seconds < 0.05  # three calls that do nothing, without the 0.15 s of evicting
    evictor = cache.Evictor()
    assert evictor.buffer.nbytes == cache.EVICT_FACTOR * cache.l2_bytes() > 0
    before = evictor.buffer.copy()
    evictor()
    assert (evictor.buffer == before + 1).all()  # every line of the buffer written


def test_the_cache_setting_reaches_both_cpu_timers(tmp_path):
    w = blocks.build("g1", c1=8, c2=8, hw=8)
    cold = torch_backend.prepare(w.module, w.input_shape, device="cpu", settings=TORCH_CPU.defaults(cache="cold"))
    warm = torch_backend.prepare(w.module, w.input_shape, device="cpu", settings=TORCH_CPU.defaults())
    assert cold.info["cache"] == "cold" and isinstance(cold.evict, cache.Evictor) and warm.evict is None
    assert cold.time(2) > 0
    export(w.module, w.input_shape, tmp_path / "g1.onnx")
    timed = ort_backend.prepare(
        tmp_path / "g1.onnx", w.input_shape, provider=CPU, settings=ORT_CPU.defaults(cache="cold")
    )
    assert timed.info["cache"] == "cold" and isinstance(timed.evict, cache.Evictor) and timed.time(2) > 0
    with pytest.raises(UserError, match="must be one of warm, cold, got 'hot'"):
        ORT_CPU.defaults(cache="hot")
    with pytest.raises(UserError, match="takes no setting 'cache'"):
        backends.get("torch-cuda").defaults(cache="cold")
