"""Export bundles, and running one where torch cannot be imported."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shufflebench import bundle, config, device
from shufflebench.errors import UserError
from shufflebench.results import read_rows

ROOT = Path(__file__).resolve().parents[1]
SWEEP = """
sweep: tiny
settings: {backend: [ort-cpu, torch-cpu], threads: 1}
measure: {processes: 2, probe: false, min_time: 0.02, warmup_time: 0, warmup_calls: 2, min_samples: 3}
workloads:
  - {name: g1, grid: {c1: 8, c2: 16, hw: 8}}
  - {name: g4, grid: {c: 8, hw: 8}}
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundle")
    (folder / "tiny.yaml").write_text(SWEEP)
    manifest = bundle.export_bundle(config.load(folder / "tiny.yaml"), folder / "bundle")
    return manifest.parent


def test_manifest_holds_the_ort_cells_with_host_costs(exported):
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["format"] == "shufflebench-bundle" and manifest["sweep"] == "tiny"
    assert [e["cell"]["backend"] for e in manifest["cells"]] == ["ort-cpu", "ort-cpu"]  # torch cells left out
    first = manifest["cells"][0]["prepared"]
    assert first["cost"]["flops"] == 10 * 2 * 8 * 8 * 8 * 16 and first["input_shape"] == [1, 8, 8, 8]
    assert (exported / first["onnx"]).exists() and first["export"]["exporter"] == "dynamo"
    assert manifest["exported_on"] == device.collect()["device_id"] and "torch" in manifest["versions"]


def test_load_bundle_gives_cells_that_join_the_hosts(exported):
    sweep, prepared = bundle.load_bundle(exported)
    host = config.load(exported.parent / "tiny.yaml")
    assert [c.key for c in sweep.cells] == [c.key for c in host.cells if c.backend == "ort-cpu"]
    assert all(Path(p.onnx).is_absolute() for p in prepared.values())
    assert sweep.run.processes == 2


def test_a_torch_free_process_runs_the_bundle(exported, tmp_path):
    # A `torch` package that refuses to import, first on the path of the runner and of every worker it starts.
    blocker = tmp_path / "blocker" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is blocked in this test')\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker.parent}{os.pathsep}{ROOT}"}
    out = subprocess.run(
        [sys.executable, "-m", "shufflebench.cli", "run", str(exported), "--results", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    (csv,) = (tmp_path / "r").glob("*/tiny.csv")
    rows = read_rows(csv)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    # rows are written as cells finish, and a cell whose processes fell into modes finishes later
    (g1,) = [r for r in rows if r["workload"] == "g1"]
    assert g1["flops"] == 10 * 2 * 8 * 8 * 8 * 16 and g1["median_ms"] > 0
    assert g1["exporter"] == "dynamo"
    check = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True, env=env)
    assert "torch is blocked" in check.stderr  # the blocker really was in force


def test_exporting_a_sweep_without_ort_cells_says_why(tmp_path):
    (tmp_path / "s.yaml").write_text("settings: {backend: torch-cpu}\nworkloads: [{name: g4, grid: {c: 8}}]\n")
    with pytest.raises(UserError, match="no ONNX Runtime cells to export"):
        bundle.export_bundle(config.load(tmp_path / "s.yaml"), tmp_path / "b")


@pytest.mark.parametrize(
    "setup,message",
    [
        (lambda b: None, "not a bundle (no manifest.json)"),
        (lambda b: (b / "manifest.json").write_text("{"), "not valid JSON"),
        (lambda b: (b / "manifest.json").write_text('{"format": "other"}'), "not a shufflebench-bundle"),
    ],
)
def test_bad_bundles_are_refused_with_one_line(tmp_path, setup, message):
    folder = tmp_path / "b"
    folder.mkdir()
    setup(folder)
    out = subprocess.run(
        [sys.executable, "-m", "shufflebench.cli", "run", str(folder)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1


def _crafted(exported: Path, tmp_path: Path, change) -> Path:
    import shutil

    copy = tmp_path / "crafted"
    shutil.copytree(exported, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    change(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda m: m.update(sweep="../../x"), "sweep: must be a name of letters"),
        (lambda m: m.update(sweep="/tmp/x"), "sweep: must be a name of letters"),
        (lambda m: m["cells"][0]["prepared"].update(onnx="/etc/passwd"), "must be a path inside the bundle"),
        (lambda m: m["cells"][0]["prepared"].update(onnx="../../outside.onnx"), "leaves the bundle folder"),
        (lambda m: m["cells"][0].pop("prepared"), "malformed manifest"),
        (lambda m: m["run"].update(processes=0), "run.processes: must be a positive integer"),
        (lambda m: m["run"]["measure"].update(min_time=float("nan")), "run.min_time: must be a finite number"),
        (lambda m: m.update(format_version=1), "export it again"),
        (lambda m: m["cells"][0]["cell"].update(batch="abc"), "cells[0].cell.batch: must be a positive integer"),
        (lambda m: m["cells"][0]["cell"]["settings"].update(threads=-2), "cells[0].cell.threads: must be a positive"),
        (lambda m: m["cells"][0]["cell"]["settings"].update(dtype="float16"), "ort-cpu takes no setting 'dtype'"),
        (lambda m: m["cells"][0]["cell"].update(backend="tensorrt"), "unknown backend 'tensorrt'"),
    ],
)
def test_a_crafted_manifest_cannot_reach_outside_the_bundle(exported, tmp_path, change, message):
    with pytest.raises(UserError, match=re.escape(message)):
        bundle.load_bundle(_crafted(exported, tmp_path, change))


def test_export_leaves_files_it_did_not_write(tmp_path):
    (tmp_path / "tiny.yaml").write_text(SWEEP)
    mine = tmp_path / "out" / "models" / "mine.onnx"
    mine.parent.mkdir(parents=True)
    mine.write_text("not ours")
    bundle.export_bundle(config.load(tmp_path / "tiny.yaml"), tmp_path / "out")
    assert mine.read_text() == "not ours"


def test_a_missing_model_file_is_named(exported, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    victim = next((copy / "models").glob("*.onnx"))
    victim.unlink()
    with pytest.raises(UserError, match=f"models/{victim.name} is missing"):
        bundle.load_bundle(copy)


def test_the_torch_free_modules_do_not_import_torch():
    modules = [
        "shufflebench.cli",
        "shufflebench.runner",
        "shufflebench.worker",
        "shufflebench.config",
        "shufflebench.bundle",
        "shufflebench.device",
        "shufflebench.results",
        "shufflebench.stats",
        "shufflebench.measure",
        "shufflebench.backends",
        "shufflebench.backends.ort_backend",
        "shufflebench.catalog",
        "shufflebench.lock",
        "shufflebench.api",
        "shufflebench.launcher",
        "shufflebench.preparation",
    ]
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr
