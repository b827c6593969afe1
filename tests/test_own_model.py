"""A model of the user's, named by an import path or an .onnx file, through every verb: cost, time on torch-cpu and
ort-cpu, a sweep, an export bundle run without torch, the breakdown; and the errors a user can run into."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from shufflebench import onnx_cost
from shufflebench.results import read_rows, read_table

ROOT = Path(__file__).resolve().parents[1]
TINY_NET = '''
"""A block with the ops efficient CNNs use: depthwise conv, squeeze-excite, hardswish, residual add, concat, shuffle."""
import torch
from torch import nn


class Shuffle(nn.Module):
    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class TinyNet(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.depthwise = nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False)
        self.squeeze = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(width, width // 4, 1), nn.ReLU(),
                                     nn.Conv2d(width // 4, width, 1), nn.Sigmoid())
        self.act = nn.Hardswish()
        self.shuffle = Shuffle(2)
        self.head = nn.Conv2d(2 * width, 10, 1)

    def forward(self, x):
        x = self.stem(x)
        y = self.depthwise(x)
        y = y * self.squeeze(y)
        y = self.act(y) + x
        return self.head(self.shuffle(torch.cat([x, y], dim=1)))


def tiny_net(width: int = 16):
    """The module alone: the caller gives input_shape."""
    return TinyNet(width)


def tiny_net_with_shape(width: int = 16, resolution: int = 32):
    return TinyNet(width), (3, resolution, resolution)


def not_a_module():
    return 42
'''


def shufflebench(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "shufflebench.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


@pytest.fixture
def project(tmp_path) -> Path:
    (tmp_path / "mymodels.py").write_text(TINY_NET)
    return tmp_path


def test_cost_of_an_import_path_is_half_of_flop_counter_mode(project):
    out = shufflebench("cost", "mymodels:tiny_net", "width=16", "--input-shape", "3x32x32", "--json", cwd=project)
    assert out.returncode == 0, out.stderr
    counted = json.loads(out.stdout)
    sys.path.insert(0, str(project))
    try:
        import mymodels

        with FlopCounterMode(display=False) as counter, torch.no_grad():
            mymodels.tiny_net(16).eval()(torch.randn(1, 3, 32, 32))
    finally:
        sys.path.remove(str(project))
        sys.modules.pop("mymodels", None)
    assert counted["flops"] * 2 == counter.get_total_flops()
    assert counted["workload_args"] == {"width": 16, "input_shape": "3x32x32"}
    by_file = shufflebench("cost", "mymodels.py:tiny_net_with_shape", "--json", cwd=project)
    assert json.loads(by_file.stdout)["flops"] == counted["flops"]  # the callable gives the 3x32x32 itself


def test_time_on_torch_and_onnx_runtime_export_a_bundle_and_run_it_without_torch(project):
    for backend in ("torch-cpu", "ort-cpu"):
        out = shufflebench(
            "time",
            "mymodels:tiny_net_with_shape",
            "--backend",
            backend,
            "--processes",
            "1",
            "--min-time",
            "0.05",
            "--json",
            cwd=project,
        )
        assert out.returncode == 0, out.stderr
        row = json.loads(out.stdout)
        assert row["status"] == "ok" and row["median_ms"] > 0 and row["source"]
        assert row["cell"].startswith(f"mymodels:tiny_net_with_shape@{row['source']}/")
    assert row["mac_runtime"] > 0 and row["runtime_ops"]  # the ORT row counts the graph the runtime ran
    (project / "own.yaml").write_text(
        "measure: {processes: 2, max_processes: 2, probe: false, min_time: 0.02, warmup_time: 0, min_samples: 3}\n"
        "settings: {backend: [torch-cpu, ort-cpu], threads: 1}\n"
        "workloads: [{name: mymodels:tiny_net, grid: {width: [8, 16], input_shape: 3x32x32}}]\n"
    )
    out = shufflebench("run", "own.yaml", "--results", "results", cwd=project)
    assert out.returncode == 0, out.stderr
    rows = read_rows(next((project / "results").glob("*/own.csv")))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    out = shufflebench("export", "own.yaml", "--backend", "ort-cpu", "--out", "bundle", cwd=project)
    assert out.returncode == 0, out.stderr
    manifest = json.loads((project / "bundle" / "manifest.json").read_text())
    exported = project / "bundle" / manifest["cells"][0]["prepared"]["onnx"]
    assert onnx_cost.count(exported).flops == manifest["cells"][0]["prepared"]["cost"]["flops"]  # graph = module
    blocker = project / "blocker" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is blocked in this test')\n")
    out = shufflebench(
        "run", "bundle", "--results", "board", cwd=project, env={"PYTHONPATH": f"{blocker.parent}{os.pathsep}{ROOT}"}
    )
    assert out.returncode == 0, out.stderr
    board = read_rows(next((project / "board").glob("*/own.csv")))
    assert len(board) == 2 and {r["status"] for r in board} == {"ok"}
    assert {r["cell"] for r in board} == {r["cell"] for r in rows if r["backend"] == "ort-cpu"}  # they join


@pytest.fixture(scope="module")
def shufflenet_onnx(tmp_path_factory) -> Path:
    from shufflebench import blocks
    from shufflebench.export import export

    w = blocks.build("shufflenet_v2", width=0.5)
    path = tmp_path_factory.mktemp("onnx") / "shufflenet_v2.onnx"
    export(w.module, w.input_shape, path)
    return path


def test_modules_named_like_the_package_beside_the_model_break_nothing(project):
    # names common in ML projects: each one fails loudly if any process of the run imports it instead of the package
    shadow = "raise RuntimeError('a module of the user was imported in place of the package')\n"
    (project / "shufflebench.py").write_text(shadow)
    (project / "bench.py").write_text(shadow)
    (project / "blocks").mkdir()
    (project / "blocks" / "__init__.py").write_text(shadow)
    console_script = Path(sys.executable).parent / "shufflebench"  # as a user runs it: the installed package
    for backend in ("torch-cpu", "ort-cpu"):
        out = subprocess.run(
            [console_script, "time", "mymodels:tiny_net_with_shape", "--backend", backend, "--processes", "2"]
            + ["--min-time", "0.05", "--json"],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=project,
        )
        assert out.returncode == 0, out.stderr
        row = json.loads(out.stdout)
        assert row["status"] == "ok" and row["processes"] >= 2, row  # more where the first were spread


def test_cost_of_an_onnx_file_is_the_cost_of_the_network(shufflenet_onnx):
    from_file = shufflebench("cost", str(shufflenet_onnx), "--json", cwd=shufflenet_onnx.parent)
    registered = shufflebench("cost", "shufflenet_v2", "width=0.5", "--json", cwd=shufflenet_onnx.parent)
    assert from_file.returncode == 0, from_file.stderr
    assert json.loads(from_file.stdout)["flops"] == json.loads(registered.stdout)["flops"]
    assert json.loads(from_file.stdout)["params"] == json.loads(registered.stdout)["params"]


def test_an_onnx_file_runs_on_onnx_runtime_and_in_a_sweep(shufflenet_onnx, tmp_path):
    out = shufflebench("time", str(shufflenet_onnx), "--processes", "1", "--min-time", "0.05", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)
    assert row["backend"] == "ort-cpu" and row["flops"] > 0 and row["exporter"] is None and len(row["source"]) == 12
    out = shufflebench("breakdown", str(shufflenet_onnx), "--runs", "3", "--results", "r", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    shares, _ = read_table(next((tmp_path / "r").glob("*/breakdown.csv")), required="category")
    assert {r["source"] for r in shares} == {"ort-cpu opt=disable", "ort-cpu opt=all"}  # ONNX Runtime only
    assert sum(r["percent"] for r in shares if r["source"] == "ort-cpu opt=all") == pytest.approx(100, abs=0.1)


@pytest.mark.parametrize(
    "args,message",
    [
        (["cost", "nosuchmodule:make"], "nosuchmodule:make: cannot import nosuchmodule (ModuleNotFoundError"),
        (["cost", "mymodels:nope"], "mymodels:nope: mymodels has no attribute 'nope'"),
        (["cost", "mymodels:not_a_module"], "returned int; it must return an nn.Module"),
        (["cost", "mymodels:tiny_net"], "returned a module without an input shape; give one sample's shape"),
        (["cost", "mymodels:tiny_net", "--input-shape", "3xbig"], "input_shape must be positive integers"),
        (["cost", "missing.onnx"], "missing.onnx: no such ONNX file"),
        (["cost", "mymodels.py.onnx"], "not an ONNX model"),
        (["time", "open.onnx"], "its input has dynamic dimensions (3xhxw after the batch); give input_shape"),
        (["time", "fixed.onnx", "--backend", "torch-cpu"], "is an ONNX file: it runs on ONNX Runtime backends only"),
    ],
)
def test_bad_models_are_one_line(project, args, message):
    (project / "mymodels.py.onnx").write_text("this is not protobuf")
    module = torch.nn.Conv2d(3, 4, 1).eval()
    torch.onnx.export(module, (torch.randn(1, 3, 8, 8),), str(project / "fixed.onnx"), dynamo=False)
    torch.onnx.export(
        module,
        (torch.randn(1, 3, 8, 8),),
        str(project / "open.onnx"),
        dynamo=False,
        input_names=["x"],
        dynamic_axes={"x": {2: "h", 3: "w"}},
    )
    out = shufflebench(*args, cwd=project)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
