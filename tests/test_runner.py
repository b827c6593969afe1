"""`shufflebench run` end to end on tiny workloads: rows, error rows, resume after SIGKILL, the device lock."""

from __future__ import annotations

import dataclasses
import io
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shufflebench import config, device, launcher, lock, runner
from shufflebench.errors import Interrupted
from shufflebench.results import read_rows
from shufflebench.worker import Failure, ProcessResult

FAST = (
    "measure: {processes: 2, max_processes: 2, probe: false, min_time: 0.02, warmup_time: 0.01, warmup_calls: 2, "
    "min_samples: 3}\n"
)
SWEEP = (
    FAST
    + """
settings: {backend: [torch-cpu, ort-cpu], threads: 1}
workloads:
  - {name: g1, grid: {c1: 8, c2: 16, hw: 8}}
  - {name: g4, grid: {c: 8, hw: 8}}
  - {name: g2, grid: {g: 8, c: 12, hw: 8}}   # 8 does not divide 12: the builder refuses, the sweep goes on
"""
)


def shufflebench(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "shufflebench.cli", *args], capture_output=True, text=True, timeout=300, **kwargs
    )


def results_file(root: Path, sweep: str = "sweep") -> Path:
    return root / device.collect()["device_id"] / f"{sweep}.csv"


@pytest.fixture
def sweep_file(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP)
    return path


def test_a_sweep_writes_one_row_per_cell_and_errors_do_not_stop_it(sweep_file, tmp_path):
    out = shufflebench("run", str(sweep_file), "--results", str(tmp_path / "results"))
    assert out.returncode == 0, out.stderr
    rows = {r["cell"]: r for r in read_rows(results_file(tmp_path / "results"))}
    assert len(rows) == 6
    errors = [r for r in rows.values() if r["status"] == "error"]
    assert len(errors) == 2 and all("g=8 must divide c=12" in r["error"] for r in errors)
    ok = [r for r in rows.values() if r["status"] == "ok"]
    assert len(ok) == 4
    for r in ok:
        assert r["median_ms"] > 0 and r["processes"] == 2 and len(r["samples_ms"]) == 2
        assert r["flops"] > 0 and r["mac"] > 0 and r["device_id"] == device.collect()["device_id"]
        assert r["p10_ms"] <= r["median_ms"] <= r["p90_ms"]
    assert {r["exporter"] for r in ok if r["backend"] == "ort-cpu"} == {"dynamo"}
    assert "median_ms" in out.stdout  # the summary table
    assert (tmp_path / "results" / device.collect()["device_id"] / "device.json").exists()

    again = shufflebench("run", str(sweep_file), "--results", str(tmp_path / "results"))
    assert "4 of 6 cells already measured" in again.stderr
    assert len(read_rows(results_file(tmp_path / "results"))) == 6


