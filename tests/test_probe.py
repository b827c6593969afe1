"""The device probe: its roofs, its drift flag, and its place in a run's rows and in compare."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from shufflebench import backends, device, probe, runner, stats
from shufflebench.categories import NCHWC_DOMAIN
from shufflebench.report.load import load

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_probe_graphs_are_what_the_script_writes(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_probe_models.py"), str(tmp_path)], check=True)
    for name in ("matmul.onnx", "conv1x1.onnx", "scale.onnx"):
        assert (tmp_path / name).read_bytes() == (ROOT / "shufflebench" / "probes" / name).read_bytes()
        onnx.checker.check_model(onnx.load(str(tmp_path / name)), full_check=True)


def test_each_cpu_backend_measures_both_roofs():
    for name in ("torch-cpu", "ort-cpu"):
        roofs = backends.get(name).probe(1)
        assert roofs.matmul_gflops > 0.5 and roofs.bandwidth_gbs > 0.5 and roofs.matmul_n in probe.CPU_MATMUL_SIZES
        assert roofs.conv_gflops > 0.5  # its convolutions are kernels of their own
        assert roofs.bandwidth_mib == 256  # far beyond any last-level cache
        assert roofs.noise_floor >= 0 and roofs.noise_cv >= 0


def test_the_noise_floor_is_the_p90_p10_ratio_of_block_times(monkeypatch):
    """A fake clock: calls take 1 ms for the first second and 1.5 ms after (a neighbour arrived)."""
    clock = {"now": 0.0}
    monkeypatch.setattr(probe.time, "perf_counter", lambda: clock["now"])

    def call():
        clock["now"] += 0.001 if clock["now"] < 1.0 else 0.0015

    floor, cv = probe.noise(call)
    assert floor == pytest.approx(0.5, abs=0.01)  # the slow blocks 50% slower than the fast
    assert cv == pytest.approx(0.2, abs=0.02)
    clock["now"] = 0.0
    steady, steady_cv = probe.noise(lambda: clock.update(now=clock["now"] + 0.001))
    assert steady == pytest.approx(0, abs=1e-9) and steady_cv == pytest.approx(0, abs=1e-9)


def test_steal_is_the_share_of_cpu_time_given_to_other_guests():
    assert device.steal_between((100, 10_000), (150, 11_000)) == 0.05
    assert device.steal_between(None, (150, 11_000)) is None
    reading = device.cpu_times()
    if Path("/proc/stat").exists():
        stolen, total = reading
        assert 0 <= stolen <= total


def test_drift_is_the_largest_relative_change():
    start = {"k": {"matmul_gflops": 100.0, "bandwidth_gbs": 20.0}}
    assert probe.drift(start, {"k": {"matmul_gflops": 95.0, "bandwidth_gbs": 26.0}}) == 0.3
    assert probe.drift(start, {"other": {"matmul_gflops": 1.0, "bandwidth_gbs": 1.0}}) == 0.0
    assert not probe.differs(start, {"k": {"matmul_gflops": 110.0, "bandwidth_gbs": 21.0}})
    assert probe.differs(start, {"k": {"matmul_gflops": 50.0, "bandwidth_gbs": 20.0}})


def test_the_drift_flag_fires_on_a_run_whose_roofs_moved():
    start = {"matmul_gflops": 100.0, "bandwidth_gbs": 20.0}
    rows = [
        {"status": "ok", "noise": "", "is_noisy": False, "probe": {"key": "torch-cpu/threads=1", "start": start}},
        {"status": "ok", "noise": "", "is_noisy": False, "probe": {"key": "ort-cpu/threads=1", "start": start}},
        {"status": "skipped", "noise": None, "probe": None},
    ]
    end = {
        "torch-cpu/threads=1": {"matmul_gflops": 70.0, "bandwidth_gbs": 20.0},  # throttled: 30% slower
        "ort-cpu/threads=1": {"matmul_gflops": 98.0, "bandwidth_gbs": 20.5},
    }
    finished = runner.finish_probes(rows, end)
    assert len(finished) == 2
    throttled, steady = finished
    assert throttled["is_noisy"] and "roofs moved 30% between the start and the end" in throttled["noise"]
    assert throttled["probe"]["drift"] == 0.3 and throttled["probe"]["end"]["matmul_gflops"] == 70.0
    assert not steady["is_noisy"] and steady["probe"]["drift"] == 0.025


def test_a_rows_noise_floor_is_the_larger_of_its_runs_start_and_end():
    start = {"matmul_gflops": 100.0, "bandwidth_gbs": 20.0, "noise_floor": 0.08, "noise_cv": 0.03}
    row = {"status": "ok", "noise": "", "is_noisy": False, "noise_floor": 0.08}
    row["probe"] = {"key": "ort-cpu/threads=1", "start": start}
    (finished,) = runner.finish_probes([row], {"ort-cpu/threads=1": {**start, "noise_floor": 0.31}})
    assert finished["noise_floor"] == 0.31 and not finished["is_noisy"]  # noise is not drift: the roofs stayed


def test_a_machine_that_proves_shared_only_at_the_end_gets_the_shared_hardware_reason_then():
    start = {"matmul_gflops": 100.0, "bandwidth_gbs": 20.0, "noise_floor": 0.07, "noise_cv": 0.03}
    spread = "IQR is 18% of the median: close other programs or raise min_time"
    row = {"status": "ok", "noise": spread, "is_noisy": True, "noise_floor": 0.07, "load_avg": 1.0, "threads": 1}
    row.update(process_medians_ms=[10.0, 11.0, 9.5, 10.4, 12.0, 9.9])
    row["probe"] = {"key": "ort-cpu/threads=1", "start": start}
    (finished,) = runner.finish_probes([row], {"ort-cpu/threads=1": {**start, "noise_floor": 0.26}}, cores=2)
    (reason,) = stats.reasons_of(finished["noise"])
    assert reason.startswith("IQR is 18% of the median, on shared hardware: the device's noise floor is 26%")
    assert "close other programs" not in finished["noise"] and finished["is_noisy"]


def test_rows_of_another_machine_are_measured_again():
    from shufflebench import config

    cell = config.single_cell("g4", {"c": 8}, "torch-cpu", {"batch": 1, "threads": 1})
    run = config.RunSettings()
    meta = {"machine_key": "x86_64-zen4-aaaa"}
    row = {"status": "ok", "machine_key": "x86_64-zen3-bbbb", "measure_settings": run.recorded()}
    assert "measured on another machine (x86_64-zen3-bbbb)" in runner.remeasure_reason(cell, row, run, meta, None)
    assert runner.remeasure_reason(cell, {**row, "machine_key": "x86_64-zen4-aaaa"}, run, meta, None) is None


def _folder(root: Path, name: str, matmul: float) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    meta = {**device.collect(), "device_id": "same-id"}
    meta["probe"] = {"torch-cpu/threads=1": {"matmul_gflops": matmul, "bandwidth_gbs": 20.0}}
    (folder / "device.json").write_text(json.dumps(meta))
    (folder / "s.csv").write_text("schema_version,cell,status,device_id\n2,c,skipped,same-id\n")
    return folder


def test_compare_warns_when_two_folders_share_an_id_but_not_their_probes(tmp_path):
    a = _folder(tmp_path / "a", "same-id", 100.0)
    b = _folder(tmp_path / "b", "same-id", 50.0)  # 2x apart: not the same machine, or not in the same state
    warnings = load([a, b]).warnings
    assert any("same id, different machine or different state: rerun the probe" in w for w in warnings)
    c = _folder(tmp_path / "c", "same-id", 102.0)
    assert not any("different machine" in w for w in load([a, c]).warnings)


def test_a_sweep_records_its_probes_in_rows_and_device_json(tmp_path):
    sweep = tmp_path / "p.yaml"
    sweep.write_text(
        "measure: {processes: 2, max_processes: 2, min_time: 0.02, warmup_time: 0, min_samples: 3}\n"
        "settings: {backend: ort-cpu, threads: 1}\nworkloads: [{name: g4, grid: {c: 8, hw: 8}}]\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "shufflebench.cli", "run", str(sweep), "--results", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "probe (start) ort-cpu/threads=1: matmul" in out.stderr and "probe (end) ort-cpu/threads=1" in out.stderr
    (folder,) = (tmp_path / "r").iterdir()
    meta = json.loads((folder / "device.json").read_text())
    assert meta["probe"]["ort-cpu/threads=1"]["matmul_gflops"] > 0 and meta["machine_key"]
    from shufflebench.results import read_rows

    (row,) = read_rows(folder / "p.csv")
    assert row["peak_gflops"] == probe.compute_gflops(meta["probe"]["ort-cpu/threads=1"])
    assert row["probe"]["end"]["bandwidth_gbs"] > 0 and row["probe"]["drift"] >= 0
    assert row["machine_key"] == meta["machine_key"] and row["energy_method"]


def test_the_roofline_classifies_cells_at_each_roof_and_below_both():
    from shufflebench.roofline import analyse

    peaks = {"peak_gflops": 100.0, "peak_gbs": 10.0}
    # 50 M multiply-adds (0.1 GFLOP) moving 1 MB in 1 ms: 100 GFLOP/s, the compute roof
    compute = analyse(flops=50e6, mac_bytes=1e6, median_ms=1.0, **peaks)
    assert compute.bound == "compute" and compute.compute_fraction == 1.0 and compute.arithmetic_intensity == 100.0
    # 10 MB moved in 1 ms with few FLOPs: 10 GB/s, the bandwidth roof
    memory = analyse(flops=1e3, mac_bytes=10e6, median_ms=1.0, **peaks)
    assert memory.bound == "memory" and memory.bandwidth_fraction == 1.0
    # the same work taking 10x longer: neither roof explains the time
    overhead = analyse(flops=1e3, mac_bytes=10e6, median_ms=10.0, **peaks)
    assert overhead.bound == "overhead" and overhead.roof_efficiency == pytest.approx(0.1)
    # the runtime's graph moves other bytes than the model's: its intensity is reported beside
    fused = analyse(flops=50e6, mac_bytes=2e6, median_ms=1.0, mac_runtime_bytes=1e6, **peaks)
    assert fused.arithmetic_intensity == 50.0 and fused.arithmetic_intensity_runtime == 100.0
    assert analyse(flops=None, mac_bytes=1e6, median_ms=1.0, **peaks).bound is None


def test_a_cell_is_judged_against_the_best_roof_any_backend_reached_at_its_thread_count():
    probes = {
        "ort-cpu/threads=1": {"matmul_gflops": 50.0, "conv_gflops": 90.0, "bandwidth_gbs": 30.0},
        "torch-cpu/threads=1": {"matmul_gflops": 80.0, "conv_gflops": 70.0, "bandwidth_gbs": 28.0},
        "torch-cpu/threads=2": {"matmul_gflops": 190.0, "bandwidth_gbs": 40.0},  # probed before the convolutions
        "torch-cuda": {"matmul_gflops": 50000.0, "conv_gflops": None, "bandwidth_gbs": 4000.0},
    }
    # ONNX Runtime's convolutions beat every matrix product: the compute roof is theirs, for torch's cells too
    assert probe.device_roofs(probes, "torch-cpu/threads=1") == {"compute_gflops": 90.0, "bandwidth_gbs": 30.0}
    assert probe.device_roofs(probes, "torch-cpu/threads=2") == {"compute_gflops": 190.0, "bandwidth_gbs": 40.0}
    assert probe.device_roofs(probes, "torch-cuda")["compute_gflops"] == 50000.0
    # its own probe did not run: the device's
    assert probe.device_roofs(probes, "ort-cuda") == {"compute_gflops": 50000.0, "bandwidth_gbs": 4000.0}
    assert probe.device_roofs(probes, "torch-cuda/float16") is None  # no probe of that precision: no roofs


def test_the_fastest_of_several_product_sizes_is_the_roof():
    seconds = {256: 2 * 256**3 / 80e9, 512: 2 * 512**3 / 90e9, 1024: 2 * 1024**3 / 60e9}  # 80, 90, 60 GFLOP/s
    assert probe.fastest_matmul(seconds.__getitem__, (256, 512, 1024)) == (seconds[512], 512)
    speeds = dict(zip(probe.CONV_SHAPES, (70e9, 95e9, 80e9, 85e9)))  # FLOP/s of each chain of 1x1 convolutions
    chain = lambda c, hw: 2 * probe.CONV_CHAIN * c * c * hw * hw / speeds[c, hw]  # noqa: E731
    assert probe.fastest_conv(chain) == pytest.approx(95.0)


def test_a_roof_is_the_fastest_of_its_repeated_calls(monkeypatch):
    """A fake clock: every fourth call is quick (2 ms), the others slow (3 ms); the roof is the best reached."""
    clock = {"now": 0.0, "calls": 0}
    monkeypatch.setattr(probe.time, "perf_counter", lambda: clock["now"])

    def call():
        clock["calls"] += 1
        clock["now"] += 0.002 if clock["calls"] % 4 == 0 else 0.003

    assert probe.best_seconds(call) == pytest.approx(0.002)
    assert clock["now"] >= probe.MIN_TIME


def test_onnx_runtimes_convolution_probe_runs_its_blocked_kernels(monkeypatch, tmp_path):
    """The chain's weight folds into a constant once the probe fixes the sizes, so ONNX Runtime's optimiser turns its
    convolutions into blocked NCHWc ones, as in the cells: the kernels that run faster than its SGEMM."""
    import numpy as np
    import onnxruntime as ort

    from shufflebench.backends import ort_backend

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("ONNX Runtime's blocked convolutions are x86's (AVX2 and AVX-512)")
    made = ort_backend.session_options

    def keeping_the_optimised_graph(**kwargs):
        options = made(**kwargs)
        options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
        return options

    monkeypatch.setattr(ort_backend, "session_options", keeping_the_optimised_graph)
    c, hw = probe.CONV_SHAPES[0]
    ort_backend.conv_chain(c, hw, "CPUExecutionProvider", 1)()
    nodes = onnx.load(str(tmp_path / "optimised.onnx")).graph.node
    assert [n.domain for n in nodes if n.op_type == "Conv"] == [NCHWC_DOMAIN] * probe.CONV_CHAIN
    session = ort.InferenceSession(str(ROOT / "shufflebench" / "probes" / "conv1x1.onnx"))
    (out,) = session.run(None, {"x": np.ones((1, 2, 3, 3), np.float32)})
    assert out.shape == (1, 2, 3, 3) and np.allclose(out, (0.5 * 2) ** probe.CONV_CHAIN)  # weight 0.5, 2 channels


def test_runs_whose_probes_disagree_are_flagged_unless_they_timed_products_of_other_sizes():
    import pandas as pd

    from shufflebench.report.load import run_probe_warnings

    def row(gflops: float, n: int) -> dict:
        start = {"matmul_gflops": gflops, "bandwidth_gbs": 20.0, "matmul_n": n}
        return {"device_id": "dev", "status": "ok", "probe": {"key": "torch-cpu/threads=1", "start": start}}

    assert run_probe_warnings(pd.DataFrame([row(60.0, 1024), row(85.0, 256)])) == []  # another size, another roof
    (warning,) = run_probe_warnings(pd.DataFrame([row(60.0, 1024), row(85.0, 1024)]))
    assert "torch-cpu/threads=1 probes differ by 42%" in warning


def test_gpu_cells_are_probed_in_their_own_precision_and_ort_cells_judged_by_torchs(monkeypatch):
    from shufflebench import config

    for kind in (backends.TorchBackend, backends.OrtBackend):
        monkeypatch.setattr(kind, "unavailable_reason", lambda self: None)  # as on a CUDA machine
    cells = [
        config.single_cell("g4", {"c": 8}, "torch-cuda", {"batch": 8, **backends.get("torch-cuda").defaults(**s)})
        for s in ({}, {"tf32": True}, {"dtype": "float16"})
    ] + [
        config.single_cell(
            "g4", {"c": 8}, "ort-cuda", {"batch": 8, **backends.get("ort-cuda").defaults(dtype="float16")}
        )
    ]
    assert runner.probe_pairs(cells) == [
        ("ort-cuda", None, "fp32"),  # ONNX Runtime's probe graphs are fp32 only
        ("torch-cuda", None, "float16"),
        ("torch-cuda", None, "fp32"),
        ("torch-cuda", None, "tf32"),
    ]
    assert [probe.key(*p) for p in runner.probe_pairs(cells)] == [
        "ort-cuda",
        "torch-cuda/float16",
        "torch-cuda",
        "torch-cuda/tf32",
    ]
    probes = {
        "ort-cuda": {"matmul_gflops": 40000.0, "bandwidth_gbs": 3800.0},
        "torch-cuda": {"matmul_gflops": 50000.0, "bandwidth_gbs": 3900.0},
        "torch-cuda/float16": {"matmul_gflops": 700000.0, "bandwidth_gbs": 3900.0},
    }
    half = probe.key("ort-cuda", None, probe.precision(cells[-1].settings))
    assert half == "ort-cuda/float16" and probe.device_roofs(probes, half)["compute_gflops"] == 700000.0
    with pytest.raises(ValueError, match="fp32 only"):
        backends.get("ort-cpu").probe(1, "float16")


def test_torch_probes_a_matrix_product_in_the_precision_asked():
    half = backends.get("torch-cpu").probe(1, "bfloat16")
    assert half.matmul_gflops > 0.5 and half.matmul_n in probe.CPU_MATMUL_SIZES


def test_device_probe_prints_every_cpu_backends_roofs():
    out = subprocess.run(
        [sys.executable, "-m", "shufflebench.cli", "device", "--probe", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    roofs = json.loads(out.stdout)["probe"]
    for key in ("torch-cpu/threads=1", "ort-cpu/threads=1"):
        assert roofs[key]["matmul_gflops"] > 0.5 and roofs[key]["matmul_n"] in probe.CPU_MATMUL_SIZES
        assert roofs[key]["noise_floor"] >= 0 and roofs[key]["noise_cv"] >= 0 and 0 <= roofs[key]["steal"] <= 1
    printed = device.describe(json.loads(out.stdout))  # what `shufflebench device --probe` prints without --json
    floor = roofs["ort-cpu/threads=1"]["noise_floor"]
    assert "probe       ort-cpu/threads=1: matmul " in printed and f"noise floor {floor:.1%} (p90/p10), CV " in printed
