"""The fault suite: a hostile but fair user, a power cut, a second terminal, a borrowed board.

Every case here once lost rows, wrote outside results/, or answered with a traceback. Each test drives the command
line as a user would and checks three things: no row already written is lost, nothing is written where it was not
asked to be, and the answer is one line with the documented exit status (2 for bad input or an unusable path, 130
for Ctrl-C, 143 for SIGTERM, 1 for a run whose every cell failed).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shufflebench import device
from shufflebench.results import ResultsStore, read_rows, read_table
from shufflebench.launcher import WORK_PREFIX

ROOT = Path(__file__).resolve().parents[1]
FAST = (
    "measure: {processes: 2, max_processes: 2, probe: false, min_time: 0.02, warmup_time: 0, warmup_calls: 2, "
    "min_samples: 3}\n"
)
TINY = FAST + "settings: {backend: torch-cpu, threads: 1}\nworkloads: [{name: g4, grid: {c: [8, 12, 16], hw: 8}}]\n"


def shufflebench(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "shufflebench.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        cwd=cwd,
    )


def one_line(out: subprocess.CompletedProcess, status: int = 2) -> str:
    """The answer of a failed command: exactly one line on stderr, no traceback, the expected exit status."""
    assert out.returncode == status, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert "Traceback" not in out.stderr and lines, out.stderr
    return lines[-1]


def results_csv(root: Path, sweep: str) -> Path:
    return root / device.collect()["device_id"] / f"{sweep}.csv"


@pytest.fixture
def tiny(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> Path:
    """A results root holding the tiny sweep, measured once for the tests that damage a copy of it."""
    root = tmp_path_factory.mktemp("measured")
    (root / "tiny.yaml").write_text(TINY)
    out = shufflebench("run", str(root / "tiny.yaml"), "--results", str(root / "results"))
    assert out.returncode == 0, out.stderr
    return root / "results"


def _copy(measured: Path, tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(measured, tmp_path / "results")
    return tmp_path / "results"


# --- rows lost ---


def test_two_writers_of_one_results_file_keep_each_others_rows(tmp_path):
    path = tmp_path / "s.csv"
    first, second = ResultsStore(path), ResultsStore(path)  # two runs that opened the file before either wrote
    for i in range(3):
        first.put({"cell": f"a{i}", "status": "ok"})
        second.put({"cell": f"b{i}", "status": "ok"})
    assert sorted(r["cell"] for r in read_rows(path)) == ["a0", "a1", "a2", "b0", "b1", "b2"]


def test_two_runs_with_different_temporary_folders_do_not_time_each_other(tmp_path):
    sweep = tmp_path / "both.yaml"
    sweep.write_text(
        FAST.replace("min_time: 0.02", "min_time: 0.3")
        + "settings: {backend: [torch-cpu, ort-cpu], threads: 1}\n"
        + "workloads: [{name: g4, grid: {c: [8, 12, 16], hw: 8}}]\n"
    )
    root = tmp_path / "results"
    (tmp_path / "tmp-a").mkdir()
    (tmp_path / "tmp-b").mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(
        [sys.executable, "-m", "shufflebench.cli", "run", str(sweep), "--backend", "torch-cpu", "--results", str(root)],
        env={**env, "TMPDIR": str(tmp_path / "tmp-a")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any((tmp_path / "tmp-a").glob(f"{WORK_PREFIX}*")):
        time.sleep(0.02)  # the first run holds the lock while its workers run: 6 runs of at least 0.3 s
    second = shufflebench(
        "run", str(sweep), "--backend", "ort-cpu", "--results", str(root), env={"TMPDIR": str(tmp_path / "tmp-b")}
    )
    assert "another sweep is running on this device" in one_line(second)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    rows = read_rows(results_csv(root, "both"))
    assert sorted(r["backend"] for r in rows) == ["torch-cpu"] * 3  # every cell of the first, once


def test_a_torn_last_line_is_set_aside_and_the_run_resumes(measured, tmp_path):
    root = _copy(measured, tmp_path)
    csv_path = results_csv(root, "tiny")
    text = csv_path.read_text()
    csv_path.write_text(text[: len(text) - 40])  # a write cut off 40 bytes before its end
    (tmp_path / "tiny.yaml").write_text(TINY)
    out = shufflebench("run", str(tmp_path / "tiny.yaml"), "--results", str(root))
    assert out.returncode == 0, out.stderr
    assert "1 line(s) could not be read" in out.stderr and "tiny.csv.corrupt" in out.stderr
    assert "2 of 3 cells already measured" in out.stderr
    rows, bad = read_table(csv_path)
    assert len(rows) == 3 and not bad
    assert csv_path.with_name("tiny.csv.corrupt").read_text().strip()  # the torn line, kept for a human


def test_random_bytes_appended_to_a_results_file_are_set_aside_and_every_row_kept(measured, tmp_path):
    root = _copy(measured, tmp_path)
    csv_path = results_csv(root, "tiny")
    garbage = random.Random(7).randbytes(300)  # not UTF-8, with a newline or two among them
    csv_path.write_bytes(csv_path.read_bytes() + garbage)
    (tmp_path / "tiny.yaml").write_text(TINY)
    out = shufflebench("run", str(tmp_path / "tiny.yaml"), "--results", str(root))
    assert out.returncode == 0, out.stderr
    assert "could not be read" in out.stderr and "3 of 3 cells already measured" in out.stderr
    rows, bad = read_table(csv_path)
    assert len(rows) == 3 and not bad
    assert csv_path.with_name("tiny.csv.corrupt").read_bytes().replace(b"\n", b"") == garbage.replace(b"\n", b"")


@pytest.mark.parametrize("verb", ["report", "compare"])
def test_report_and_compare_leave_out_unreadable_lines_and_say_so(measured, tmp_path, verb):
    root = _copy(measured, tmp_path)
    with open(results_csv(root, "tiny"), "a") as f:
        f.write("garbage,,,\n")
    other = _copy_as_other_device(root)
    args = [str(root / device.collect()["device_id"])] + ([str(other)] if verb == "compare" else [])
    out = shufflebench(verb, *args, "--out", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    assert "1 line(s) could not be read and are left out" in out.stderr and "Traceback" not in out.stderr
    assert (tmp_path / "out" / "index.md").exists()


def _copy_as_other_device(root: Path) -> Path:
    import shutil

    mine = root / device.collect()["device_id"]
    other = root / "other-device"
    shutil.copytree(mine, other)
    meta = json.loads((other / "device.json").read_text())
    (other / "device.json").write_text(json.dumps({**meta, "device_id": "other-device"}))
    return other


# --- writing outside results/, deleting files: tests/test_bundle.py (crafted manifests, export keeps files) ---


def test_fresh_with_a_backend_filter_discards_only_that_backends_rows(tmp_path):
    sweep = tmp_path / "both.yaml"
    sweep.write_text(
        FAST + "settings: {backend: [torch-cpu, ort-cpu], threads: 1}\nworkloads: [{name: g4, grid: {c: 8, hw: 8}}]\n"
    )
    root = tmp_path / "results"
    assert shufflebench("run", str(sweep), "--results", str(root)).returncode == 0
    before = {r["backend"]: r for r in read_rows(results_csv(root, "both"))}
    out = shufflebench("run", str(sweep), "--results", str(root), "--fresh", "--backend", "torch-cpu")
    assert out.returncode == 0, out.stderr
    after = {r["backend"]: r for r in read_rows(results_csv(root, "both"))}
    assert after["ort-cpu"] == before["ort-cpu"]  # kept as it was
    assert after["torch-cpu"]["started_at"] > before["torch-cpu"]["finished_at"]  # measured again


# --- report and compare on rows that are not ok ---


def test_report_and_compare_work_without_a_single_measured_cell(tmp_path):
    sweep = tmp_path / "gpu.yaml"
    sweep.write_text(FAST + "settings: {backend: torch-cuda}\nworkloads: [{name: g4, grid: {c: 8, hw: 8}}]\n")
    root = tmp_path / "results"
    assert shufflebench("run", str(sweep), "--results", str(root)).returncode == 0
    folder = root / device.collect()["device_id"]
    out = shufflebench("report", str(folder), "--out", str(tmp_path / "report"))
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "report" / "index.md").read_text()
    assert "No cell was measured successfully" in text and "1 cells skipped" in text
    other = _copy_as_other_device(root)
    out = shufflebench("compare", str(folder), str(other), "--out", str(tmp_path / "compare"))
    assert out.returncode == 0, out.stderr
    assert (
        "No figure: no folder but the baseline has a measured cell in common"
        in (tmp_path / "compare" / "index.md").read_text()
    )


# --- one line, never a traceback ---


def test_a_broken_device_json_is_a_warning(measured, tmp_path):
    root = _copy(measured, tmp_path)
    folder = root / device.collect()["device_id"]
    (folder / "device.json").write_text("{broken")
    out = shufflebench("report", str(folder), "--out", str(tmp_path / "report"))
    assert out.returncode == 0, out.stderr
    assert "device.json: unreadable" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("how,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_run_says_what_it_kept_and_leaves_no_work_folders(tmp_path, how, status):
    sweep = tmp_path / "slow.yaml"
    sweep.write_text(
        TINY.replace("min_time: 0.02", "min_time: 0.5").replace("c: [8, 12, 16]", "c: [8, 10, 12, 14, 16]")
    )
    root = tmp_path / "results"
    work = tmp_path / "tmp"
    work.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shufflebench.cli", "run", str(sweep), "--results", str(root)],
        env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(work)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(work.glob(f"{WORK_PREFIX}*")):
        time.sleep(0.02)  # a worker is running
    time.sleep(0.3)
    proc.send_signal(how)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    last = err.strip().splitlines()[-1]
    assert "interrupted:" in last and "cells measured in full" in last and "run the same command again" in last
    assert "Traceback" not in err
    assert not list(work.glob(f"{WORK_PREFIX}*"))


def test_work_folders_of_a_killed_run_are_removed_by_the_next(tiny, tmp_path):
    work = tmp_path / "tmp"
    dead = work / f"{WORK_PREFIX}999999999-left-behind"
    dead.mkdir(parents=True)
    out = shufflebench("run", str(tiny), "--results", str(tmp_path / "results"), env={"TMPDIR": str(work)})
    assert out.returncode == 0, out.stderr
    assert not dead.exists()


def test_a_results_path_that_is_a_file_is_one_line(tiny, tmp_path):
    (tmp_path / "afile").write_text("")
    line = one_line(shufflebench("run", str(tiny), "--results", str(tmp_path / "afile")))
    assert "afile" in line and "Not a directory" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_results_folder_fails_before_any_work(tiny, tmp_path):
    root = tmp_path / "results"
    folder = root / device.collect()["device_id"]
    folder.mkdir(parents=True)
    folder.chmod(0o555)
    try:
        started = time.monotonic()
        line = one_line(shufflebench("run", str(tiny), "--results", str(root)))
        assert "Permission denied" in line and time.monotonic() - started < 20  # before preparing workloads
    finally:
        folder.chmod(0o755)


def test_a_report_folder_that_is_a_file_is_one_line(measured, tmp_path):
    (tmp_path / "taken").write_text("")
    folder = measured / device.collect()["device_id"]
    assert "taken" in one_line(shufflebench("report", str(folder), "--out", str(tmp_path / "taken" / "sub")))


@pytest.mark.parametrize(
    "args,message",
    [
        (["cost", "shufflenet_v2", "resolution=100000"], "cannot run one forward pass of (1, 3, 100000, 100000)"),
        (["time", "g4", "c=8", "--processes", "0"], "argument --processes: must be a positive integer, got '0'"),
        (["time", "g4", "c=8", "--min-time", "nan"], "argument --min-time: must be a finite number > 0, got 'nan'"),
        (["time", "g4", "c=8", "--set", "dtype=float16"], "torch-cpu takes no setting 'dtype'; it takes: batch: int"),
        (["breakdown", "--runs", "0"], "argument --runs: must be a positive integer"),
        (["report", "no/such/folder"], "no/such/folder: no such results folder"),
        (["breakdown", "missing.onnx"], "error: command line: missing.onnx: no such ONNX file"),  # named once
        (["breakdown", "g1", "c1=abc"], "error: command line: g1: parameter 'c1' must be an integer, got 'abc'"),
    ],
)
def test_bad_command_lines_are_one_line(args, message):
    line = one_line(shufflebench(*args))
    assert message in line and "internal error" not in line


# --- silent ---


def test_a_sweep_that_expands_to_no_cells_says_so_before_importing_torch(tmp_path):
    sweep = tmp_path / "zero.yaml"
    sweep.write_text(FAST + "settings: {backend: torch-cpu}\nworkloads: [{name: g4, grid: {c: [], hw: 8}}]\n")
    code = (
        "import sys; from shufflebench.cli import main; main(sys.argv[1:]); "
        "print(sorted(m for m in sys.modules if m in ('torch', 'scipy.stats')))"
    )
    out = subprocess.run([sys.executable, "-c", code, "run", str(sweep)], capture_output=True, text=True, timeout=120)
    assert "zero.yaml: workloads[0].grid.c: an empty list expands to no cells" in out.stderr
    assert out.stdout.strip() == "[]"  # told before the heavy imports


def test_a_model_that_writes_raw_bytes_to_stdout_is_measured_and_so_are_the_cells_after_it(tmp_path):
    (tmp_path / "rawmodel.py").write_text(
        "import sys\nfrom torch import nn\n\n\n"
        "class Raw(nn.Module):\n"
        "    def forward(self, x):\n"
        "        sys.stdout.buffer.write(bytes(range(256)))  # not text, no newline\n"
        "        return x * 2\n\n\n"
        "def make():\n"
        "    sys.stdout.buffer.write(b'\\xff\\xfe\\x80')\n"
        "    return Raw(), (3, 8, 8)\n"
    )
    sweep = tmp_path / "raw.yaml"
    sweep.write_text(
        FAST + "settings: {backend: torch-cpu, threads: 1}\n"
        "workloads: [{name: 'rawmodel:make'}, {name: g4, grid: {c: 8, hw: 8}}]\n"
    )
    out = shufflebench("run", str(sweep), "--results", str(tmp_path / "results"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = read_rows(tmp_path / "results" / device.collect()["device_id"] / "raw.csv")
    assert sorted(r["workload"] for r in rows if r["status"] == "ok") == ["g4", "rawmodel:make"]


def test_a_scheduler_address_that_is_not_one_is_one_line_at_once(tiny):
    for verb in (["fleet", "run", str(tiny), "--scheduler"], ["fleet", "status", "--scheduler"], ["fleet", "worker"]):
        line = one_line(shufflebench(*verb, "nonsense-address"))
        assert "'nonsense-address' is not a scheduler address; give HOST:PORT" in line


def test_a_backend_filter_that_leaves_nothing_says_so(tiny):
    line = one_line(shufflebench("run", str(tiny), "--backend", "torch-cuda"))
    assert "no cells of backend torch-cuda" in line and "its backends are torch-cpu" in line


def test_a_run_whose_every_cell_failed_exits_non_zero(tmp_path):
    sweep = tmp_path / "fails.yaml"
    sweep.write_text(
        FAST + "settings: {backend: torch-cpu, threads: 1}\nworkloads: [{name: g2, grid: {g: 8, c: 12}}]\n"
    )
    line = one_line(shufflebench("run", str(sweep), "--results", str(tmp_path / "results")), status=1)
    assert "every one of the 1 cells measured failed" in line


def test_time_says_what_it_measures_off_a_terminal_and_takes_a_timeout():
    out = shufflebench("time", "g4", "c=8", "hw=8", "--processes", "1", "--min-time", "60", "--timeout", "8")
    assert "measuring 1 cells x 1 processes, at least 60.2 s each" in out.stderr  # said before the wait
    assert "worker timed out after 8 s" in one_line(out)


# --- leftovers ---


def test_device_json_is_rewritten_only_when_the_device_changed(tmp_path):
    path = tmp_path / "device.json"
    meta = device.collect()
    device.write_if_changed(path, {**meta, "os": "Linux-older-kernel"})
    device.write_if_changed(path, meta)  # same device, another kernel: the committed file stays as it is
    assert json.loads(path.read_text())["os"] == "Linux-older-kernel"
    device.write_if_changed(path, {**meta, "device_id": "another-id", "cpu_model": "Other CPU"})
    assert json.loads(path.read_text())["device_id"] == "another-id"


def test_device_json_gains_a_noise_floor_it_lacked_but_not_every_new_one(tmp_path):
    path = tmp_path / "device.json"
    roofs = {"matmul_gflops": 60.0, "bandwidth_gbs": 15.0}
    meta = device.collect()
    device.write_if_changed(path, {**meta, "probe": {"ort-cpu/threads=1": roofs}})  # written before noise floors
    floored = {"ort-cpu/threads=1": {**roofs, "noise_floor": 0.2, "noise_cv": 0.07}}
    assert device.write_if_changed(path, {**meta, "probe": floored})
    assert json.loads(path.read_text())["probe"]["ort-cpu/threads=1"]["noise_floor"] == 0.2
    other = {"ort-cpu/threads=1": {**roofs, "noise_floor": 0.05, "noise_cv": 0.02}}
    assert not device.write_if_changed(path, {**meta, "probe": other})  # a noisier or quieter hour: not a new device
