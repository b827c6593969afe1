"""The fleet on a real local Dask cluster: a scheduler and two `shufflebench fleet worker` processes, each a device of
its own (labels a and b), driven by `shufflebench fleet run` as a user would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shufflebench.results import read_rows

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
SWEEP = """
measure: {processes: 2, max_processes: 2, probe: false, min_time: 0.2, warmup_time: 0, warmup_calls: 2, min_samples: 3}
settings: {backend: ort-cpu, threads: 1}
workloads: [{name: g4, grid: {c: [8, 12, 16, 20, 24, 28], hw: 8}}]
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shufflebench(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "shufflebench.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=ENV,
    )


class Cluster:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        port = self.address.rsplit(":", 1)[1]
        self.scheduler = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                port,
                "--dashboard-address",
                ":0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=ENV,
        )
        self.workers: dict[str, subprocess.Popen] = {}
        for label in ("a", "b"):
            self.start(label)
        self.wait_for(2)

    def start(self, label: str) -> None:
        self.workers[label] = subprocess.Popen(
            [sys.executable, "-m", "shufflebench.cli", "fleet", "worker", self.address, "--label", label],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=ENV,
            cwd=self.tmp,
        )

    def wait_for(self, n: int) -> str:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            out = shufflebench("fleet", "status", "--scheduler", self.address, cwd=self.tmp, timeout=60)
            if out.returncode == 0 and out.stdout.count("idle") + out.stdout.count("busy") >= n:
                return out.stdout
            time.sleep(0.5)
        raise AssertionError(f"the cluster never showed {n} devices")

    def close(self) -> None:
        for proc in [*self.workers.values(), self.scheduler]:
            proc.terminate()
        for proc in [*self.workers.values(), self.scheduler]:
            proc.wait(timeout=30)


@pytest.fixture
def cluster(tmp_path):
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    c = Cluster(tmp_path)
    yield c
    c.close()


def folders(root: Path) -> dict[str, Path]:
    """Results folders by the device label at the end of their id's name part."""
    return {p.name.rsplit("-", 2)[-2]: p for p in root.iterdir() if p.is_dir()}


def test_two_devices_each_get_their_folder_and_each_cell_once(cluster):
    status = cluster.wait_for(2)
    assert "-a-" in status and "-b-" in status and "ort-cpu" in status
    out = shufflebench("fleet", "run", "sweep.yaml", "--scheduler", cluster.address, cwd=cluster.tmp)
    assert out.returncode == 0, out.stderr
    found = folders(cluster.tmp / "results")
    assert set(found) == {"a", "b"}
    for folder in found.values():
        rows = read_rows(folder / "sweep.csv")
        assert len(rows) == 6 == len({r["cell"] for r in rows}) and {r["status"] for r in rows} == {"ok"}
        assert (folder / "device.json").exists()
    compare = shufflebench("compare", "results", "--out", "compare", cwd=cluster.tmp)
    assert compare.returncode == 0, compare.stderr  # the fleet's folders compare as hand-copied ones do


def test_a_device_that_leaves_keeps_its_rows_and_the_rerun_measures_the_rest(cluster):
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shufflebench.cli",
            "fleet",
            "run",
            "sweep.yaml",
            "--scheduler",
            cluster.address,
            "--devices",
            "b",
            "--grace",
            "3",
        ],
        cwd=cluster.tmp,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    csv = None
    while time.monotonic() < deadline:
        csv = next((cluster.tmp / "results").glob("*-b-*/sweep.csv"), None)
        if csv and read_rows(csv):
            break
        time.sleep(0.1)
    cluster.workers["b"].send_signal(signal.SIGKILL)  # the board drops out mid-sweep
    _, err = run.communicate(timeout=240)
    assert run.returncode == 1, err
    assert "left the cluster" in err and "run the same command again" in err
    kept = {r["cell"]: r["finished_at"] for r in read_rows(csv)}
    assert 1 <= len(kept) < 6
    cluster.start("b")
    cluster.wait_for(2)
    again = shufflebench(
        "fleet", "run", "sweep.yaml", "--scheduler", cluster.address, "--devices", "b", cwd=cluster.tmp
    )
    assert again.returncode == 0, again.stderr
    assert f"{len(kept)} of 6 cells already measured" in again.stderr
    rows = read_rows(csv)
    assert len(rows) == 6 == len({r["cell"] for r in rows})
    assert all(next(r for r in rows if r["cell"] == cell)["finished_at"] == when for cell, when in kept.items())


def test_two_fleet_runs_at_once_never_measure_on_one_device_together(cluster):
    (cluster.tmp / "other.yaml").write_text(SWEEP.replace("c: [8, 12, 16, 20, 24, 28]", "c: [32, 36, 40]"))
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "shufflebench.cli", "fleet", "run", name, "--scheduler", cluster.address],
            cwd=cluster.tmp,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("sweep.yaml", "other.yaml")
    ]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    for folder in folders(cluster.tmp / "results").values():
        for sweep, n in (("sweep", 6), ("other", 3)):
            rows = read_rows(folder / f"{sweep}.csv")
            # a cell that found the machine's sweep lock taken would be an error row saying so
            assert len(rows) == n and {r["status"] for r in rows} == {"ok"}, [r["error"] for r in rows]


def test_an_unreachable_scheduler_is_one_line(tmp_path):
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    out = shufflebench(
        "fleet", "run", "sweep.yaml", "--scheduler", f"tcp://127.0.0.1:{_free_port()}", cwd=tmp_path, timeout=120
    )
    assert out.returncode == 2 and "cannot reach the Dask scheduler" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
