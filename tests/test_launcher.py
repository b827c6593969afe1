"""The launcher: each process of a cell from its own fresh interpreter, jobs of one round forked from one parent, and
the isolation of fresh processes kept (crashes, hangs, stray output, temporary folders)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from shufflebench import launcher
from shufflebench.launcher import Launcher
from shufflebench.preparation import PREPARE_PRELOAD
from shufflebench.worker import Failure, Prepared, PrepareJob

# A model whose builder says where it ran: the process, its parent, the hash seed's effect and its TMPDIR.
MODEL = """
import json, os, sys, tempfile
from torch import nn


def build(log: str, crash: str = "", tag: str = ""):
    if crash == "segfault":
        import ctypes
        ctypes.string_at(0)
    if crash == "hang":
        import time
        time.sleep(60)
    if crash == "bytes":
        sys.stdout.buffer.write(bytes(range(256)))
        sys.stdout.flush()
    with open(log, "a") as f:
        f.write(json.dumps({"tag": tag, "pid": os.getpid(), "ppid": os.getppid(), "hash": hash("shufflebench"),
                            "tmp": tempfile.gettempdir()}) + "\\n")
    return nn.Identity(), (3, 4, 4)
"""


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "where.py"
    path.write_text(MODEL)
    return path


def _job(model: Path, log: Path, **args: str) -> PrepareJob:
    return PrepareJob(f"{model}:build", {"log": str(log), **args}, 1, None)


def _records(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.skipif(launcher.mode() != "fork", reason="this platform has no fork; every job runs in a fresh process")
def test_a_round_forks_from_one_fresh_parent_and_the_next_round_from_another(model, tmp_path):
    log = tmp_path / "where.jsonl"
    with Launcher() as runs:
        for round_ in range(3):
            for cell in ("a", "b"):
                answer = runs.run("prepare", _job(model, log, tag=f"{round_}{cell}"), 60, PREPARE_PRELOAD)
                assert isinstance(answer, Prepared), answer
            runs.next_round()
        assert runs.parents_started == 3
    records = _records(log)
    assert len({r["pid"] for r in records}) == 6  # a process per job
    parents = [(r["ppid"], r["hash"]) for r in records]
    for round_ in range(3):  # within a round, one parent: same pid, same hash seed
        assert parents[2 * round_] == parents[2 * round_ + 1]
    # across rounds, freshly executed parents: another pid, and (with odds of 2^-64 against) another hash seed
    assert len({p for p, _ in parents}) == 3 and len({h for _, h in parents}) == 3
    # every job had a temporary folder of its own, and none is left
    assert len({r["tmp"] for r in records}) == 6
    assert not any(Path(r["tmp"]).exists() for r in records)


def test_a_crash_or_a_hang_costs_one_job_and_the_next_job_runs(model, tmp_path):
    log = tmp_path / "where.jsonl"
    with Launcher() as runs:
        crashed = runs.run("prepare", _job(model, log, crash="segfault"), 60, PREPARE_PRELOAD)
        hung = runs.run("prepare", _job(model, log, crash="hang"), 3, PREPARE_PRELOAD)
        fine = runs.run("prepare", _job(model, log, tag="after"), 60, PREPARE_PRELOAD)
    assert isinstance(crashed, Failure) and "worker crashed (killed by signal 11)" in crashed.error
    assert isinstance(hung, Failure) and hung.error.startswith("worker timed out after 3 s")
    assert isinstance(fine, Prepared)
    assert [r["tag"] for r in _records(log)] == ["after"]


def test_bytes_that_are_not_text_on_stdout_break_nothing(model, tmp_path):
    log = tmp_path / "where.jsonl"
    with Launcher() as runs:
        answer = runs.run("prepare", _job(model, log, crash="bytes", tag="bytes"), 60, PREPARE_PRELOAD)
    assert isinstance(answer, Prepared), answer


def test_fresh_processes_when_asked_and_the_same_answers(model, tmp_path, monkeypatch):
    monkeypatch.setenv("SHUFFLEBENCH_LAUNCHER", "exec")
    assert launcher.mode() == "exec"
    log = tmp_path / "where.jsonl"
    with Launcher() as runs:
        for tag in ("a", "b"):
            assert isinstance(runs.run("prepare", _job(model, log, tag=tag), 60, PREPARE_PRELOAD), Prepared)
        assert runs.parents_started == 0
    records = _records(log)
    assert len({r["ppid"] for r in records}) == 1  # both children of this test process
    assert records[0]["ppid"] != records[0]["pid"] and len({r["hash"] for r in records}) == 2


def test_a_preload_that_fails_to_import_fails_the_job_with_the_reason(tmp_path):
    with Launcher() as runs:
        answer = runs.run("prepare", PrepareJob("g4", {"c": 8}, 1, None), 60, ("no_such_module_anywhere",))
    if launcher.mode() == "fork":
        assert isinstance(answer, Failure)
        assert "worker could not start (ModuleNotFoundError: No module named 'no_such_module_anywhere')" in answer.error
    else:  # fresh processes import what the job needs, and nothing else
        assert isinstance(answer, Prepared)


@pytest.mark.skipif(launcher.mode() != "fork", reason="this platform has no fork; every job runs in a fresh process")
def test_a_preload_that_starts_a_thread_is_never_forked_from(tmp_path):
    # a module of its own: whether a library's import starts a thread varies with its build and the machine
    (tmp_path / "starts_a_thread.py").write_text(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n"
    )
    threaded, env = ("starts_a_thread",), {"PYTHONPATH": str(tmp_path)}
    with Launcher() as runs:
        for _ in range(2):
            answer = runs.run("prepare", PrepareJob("g4", {"c": 8, "hw": 8}, 1, None), 60, threaded, env)
            assert isinstance(answer, Prepared), answer
        assert runs.how(threaded, env) == "exec" and runs.how(PREPARE_PRELOAD, {}) == "fork"
        assert runs.parents_started == 1  # found once, then remembered: fresh processes for that kind


def test_no_worker_folder_is_left_behind(model, tmp_path):
    mine = f"{launcher.WORK_PREFIX}{os.getpid()}-*"  # the folders of this process's jobs and parents
    with Launcher() as runs:
        runs.run("prepare", _job(model, tmp_path / "log.jsonl"), 60, PREPARE_PRELOAD)
        assert list(Path(tempfile.gettempdir()).glob(mine))  # the parent's, while it lives
    assert not list(Path(tempfile.gettempdir()).glob(mine))
