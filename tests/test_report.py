"""`shufflebench report` and `shufflebench compare` on small synthetic results folders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from shufflebench import stats
from shufflebench.errors import UserError
from shufflebench.report.compare import compare
from shufflebench.report import index, pairs
from shufflebench.report.index import write_report
from shufflebench.report.load import load, ok_rows
from shufflebench.results import SCHEMA_VERSION, read_rows, write_rows

G1_CPU = [(32, 32, 1990.0), (22, 44, 1190.0), (13, 78, 730.0), (9, 108, 770.0)]
G1_GPU = [(128, 128, 1480.0), (90, 180, 1296.0), (52, 312, 876.0), (36, 432, 748.0)]


def make_device(
    root: Path,
    device_id: str,
    speed: float = 1.0,
    emulated: bool = False,
    status: str = "ok",
    sweep: str = "default",
    finished_at: str = "2026-01-01T00:00:00+00:00",
    backends: tuple[str, ...] = ("ort-cpu", "torch-cpu"),
) -> Path:
    folder = root / device_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "device.json").write_text(
        json.dumps(
            {
                "device_id": device_id,
                "arch": "aarch64" if emulated else "x86_64",
                "cpu_model": "Test CPU",
                "cores_physical": 2,
                "cores_logical": 2,
                "memory_gb": 4,
                "os": "Linux",
                "python": "3.11",
                "versions": {"numpy": "2"},
                "gpus": [],
                "emulated": emulated,
            }
        )
    )
    rows = []
    for backend in backends:
        for c1, c2, images in G1_CPU:
            median = 1e3 / (images * speed)
            settings = "batch=1,threads=1" + (",opt_level=all" if backend == "ort-cpu" else "")
            rows.append(
                {
                    "schema_version": SCHEMA_VERSION,
                    "cell": f"g1/c1={c1},c2={c2},hw=56/{backend}/{settings}",
                    "status": status,
                    "workload": "g1",
                    "workload_args": {"c1": c1, "c2": c2, "hw": 56},
                    "backend": backend,
                    "batch": 1,
                    "threads": 1,
                    "device_id": device_id,
                    "params": 2 * c1 * c2,
                    "flops": 62_000_000 + c1,
                    "mac": 4_000_000 + c2 * 1000,
                    "mac_bytes": 16_000_000 + c2 * 4000,
                    "median_ms": median,
                    "iqr_ms": median * 0.02,
                    "ci_low_ms": median * 0.99,
                    "ci_high_ms": median * 1.01,
                    "images_per_s": 1e3 / median,
                    "batches_per_s": 1e3 / median,
                    "is_noisy": c1 == 9,
                    "noise": "IQR is 12% of the median" if c1 == 9 else "",
                    "error": None if status == "ok" else "boom",
                    "measure_settings": {
                        "processes": 5,
                        "warmup_time": 0.2,
                        "warmup_calls": 10,
                        "min_time": 0.3,
                        "min_samples": 10,
                    },
                }
            )
    for row in rows:
        row["finished_at"] = finished_at
    write_rows(folder / f"{sweep}.csv", rows)
    return folder


def test_report_has_every_section_and_its_figures(tmp_path):
    folder = make_device(tmp_path / "results", "dev-a")
    loaded = load([folder])
    index = write_report(loaded, "dev-a", tmp_path / "report")
    text = index.read_text()
    for heading in (
        "## What was measured",
        "## Latency against FLOPs and MAC",
        "## ShuffleNet V2 Tables 1-4",
        "## Noise, errors and skipped cells",
    ):
        assert heading in text
    assert "| 1 (g1) | ort-cpu | batch=1,threads=1,opt_level=all,spinning=true,cache=warm | holds |" in text
    assert "2 of 8 measured cells are noisy, by cause" in text  # the IQR cell of each backend
    assert "| spread | 2 | samples inside a process vary: close other programs" in text
    assert "<details><summary>The noisy cells, by cause</summary>" in text
    for image in ("latency_vs_cost_ort-cpu.png", "latency_vs_cost_torch-cpu.png"):
        assert f"]({image})" in text and (tmp_path / "report" / image).stat().st_size > 10_000


def test_the_roofline_holds_cells_under_the_best_product_or_convolution_chain_and_names_older_probes(tmp_path):
    """The quickest G1 cell attains 247 GFLOP/s (2 x 62 M multiply-adds in 0.50 ms), the next 148. Under a probe whose
    matrix product reached 200 and that ran before the 1x1 convolution chain, one cell per backend sits above the
    roof, counted apart; under a probe whose convolutions reached 250, none does."""

    def report(roofs: dict) -> str:
        folder = make_device(tmp_path / str(len(roofs)), "dev-a")
        rows = read_rows(folder / "default.csv")
        for row in rows:
            row["probe"] = {"key": f"{row['backend']}/threads=1", "start": {**roofs, "bandwidth_gbs": 20.0}}
        write_rows(folder / "default.csv", rows)
        return write_report(load([folder]), "dev-a", tmp_path / f"report{len(roofs)}").read_text()

    older = report({"matmul_gflops": 200.0})
    assert "| ort-cpu | 4 |" in older and "| 1 (1 under a roof probed before the 1x1 convolutions) |" in older
    assert "- ort-cpu/threads=1: device roofs 200.0 GFLOP/s and 20.0 GB/s; this library's own probe: matrix " in older
    convolved = report({"matmul_gflops": 200.0, "conv_gflops": 250.0})
    table = convolved[convolved.index("## Roofline") :]
    assert "| ort-cpu | 4 |" in table and "| 0 |" in table and "probed before" not in table
    assert "this library's own probe: matrix product 200.0 GFLOP/s, 1x1 convolutions 250.0 GFLOP/s, copy" in table


def test_an_empty_folder_says_what_to_do(tmp_path):
    (tmp_path / "results").mkdir()
    with pytest.raises(UserError, match=r"no results in .*: run `make bench`"):
        load([tmp_path / "results"])


def test_a_newer_schema_file_is_skipped_with_a_warning_and_the_rest_reported(tmp_path):
    folder = make_device(tmp_path / "results", "dev-a")
    write_rows(folder / "future.csv", [{"schema_version": SCHEMA_VERSION + 1, "cell": "x", "status": "ok"}])
    loaded = load([folder])
    assert any("upgrade shufflebench" in w for w in loaded.warnings)
    text = write_report(loaded, "dev-a", tmp_path / "report").read_text()
    assert "upgrade shufflebench" in text and "## ShuffleNet V2 Tables 1-4" in text


def test_a_device_with_only_failed_cells_still_gets_a_report(tmp_path):
    folder = make_device(tmp_path / "results", "dev-a", status="error")
    text = write_report(load([folder]), "dev-a", tmp_path / "report").read_text()
    assert "No cell was measured successfully" in text and "8 cells error" in text


def test_compare_two_devices_with_an_emulated_one(tmp_path):
    root = tmp_path / "results"
    make_device(root, "dev-a")
    make_device(root, "dev-b", speed=0.5, emulated=True)
    text = compare([root], tmp_path / "compare", baseline="dev-a").index.read_text()
    assert (
        "| `dev-b` | `dev-b` | aarch64 | unknown: recorded before machine keys, treat as another machine | - | yes | 8 "
        "| 0 / 0 | 8 | - |" in text  # common cells, but no speed: an emulated device's timings are not compared
    )
    assert "dev-b (emulated)" in text
    # one row per guideline table, one column per folder and backend: "does G1 hold everywhere?" is one row
    assert (
        "| table | dev-a: ort-cpu | dev-a: torch-cpu | dev-b (emulated): ort-cpu | dev-b (emulated): torch-cpu |"
        in text
    )
    assert "| Table 1 (g1) | holds | holds | holds | holds |" in text
    assert "No figure: no folder but the baseline has a measured cell in common" in text
    assert not (tmp_path / "compare" / "speed_vs_baseline.png").exists()


def test_compare_needs_two_devices(tmp_path):
    folder = make_device(tmp_path / "results", "dev-a")
    with pytest.raises(UserError, match="at least two results folders"):
        compare([folder], tmp_path / "compare")


def test_the_first_folder_given_is_the_baseline(tmp_path):
    make_device(tmp_path / "results", "dev-a", speed=2.0)  # first by name, not first given
    make_device(tmp_path / "results", "dev-b")
    result = compare([tmp_path / "results" / "dev-b", tmp_path / "results" / "dev-a"], tmp_path / "compare")
    assert result.baseline == "dev-b"
    assert {s["label"]: s["geomean_speed"] for s in result.sides}["dev-a"] == pytest.approx(2.0)  # twice as fast


def test_folders_that_share_no_cell_are_told_apart_and_why(tmp_path):
    make_device(tmp_path / "cpu", "dev-cpu")
    make_device(tmp_path / "gpu", "dev-gpu", backends=("torch-cuda",))
    make_device(tmp_path / "threads", "dev-t", backends=("ort-cpu",))
    rows = read_rows(tmp_path / "threads" / "dev-t" / "default.csv")
    write_rows(
        tmp_path / "threads" / "dev-t" / "default.csv",
        [{**r, "cell": r["cell"].replace("threads=1", "threads=2"), "threads": 2} for r in rows],
    )
    result = compare([tmp_path / "cpu", tmp_path / "gpu", tmp_path / "threads"], tmp_path / "compare")
    why = {s["label"]: s["why_no_common_cells"] for s in result.sides}
    assert why["dev-gpu"] == "they measured other backends (baseline: ort-cpu, torch-cpu; this: torch-cuda)"
    assert why["dev-t"].startswith("the same workloads with other settings (on ort-cpu, baseline: ")
    assert "threads=1" in why["dev-t"] and "threads=2" in why["dev-t"]
    assert "`dev-gpu` shares no cell with the baseline: they measured other backends" in result.index.read_text()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "shufflebench.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_the_regression_gate_fails_on_a_resolved_slowdown_and_names_the_cell(tmp_path):
    before = make_device(tmp_path / "before", "dev-a")
    after = make_device(tmp_path / "after", "dev-a")  # one device, two versions: told apart by folder
    rows = read_rows(after / "default.csv")
    slow = rows[0]["cell"]
    rows[0] = {**rows[0], **{k: rows[0][k] * 1.10 for k in ("median_ms", "ci_low_ms", "ci_high_ms")}}
    noisy = rows[1]["cell"]  # 10% slower too, but inside the intervals: not resolved
    rows[1] = {**rows[1], "median_ms": rows[1]["median_ms"] * 1.10, "ci_low_ms": rows[1]["ci_low_ms"] * 0.9}
    write_rows(after / "default.csv", rows)
    out = tmp_path / "compare"
    failed = _cli("compare", str(before), str(after), "--out", str(out), "--fail-above", "5%")
    assert failed.returncode == 1, failed.stderr
    assert f"slower: {slow} on {after}" in failed.stderr and noisy not in failed.stderr
    assert "regression gate: 1 cell(s) slower than the baseline by more than 5%" in failed.stderr
    passed = _cli("compare", str(before), str(after), "--out", str(out), "--fail-above", "15", "--json")
    assert passed.returncode == 0, passed.stderr
    summary = json.loads(passed.stdout)
    assert summary["baseline"] == str(before) and summary["regressions"] == [] and summary["fail_above"] == 0.15
    (cell,) = [c for c in summary["cells"] if c["cell"] == slow]
    assert cell["speed"][str(after)] == pytest.approx(1 / 1.10) and cell["apart"][str(after)]
    (inside,) = [c for c in summary["cells"] if c["cell"] == noisy]
    assert not inside["apart"][str(after)]
    text = (out / "index.md").read_text()
    assert f"| `{slow}` |" in text and f"| {1 / 1.10:.2f}x |" in text.split(f"| `{slow}` |")[1].splitlines()[0]
    assert "0.91x (within noise) |" in text.split(f"| `{noisy}` |")[1].splitlines()[0]
    other = make_device(tmp_path / "gpu", "dev-gpu", backends=("torch-cuda",))
    nothing = _cli("compare", str(before), str(other), "--out", str(out), "--fail-above", "5%")
    assert nothing.returncode == 2 and "the regression gate has nothing to compare" in nothing.stderr


def test_cli_report_on_a_missing_folder_exits_2(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "shufflebench.cli", "report", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "no such results folder" in out.stderr


def test_a_cell_measured_by_two_sweeps_is_shown_once_with_its_latest_row(tmp_path):
    make_device(tmp_path / "results", "dev-a", speed=1.0)
    folder = make_device(tmp_path / "results", "dev-a", speed=2.0, sweep="paper-g1", finished_at="2026-02-01T00:00:00")
    ok = ok_rows(load([folder]).rows)
    assert len(ok) == 8
    assert set(ok["sweep"]) == {"paper-g1"}


def test_gpu_variants_get_their_own_series_and_figures(tmp_path):
    folder = make_device(tmp_path / "results", "dev-gpu")
    rows = []
    for dtype, graph, factor in (("float32", False, 1.0), ("float16", False, 0.5), ("float32", True, 0.7)):
        for c1, c2, images in G1_GPU:
            median = factor * 1e3 / images
            settings = f"batch=8,cudnn_benchmark=true,tf32=false,dtype={dtype},channels_last=false,cuda_graph={graph}"
            rows.append(
                {
                    "schema_version": SCHEMA_VERSION,
                    "cell": f"g1/c1={c1},c2={c2},hw=56/torch-cuda/{settings.lower()}",
                    "status": "ok",
                    "workload": "g1",
                    "workload_args": {"c1": c1, "c2": c2, "hw": 56},
                    "backend": "torch-cuda",
                    "batch": 8,
                    "cudnn_benchmark": True,
                    "tf32": False,
                    "dtype": dtype,
                    "channels_last": False,
                    "cuda_graph": graph,
                    "flops": 62_000_000 + c1,
                    "mac": 4_000_000 + c2 * 1000,
                    "mac_bytes": 16_000_000 + c2 * 4000,
                    "median_ms": median,
                    "iqr_ms": median * 0.02,
                    "images_per_s": 8e3 / median,
                    "batches_per_s": 1e3 / median,
                    "pipelined_ms": median / 2,
                    "is_noisy": False,
                    "finished_at": "2026-01-01T00:00:00+00:00",
                }
            )
    write_rows(folder / "gpu.csv", rows)
    ok = ok_rows(load([folder]).rows)
    assert set(ok["variant"]) == {
        "ort-cpu",
        "torch-cpu",
        "torch-cuda",
        "torch-cuda dtype=float16",
        "torch-cuda cuda_graph=true",
    }
    text = write_report(load([folder]), "dev-gpu", tmp_path / "report").read_text()
    assert "latency_vs_cost_torch-cuda_dtype-float16.png" in text
    assert "| 1 (g1) | torch-cuda | batch=8,cudnn_benchmark=true,tf32=false,dtype=float16" in text
    assert (tmp_path / "report" / "latency_vs_cost_torch-cuda_cuda_graph-true.png").exists()


def test_settings_compared_pairs_cells_that_differ_in_one_setting(tmp_path):
    """The gpu-check's quotes: eager against CUDA graph and float32 against float16, per cell and summarised."""
    test_gpu_variants_get_their_own_series_and_figures(tmp_path)
    loaded = load([tmp_path / "results" / "dev-gpu"])
    found = pairs.setting_pairs(ok_rows(loaded.rows))
    # 4 G1 cells x (dtype, cuda_graph); float16 against cuda_graph=true differs in two settings: no pair
    assert sorted(found.groupby("setting").size().items()) == [("cuda_graph", 4), ("dtype", 4)]
    dtype = found[found["setting"] == "dtype"]
    assert set(dtype["before"]) == {"float32"} and set(dtype["after"]) == {"float16"}
    assert dtype["speedup"].tolist() == pytest.approx([2.0] * 4)
    text = (tmp_path / "report" / "index.md").read_text()
    assert "| torch-cuda | cuda_graph: false -> true | 4 | 1.43x (within noise) | 1.43-1.43x | 0 of 4 |" in text
    assert "| torch-cuda | dtype: float32 -> float16 | 4 | 2.00x (within noise) | 2.00-2.00x | 0 of 4 |" in text


def test_a_setting_pair_runs_from_the_default_or_the_smaller_value_and_knows_separated_intervals():
    def row(settings, ms, low, high, batch=1):
        return {
            "cell": f"g2/g=1,c=128,hw=56/torch-cpu/{settings}",
            "backend": "torch-cpu",
            "median_ms": ms,
            "images_per_s": 1e3 * batch / ms,
            "ci_low_ms": low,
            "ci_high_ms": high,
        }

    ok = pd.DataFrame(
        [
            row("batch=1,threads=2,malloc=steady", 6.0, 5.9, 6.1),
            row("batch=1,threads=1,malloc=steady", 10.0, 9.0, 11.0),
            row("batch=1,threads=1,malloc=glibc", 10.5, 9.5, 11.5),
            row("batch=4,threads=1,malloc=steady", 20.0, None, None, batch=4),
        ]
    )
    found = pairs.setting_pairs(ok).set_index("setting")
    assert len(found) == 3
    threads = found.loc["threads"]
    assert (threads["before"], threads["after"], threads["separated"]) == ("1", "2", True)
    assert threads["speedup"] == pytest.approx(10 / 6)
    malloc = found.loc["malloc"]
    assert (malloc["before"], malloc["after"], malloc["separated"]) == ("steady", "glibc", False)
    batch = found.loc["batch"]  # per image: 4 images in 20 ms against 1 in 10 ms
    assert (batch["before"], batch["after"], batch["speedup"], batch["separated"]) == ("1", "4", 2.0, False)
    text = "\n".join(index._settings_section(ok))
    assert "| torch-cpu | threads: 1 -> 2 | 1 | 1.67x | 1.67-1.67x | 1 of 1 |" in text
    assert "| torch-cpu | malloc: steady -> glibc | 1 | 0.95x (within noise) | 0.95-0.95x | 0 of 1 |" in text
    assert "| 10.000 | 6.000 | 1.67x |" in text and "| 10.000 | 10.500 | 0.95x (within noise) |" in text


