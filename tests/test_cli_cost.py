"""`shufflebench list` and `shufflebench cost` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "shufflebench.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_cost_json_has_the_cost_columns():
    out = run("cost", "g1", "c1=128", "c2=128", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["flops"] == 10 * 2 * 56 * 56 * 128 * 128
    assert data["mac"] == 10 * (2 * 56 * 56 * 256 + 2 * 128 * 128)
    assert data["mac_bytes"] == 4 * data["mac"]
    assert data["params"] == 10 * 2 * 128 * 128 and data["elementwise_ops"] == 0
    assert data["workload_args"] == {"c1": 128, "c2": 128, "hw": 56} and data["input_shape"] == [1, 128, 56, 56]


def test_cost_batch_and_by_layer():
    out = run("cost", "g4", "c=32", "hw=8", "--batch", "2", "--by-layer")
    assert out.returncode == 0, out.stderr
    assert "input 2x32x8x8" in out.stdout
    assert "0.conv1" in out.stdout and "Conv2d" in out.stdout and "elementwise_ops" in out.stdout
    assert "MAC" in out.stdout and "multiply-adds" in out.stdout


def test_list_shows_parameters_and_defaults():
    out = run("list", "g*")
    assert out.returncode == 0
    assert "g4  c: int, relu: bool = True, shortcut: bool = True, hw: int = 56" in out.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["cost", "g1", "c1=abc", "c2=128"], "parameter 'c1' must be an integer, got 'abc'"),
        (["cost", "g6"], "unknown workload 'g6'; did you mean"),
        (["cost", "g1", "c1=8", "c2=8", "width=2"], "unknown parameter 'width'"),
        (["cost", "g2", "g=2", "c=-64"], "parameter 'c' must be positive"),
        (["cost", "g2", "g=8", "c=180"], "g=8 must divide c=180"),
        (["cost", "g1", "c1"], "expected a workload parameter as key=value"),
        (["list", "zzz*"], "no workload matches 'zzz*'"),
        (["cost"], "the following arguments are required: name"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message):
    out = run(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_list_shows_every_network_variant():
    out = run("list", "shufflenet*")
    assert out.returncode == 0
    assert out.stdout.splitlines() == [
        "shufflenet_v1  groups: 1|2|3|4|8 = 3, width: 0.25|0.5|1.0|1.5|2.0 = 1.0, resolution: int = 224",
        "shufflenet_v2  width: 0.5|1.0|1.5|2.0 = 1.0, resolution: int = 224",
    ]


def test_a_reader_that_stops_early_gets_no_traceback():
    # `shufflebench cost densenet121 --by-layer --json | head -1`: about 100 kB, more than a pipe holds
    proc = subprocess.Popen(
        [sys.executable, "-m", "shufflebench.cli", "cost", "densenet121", "--by-layer", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline() == "{\n"
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert "Traceback" not in proc.stderr.read()