def test_sigkill_then_rerun_measures_only_the_missing_cells(sweep_file, tmp_path):
    root = tmp_path / "results"
    proc = subprocess.Popen(
        [sys.executable, "-m", "shufflebench.cli", "run", str(sweep_file), "--results", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    path = results_file(root)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if path.exists() and any(r["status"] == "ok" for r in read_rows(path)):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {r["cell"]: r for r in read_rows(path) if r["status"] == "ok"}
    assert 1 <= len(before) < 4

    out = shufflebench("run", str(sweep_file), "--results", str(root))
    assert out.returncode == 0, out.stderr
    assert f"{len(before)} of 6 cells already measured" in out.stderr
    rows = read_rows(path)
    assert sorted(r["cell"] for r in rows) == sorted({r["cell"] for r in rows})  # no duplicates
    assert sum(r["status"] == "ok" for r in rows) == 4
    for cell, row in before.items():  # the rows written before the kill were kept, not measured again
        assert next(r for r in rows if r["cell"] == cell)["finished_at"] == row["finished_at"]


def test_a_second_sweep_on_the_same_device_is_refused_before_it_imports_torch(sweep_file, tmp_path):
    code = (
        "import sys; from shufflebench.cli import main; status = main(sys.argv[1:]); "
        "print(status, sorted(m for m in sys.modules if m in ('torch', 'scipy.stats')))"
    )
    with lock.device_lock(device.collect()["machine_key"], "pid 1, sweep other"):
        for verb in (["run", str(sweep_file)], ["time", "g4", "c=8"], ["calibrate"]):
            out = subprocess.run([sys.executable, "-c", code, *verb], capture_output=True, text=True, timeout=120)
            assert "another sweep is running on this device (pid 1, sweep other)" in out.stderr
            assert len(out.stderr.strip().splitlines()) == 1
            assert out.stdout.strip() == "2 []"  # exit status 2, told before the heavy imports


def test_a_hung_worker_becomes_an_error_row(tmp_path):
    path = tmp_path / "hang.yaml"
    path.write_text("measure: {timeout: 0.2}\nsettings: {backend: torch-cpu}\nworkloads: [{name: g4, grid: {c: 8}}]\n")
    out = shufflebench("run", str(path), "--results", str(tmp_path / "results"))
    assert out.returncode == 1  # its only cell failed
    (row,) = read_rows(results_file(tmp_path / "results", "hang"))
    assert row["status"] == "error" and "timed out after 0.2 s" in row["error"]


@pytest.mark.parametrize(
    "text,message",
    [
        ("settings: {backend: torch-cpu}\nworkloads: [{name: g1\n", "not valid YAML"),
        ("settings: {backend: torch-cpu}\nworkloads: [{name: nope}]\n", "unknown workload 'nope'"),
        (
            "settings: {backend: torch-cpu}\nworkloads: [{name: g1, grid: {c1: [1.5], c2: 8}}]\n",
            "parameter 'c1' must be an integer",
        ),
        ("settings: {backend: cuda}\nworkloads: [{name: g4, grid: {c: 8}}]\n", "unknown backend 'cuda'"),
    ],
)
def test_bad_sweep_files_exit_2_with_one_line(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    out = shufflebench("run", str(path), "--results", str(tmp_path / "results"))
    assert out.returncode == 2
    assert message in out.stderr and str(path) in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()


def test_unknown_backend_on_the_command_line(sweep_file):
    out = shufflebench("run", str(sweep_file), "--backend", "gpu", "--dry-run")
    assert out.returncode == 2 and "unknown backend 'gpu'" in out.stderr


def test_dry_run_lists_the_cells(sweep_file):
    out = shufflebench("run", str(sweep_file), "--dry-run", "--backend", "ort-cpu")
    assert out.returncode == 0
    assert out.stdout.splitlines() == [
        "g1/c1=8,c2=16,hw=8/ort-cpu/batch=1,threads=1,opt_level=all,spinning=true,cache=warm",
        "g4/c=8,relu=true,shortcut=true,hw=8/ort-cpu/batch=1,threads=1,opt_level=all,spinning=true,cache=warm",
        "g2/g=8,c=12,hw=8/ort-cpu/batch=1,threads=1,opt_level=all,spinning=true,cache=warm",
    ]


def test_time_json_prints_the_results_row():
    out = shufflebench(
        "time", "g1", "c1=8", "c2=8", "hw=8", "--threads", "1", "--processes", "1", "--min-time", "0.05", "--json"
    )
    assert out.returncode == 0, out.stderr
    import json

    row = json.loads(out.stdout)
    assert row["status"] == "ok" and row["median_ms"] > 0 and row["threads"] == 1
    assert row["cell"] == "g1/c1=8,c2=8,hw=8/torch-cpu/batch=1,threads=1,malloc=steady,cache=warm"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_counts_worker_runs_and_gives_an_eta():
    cell = config.single_cell("g1", {"c1": 8, "c2": 8}, "torch-cpu", {"batch": 1, "threads": 1})
    out = _Terminal()
    progress = runner.Progress(2, out)
    progress.expect_runs(4)
    progress.run_done()
    progress.start(cell)
    line = out.getvalue().rsplit("\r", 1)[-1]
    assert "1/4 runs" in line and "<" in line and "0/2 cells, now g1 on torch-cpu" in line  # elapsed<remaining
    progress.done(cell, "1.000 ms")
    assert f"[1/2] {cell.key}: 1.000 ms\n" in out.getvalue()


def test_on_a_terminal_preparation_is_one_status_line_and_the_next_line_starts_clean():
    out = _Terminal()
    progress = runner.Progress(1, out)
    progress.note("preparing g1 c1=8,c2=8 batch=1")
    progress.note("preparing g4 c=8 batch=1")
    progress.say("measuring 1 cells x 2 processes")
    text = out.getvalue()
    assert "0/0" not in text and "runs" not in text  # no bar before there is something to count
    assert text.endswith("\r\x1b[Kmeasuring 1 cells x 2 processes\n")  # the status line cleared, not run into


def test_off_a_terminal_there_are_only_plain_lines():
    cell = config.single_cell("g1", {"c1": 8, "c2": 8}, "torch-cpu", {"batch": 1, "threads": 1})
    out = io.StringIO()
    progress = runner.Progress(1, out)
    progress.expect_runs(2)
    progress.run_done()
    progress.start(cell)
    progress.done(cell, "skipped")
    assert out.getvalue() == f"[1/1] {cell.key}: skipped\n"


def test_off_a_terminal_a_progress_line_with_an_eta_comes_every_so_often(monkeypatch):
    clock = iter([0.0, 1.0, 1.0, 10.0, 100.0, 110.0, 140.0, 150.0])
    monkeypatch.setattr(runner.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    progress = runner.Progress(3, out, every=30.0)  # made at 0 s
    progress.note("preparing g4 c=8 batch=1")  # 1 s: the first preparation line comes at once
    progress.note("preparing g4 c=16 batch=1")  # 10 s: too soon for another
    assert out.getvalue() == "preparing g4 c=8 batch=1\n"
    out.truncate(0), out.seek(0)
    progress.expect_runs(6)  # starts at 100 s
    progress.run_done()  # 110 s: 10 s after the last line, nothing
    progress.run_done()  # 140 s: 40 s in, 2 of 6 runs: 80 s left
    progress.run_done()  # 150 s: only 10 s after that line
    assert out.getvalue() == "progress: 2 of 6 worker runs, 0 of 3 cells, 40 s so far, about 1 min 20 s left\n"


def test_resume_measures_again_what_was_measured_differently(tmp_path):
    root = tmp_path / "results"
    path = tmp_path / "resume.yaml"
    measure = (
        "measure: {{processes: {p}, max_processes: {p}, probe: false, min_time: 0.02, warmup_time: 0, "
        "min_samples: 3}}\n"
    )
    body = "settings: {{backend: torch-cpu, threads: 1}}\nworkloads: [{{name: g4, grid: {{c: {c}, hw: 8}}}}]\n"
    path.write_text(measure.format(p=2) + body.format(c="[8, 16]"))
    assert shufflebench("run", str(path), "--results", str(root)).returncode == 0
    first = {r["cell"]: r["finished_at"] for r in read_rows(results_file(root, "resume"))}

    path.write_text(measure.format(p=3) + body.format(c="[8, 16]"))  # a different number of processes
    out = shufflebench("run", str(path), "--results", str(root))
    assert "measuring 2 cell(s) again: measurement settings changed (processes 2 -> 3" in out.stderr
    rows = {r["cell"]: r for r in read_rows(results_file(root, "resume"))}
    assert all(r["processes"] == 3 for r in rows.values()) and len(rows) == 2

    path.write_text(measure.format(p=3) + body.format(c="[8, 16, 24]"))  # one more value
    out = shufflebench("run", str(path), "--results", str(root))
    assert "2 of 3 cells already measured" in out.stderr and "cell(s) again" not in out.stderr
    after = {r["cell"]: r for r in read_rows(results_file(root, "resume"))}
    assert len(after) == 3 and all(after[c]["finished_at"] == rows[c]["finished_at"] for c in rows)
    assert set(first) < set(after)


def test_an_error_row_carries_the_exception_and_the_workers_stderr(tmp_path):
    (tmp_path / "noisy_model.py").write_text(
        "import sys\n\ndef build():\n    print('a line the worker wrote to stderr', file=sys.stderr)\n"
        "    raise ValueError('no model today')\n"
    )
    path = tmp_path / "fails.yaml"
    path.write_text(
        FAST + "settings: {backend: torch-cpu, threads: 1}\n"
        "workloads: [{name: 'noisy_model.py:build', grid: {input_shape: 3x8x8}}]\n"
    )
    out = shufflebench("run", str(path), "--results", str(tmp_path / "results"), cwd=tmp_path)
    assert out.returncode == 1, out.stderr  # its only cell failed, the row says why
    (row,) = read_rows(results_file(tmp_path / "results", "fails"))
    assert row["status"] == "error"
    assert row["error"].startswith("ValueError: no model today")
    assert "worker stderr: a line the worker wrote to stderr" in row["error"]


def _patch_time_jobs(monkeypatch, answer):
    """Route the runner's ``time`` jobs through ``answer(job, real)``; other jobs (prepare) run for real. Returns the
    cell keys of the time jobs in the order they ran."""
    real, calls = launcher.Launcher.run, []

    def run(self, kind, job, *args, **kwargs):
        if kind != "time":
            return real(self, kind, job, *args, **kwargs)
        calls.append(job.cell.key)
        return answer(job, lambda: real(self, kind, job, *args, **kwargs))

    monkeypatch.setattr(launcher.Launcher, "run", run)
    return calls


def _fake_process(median_ms: float) -> ProcessResult:
    samples = [median_ms / 1e3 * (1 + 0.001 * i) for i in range(-5, 6)]
    return ProcessResult(samples, 1, [], 1e-7, [], 0, {})


def _sweep(tmp_path, processes: int = 2, max_processes: int = 2, sizes: str = "[8, 12, 16]"):
    path = tmp_path / "cut.yaml"
    path.write_text(
        FAST.replace("processes: 2, max_processes: 2", f"processes: {processes}, max_processes: {max_processes}")
        + f"settings: {{backend: torch-cpu, threads: 1}}\nworkloads: [{{name: g4, grid: {{c: {sizes}, hw: 8}}}}]\n"
    )
    return config.load(path)


def test_an_interrupted_sweep_keeps_its_finished_processes_and_the_next_run_completes_them(tmp_path, monkeypatch):
    root = tmp_path / "results"

    def ctrl_c_at_the_fourth_process(job, real):
        if len(timed) == 4:
            raise KeyboardInterrupt
        return real()

    timed = _patch_time_jobs(monkeypatch, ctrl_c_at_the_fourth_process)
    log = io.StringIO()
    # the three rows written are cut short, not measured: the message must not count them as done
    with pytest.raises(Interrupted, match=r"0 of 3 cells measured in full, 3 cut short \(kept, flagged interrupted\)"):
        runner.run_sweep(_sweep(tmp_path), root, log=log)
    assert len(set(timed[:3])) == 3  # the first round runs every cell once
    assert "3 worker runs took" in log.getvalue()
    rows = read_rows(results_file(root, "cut"))
    assert len(rows) == 3
    assert all(r["processes"] == 1 and "interrupted after 1 of 2 processes" in r["noise"] for r in rows)

    monkeypatch.undo()
    log = io.StringIO()
    runner.run_sweep(_sweep(tmp_path), root, log=log)
    assert "measuring 3 cell(s) again: the last run was interrupted after 1 of 2 processes" in log.getvalue()
    rows = read_rows(results_file(root, "cut"))
    assert len(rows) == 3 and all(r["processes"] == 2 and "interrupted" not in r["noise"] for r in rows)
    assert [(r["launcher"], r["processes_planned"]) for r in rows] == [(launcher.mode(), 2)] * 3


def test_a_cell_whose_worker_failed_stays_an_error_when_the_run_is_then_interrupted(tmp_path, monkeypatch):
    def crash_then_ctrl_c(job, real):
        if len(timed) == 3:  # round 2: the first cell's second process crashes
            return Failure("worker crashed (killed by signal 9): no output")
        if len(timed) == 4:
            raise KeyboardInterrupt
        return _fake_process(1.0)

    timed = _patch_time_jobs(monkeypatch, crash_then_ctrl_c)
    with pytest.raises(Interrupted):
        runner.run_sweep(_sweep(tmp_path, sizes="[8, 12]"), tmp_path / "results", log=io.StringIO())
    rows = {r["cell"]: r for r in read_rows(results_file(tmp_path / "results", "cut"))}
    assert rows[timed[2]]["status"] == "error" and "killed by signal 9" in rows[timed[2]]["error"]
    (other,) = set(rows) - {timed[2]}
    assert rows[other]["status"] == "ok" and "interrupted after 1 of 2 processes" in rows[other]["noise"]


def test_extra_processes_for_modes_join_the_next_rounds_and_a_cut_cell_is_measured_again(tmp_path, monkeypatch):
    def two_modes_then_ctrl_c(job, real):
        if len(timed) == 7:  # round 4 has begun: each cell has had 3 of its 4 processes
            raise KeyboardInterrupt
        return _fake_process(1.0 if timed.count(job.cell.key) % 2 else 2.0)  # processes alternate 1 ms and 2 ms

    timed = _patch_time_jobs(monkeypatch, two_modes_then_ctrl_c)
    sweep = _sweep(tmp_path, processes=2, max_processes=4, sizes="[8, 12]")
    with pytest.raises(Interrupted):
        runner.run_sweep(sweep, tmp_path / "results", log=io.StringIO())
    for start in (0, 2, 4):  # rounds of two: every cell once in each, the extra processes too
        assert len(set(timed[start : start + 2])) == 2, timed
    rows = {r["cell"]: r for r in read_rows(results_file(tmp_path / "results", "cut"))}
    assert all(r["processes"] == 3 and r["processes_planned"] == 4 for r in rows.values())
    log = io.StringIO()
    todo = runner.cells_to_measure(sweep, rows, device.collect(), None, log)
    assert len(todo) == 2 and "interrupted after 3 of 4 processes" in log.getvalue()


def test_an_internal_error_keeps_the_finished_processes(tmp_path, monkeypatch):
    def unreadable_at_the_fourth(job, real):
        if len(timed) == 4:
            raise RuntimeError("an answer the runner cannot read")
        return _fake_process(1.0)

    timed = _patch_time_jobs(monkeypatch, unreadable_at_the_fourth)
    with pytest.raises(RuntimeError):
        runner.run_sweep(_sweep(tmp_path), tmp_path / "results", log=io.StringIO())
    rows = read_rows(results_file(tmp_path / "results", "cut"))
    assert len(rows) == 3
    assert all("interrupted by an internal error (RuntimeError) after 1 of 2" in r["noise"] for r in rows)


def test_preparation_has_its_own_time_limit_not_the_measurements(tmp_path, monkeypatch):
    limits = {}
    real = launcher.Launcher.run

    def run(self, kind, job, timeout, *args, **kwargs):
        limits.setdefault(kind, timeout)
        return real(self, kind, job, timeout, *args, **kwargs)

    monkeypatch.setattr(launcher.Launcher, "run", run)
    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path / "cache"))  # nothing prepared yet: a prepare job runs
    sweep = _sweep(tmp_path, sizes="8")
    sweep = dataclasses.replace(sweep, run=dataclasses.replace(sweep.run, timeout=30.0))
    runner.run_sweep(sweep, tmp_path / "results", log=io.StringIO())
    # a loaded machine may take minutes over an export; a measurement that long is hung
    assert limits == {"prepare": sweep.run.prepare_timeout, "time": 30.0} and sweep.run.prepare_timeout > 30.0


def test_the_end_of_run_table_names_noise_by_cause_in_a_few_words():
    row = {
        "cell": "g4/c=8,hw=8/torch-cpu/batch=1,threads=1,malloc=steady,cache=warm",
        "status": "ok",
        "median_ms": 1.0,
        "ci_low_ms": 0.9,
        "ci_high_ms": 1.1,
        "ci_level": 0.95,
        "iqr_ms": 0.3,
        "images_per_s": 1000.0,
        "flops": 1e6,
        "mac": 1e5,
        "noise": "IQR is 30% of the median, a strong outside influence: stop other programs and run again; "
        "p99 is 80% above the median: frequent interruptions, close other programs and run again; "
        "p99 left empty: 60 samples, 100 needed (raise min_time)",
    }
    line = runner.summary_table([row]).splitlines()[1]
    assert line.endswith("noisy: spread, interruptions; note: few samples") and len(line) < 200