def test_report_shows_the_noise_floor_and_groups_shared_hardware_under_its_own_advice(tmp_path):
    folder = make_device(tmp_path / "results", "dev-a")
    rows = read_rows(folder / "default.csv")
    shared = "IQR is 21% of the median, on shared hardware: the device's noise floor is 24% (a fixed kernel's p90/p10)"
    for i, row in enumerate(rows):
        row["noise_floor"] = 0.20 + 0.01 * i  # median of 0.20 ... 0.27: 24%
        if row["is_noisy"]:
            row["noise"] = shared
    write_rows(folder / "default.csv", rows)
    text = write_report(load([folder]), "dev-a", tmp_path / "report").read_text()
    assert "| default | 8 | 8 | 0 | 0 | 2 | 5 | 0.3 | 24% |" in text
    assert f"| shared | 2 | {stats.CAUSES['shared'][1]} |" in text and "| spread |" not in text
    assert "closing programs will not help" in stats.CAUSES["shared"][1]


def test_report_json_gives_the_cells_verdicts_and_noise_by_cause(tmp_path):
    folder = make_device(tmp_path / "results", "dev-a")
    out = _cli("report", str(folder), "--out", str(tmp_path / "report"), "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["device_id"] == "dev-a" and summary["report"] == str(tmp_path / "report" / "index.md")
    assert len(summary["cells"]) == 8 and all(c["median_ms"] > 0 for c in summary["cells"])
    assert {(t["table"], t["backend"], t["verdict"]) for t in summary["paper_tables"]} == {
        (1, "ort-cpu", "holds"),
        (1, "torch-cpu", "holds"),
    }
    assert summary["noise_by_cause"] == {"spread": 2}


def test_compare_leaves_out_a_folder_without_results_rows_and_says_so(tmp_path):
    root = tmp_path / "results"
    make_device(root, "dev-a")
    make_device(root, "dev-b", speed=2.0)
    only_breakdown = root / "dev-c"
    only_breakdown.mkdir()
    write_rows(only_breakdown / "breakdown.csv", [{"network": "x", "category": "Conv", "percent": 100.0}])
    result = compare([root], tmp_path / "compare")
    assert [s["label"] for s in result.sides] == ["dev-a", "dev-b"]
    assert any("left out" in w and "dev-c" in w for w in result.warnings)
