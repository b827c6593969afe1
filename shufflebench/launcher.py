"""Starts worker processes cheaply while each process of a cell stays independent.

A cell is measured in several worker processes because a process's address layout, hash seed and heap state change
its speed (docs/design-notes.md, "Two speeds of one cell"); the interval of the median treats a cell's processes as
independent draws of that variation. Executing a fresh interpreter per process buys that independence but costs the
interpreter's start and the imports (``import torch`` alone is 1-3 s), which on a small cell is most of the run.

The fork launcher keeps the independence and drops the cost:

- A **parent** is a freshly executed interpreter (``python -m shufflebench.launcher MODULE ...``), started with the
  worker environment its jobs need at exec time (``GLIBC_TUNABLES`` of the ``steady`` heap). It imports the modules its
  backend declares (``Backend.preload``) and runs nothing else: no op, so no OpenMP thread pool, no ORT session or
  arena and no CUDA context exist to be inherited (CUDA is initialised in the child only). numpy's OpenBLAS starts
  an idle pool at import, which it shuts down itself across a fork (``pthread_atfork``); a preload that starts any
  other thread is not forked from (``import onnxruntime`` starts one on some builds and machines, so ORT children
  import it themselves).
- For each job it forks one **child**, one at a time, which does what ``python -m shufflebench.worker`` does: its own
  TMPDIR, stdout and stderr to a file in it, the job, the answer in OUT.json. A crash, hang or OOM kill ends the child
  only.
- Parents live for one **round** (shufflebench.runner runs every cell once per round): ``next_round()`` ends them, so
  each process of a cell descends from its own freshly executed interpreter, and no two processes of one cell share one.

Where the platform has no fork (or ``SHUFFLEBENCH_LAUNCHER=exec``), or a preload started a thread (forking then
could copy a lock that thread holds, or leave the child waiting on a thread it does not have), jobs run in fresh
processes, as before, and the log says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import psutil

from shufflebench.worker import ANSWERS, Failure, decode, encode

# Prepended to every worker command. Under qemu-user without binfmt_misc a process cannot start a foreign binary, so
# `make arm-emulated` sets it to "qemu-aarch64-static -L <root>" (see scripts/arm_emulated.sh).
WORKER_PREFIX = shlex.split(os.environ.get("SHUFFLEBENCH_WORKER_PREFIX", ""))
# How a worker or parent is executed: ``-P`` keeps the working directory off ``sys.path``, so a user's own
# ``shufflebench.py`` beside their model cannot stand in for the package (a user's import-path model is still found
# there: shufflebench.blocks.registry adds the working directory when it imports one). Python 3.10 has no ``-P``.
PYTHON = [*WORKER_PREFIX, sys.executable, *(["-P"] if sys.version_info >= (3, 11) else [])]
WORK_PREFIX = "shufflebench-work-"
OUTPUT = "output.log"  # a job's stdout and stderr, in its folder
TAIL_LINES = 3  # lines of that output an error row quotes
# A parent's imports are not a job's work, so a job's timeout starts when it is forked; an import that takes longer
# than this is broken.
START_TIMEOUT = 300.0  # s


def mode() -> str:
    """``fork`` where a parent can fork workers (Linux), ``exec`` otherwise or when SHUFFLEBENCH_LAUNCHER=exec."""
    wanted = os.environ.get("SHUFFLEBENCH_LAUNCHER", "fork")
    return "fork" if wanted == "fork" and hasattr(os, "fork") and sys.platform.startswith("linux") else "exec"


@dataclass
class Launcher:
    """Runs worker jobs: ``run(kind, job, timeout, preload, env)`` returns the worker's answer or a Failure.

    Use as a context manager; it ends its parents on every exit. ``mode`` is ``fork`` or ``exec`` (see the module).
    """

    log: TextIO | None = None
    mode: str = field(default_factory=mode)
    runs: int = 0  # jobs run
    parents_started: int = 0
    _parents: dict[tuple, list[_Parent]] = field(default_factory=dict)
    _no_fork: set[tuple] = field(default_factory=set)  # kinds of parent whose preload started threads
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _said: set[str] = field(default_factory=set)

    def __enter__(self) -> Launcher:
        if self.mode == "exec" and os.environ.get("SHUFFLEBENCH_LAUNCHER", "fork") != "exec":
            self._say("this platform cannot fork worker processes: each one starts a fresh interpreter (slower)")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.next_round()

    def how(self, preload: tuple[str, ...], env: dict[str, str]) -> str:
        """How this kind of job's workers are started: ``fork``, or ``exec`` where they cannot be forked."""
        return "exec" if self.mode == "exec" or _kind(preload, env) in self._no_fork else "fork"

    def next_round(self) -> None:
        """End every parent: the next job of each kind starts from a freshly executed interpreter."""
        with self._lock:
            parents = [p for group in self._parents.values() for p in group]
            self._parents.clear()
        for parent in parents:
            parent.close()

    def run(
        self,
        kind: str,
        job: Any,
        timeout: float,
        preload: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> Any:
        """Run one job in a worker process of its own; its answer, or a Failure that says what went wrong.

        ``preload`` names the modules the job's parent imports before it forks; ``env`` is added to the environment
        the worker (or its parent) is executed with. Every job gets a folder of its own, named after this process,
        as its TMPDIR, removed when the job ends (a folder left by a killed run is removed by the next one).
        """
        env = env or {}
        self.runs += 1
        with tempfile.TemporaryDirectory(prefix=f"{WORK_PREFIX}{os.getpid()}-") as tmp:
            folder = Path(tmp)
            (folder / "job.json").write_text(encode(job))
            request = {"kind": kind, "job": str(folder / "job.json"), "out": str(folder / "out.json"), "tmp": tmp}
            parent = self._parent(preload, env) if self.mode == "fork" else None
            if isinstance(parent, Failure):
                return parent
            if parent is None:
                status = _exec(request, env, timeout)
            else:
                status = parent.run(request, time.monotonic() + timeout)
                self._release(parent)
            return _answer(folder, status, timeout)

    def _parent(self, preload: tuple[str, ...], env: dict[str, str]) -> _Parent | Failure | None:
        """An idle parent of this kind, started if there is none; None when this kind must run in fresh processes."""
        key = _kind(preload, env)
        with self._lock:
            if key in self._no_fork:
                return None
            for parent in self._parents.get(key, []):
                if not parent.busy and parent.alive():
                    parent.busy = True
                    return parent
        parent = _Parent(preload, env)
        started = parent.start(time.monotonic() + START_TIMEOUT)
        if isinstance(started, Failure):
            return started
        self.parents_started += 1
        if started:  # a thread could hold a lock at the fork that the child inherits held, or be one it needs
            parent.close()
            with self._lock:
                self._no_fork.add(key)
            self._say(
                f"importing {', '.join(preload)} started {started} thread(s): those workers start fresh interpreters "
                "instead of being forked (slower)"
            )
            return None
        with self._lock:
            self._parents.setdefault(key, []).append(parent)
        return parent

    def _release(self, parent: _Parent) -> None:
        with self._lock:
            parent.busy = False

    def _say(self, text: str) -> None:
        if self.log is not None and text not in self._said:
            self._said.add(text)
            print(text, file=self.log)


def _kind(preload: tuple[str, ...], env: dict[str, str]) -> tuple:
    """What makes two parents interchangeable: the modules they import and the environment they start with."""
    return preload, tuple(sorted(env.items()))


class _Parent:
    """One freshly executed interpreter with its imports done, forking a child per job (``serve``)."""

    def __init__(self, preload: tuple[str, ...], env: dict[str, str]) -> None:
        self.preload, self.env, self.busy = preload, env, True
        self.folder = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-parent-"))
        self.proc: subprocess.Popen | None = None
        self._buffer = b""

    def start(self, deadline: float) -> int | Failure:
        """Execute the parent and wait for its imports; the number of threads they started, or why it failed."""
        with open(self.folder / OUTPUT, "wb") as stderr:
            self.proc = subprocess.Popen(
                [*PYTHON, "-m", "shufflebench.launcher", *self.preload],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env={**os.environ, **self.env, "TMPDIR": str(self.folder)},
            )
        ready = self._read(deadline)
        if ready is None or "threads" not in ready:
            self.close()
            why = f"its imports took over {START_TIMEOUT:g} s" if ready is None else ready.get("error") or "it exited"
            return Failure(f"worker could not start ({why}): {_tail(self.folder / OUTPUT) or 'no output'}")
        return ready["threads"]

    def run(self, request: dict[str, str], deadline: float) -> int | str:
        """Have the parent fork a child for ``request``; the child's exit status, or "timeout" (the child is then
        killed), or "parent died"."""
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:
            return "parent died"
        started = self._read(deadline)
        if started is None or "pid" not in started:
            return "parent died" if started is not None or not self.alive() else "timeout"
        finished = self._read(deadline)
        if finished is None and self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(started["pid"], signal.SIGKILL)
            self._read(time.monotonic() + 10)
            return "timeout"
        return finished["status"] if finished and "status" in finished else "parent died"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        """End the parent (closing its input ends its loop) and remove its folder."""
        if self.proc is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _read(self, deadline: float) -> dict[str, Any] | None:
        """The parent's next message; None at the deadline, {} when it closed its output."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return {}
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)


def _exec(request: dict[str, str], env: dict[str, str], timeout: float) -> int | str:
    """Run ``request`` in a freshly executed worker; its exit status or "timeout"."""
    with open(Path(request["tmp"]) / OUTPUT, "wb") as output:
        proc = subprocess.Popen(
            [*PYTHON, "-m", "shufflebench.worker", request["kind"], request["job"], request["out"]],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            env={**os.environ, **env, "TMPDIR": request["tmp"]},
        )
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return "timeout"


def _answer(folder: Path, status: int | str, timeout: float) -> Any:
    """The worker's answer from its folder, or a Failure saying how it ended (with the last lines it printed)."""
    tail = _tail(folder / OUTPUT)
    if status == "timeout":
        return Failure(f"worker timed out after {timeout:g} s (raise measure.timeout)")
    out = folder / "out.json"
    if out.exists():
        try:
            message = json.loads(out.read_text())
            answer = decode(ANSWERS[message["kind"]], message["answer"])
        except (ValueError, KeyError, TypeError) as e:
            return Failure(f"the worker's answer could not be read ({type(e).__name__}: {e})")
        if isinstance(answer, Failure) and tail:
            return Failure(f"{answer.error} (worker stderr: {tail})", answer.traceback)
        return answer
    if status == "parent died":
        return Failure(f"worker crashed (its launcher died): {tail or 'no output'}")
    how = f"killed by signal {-status}" if isinstance(status, int) and status < 0 else f"exit status {status}"
    return Failure(f"worker crashed ({how}): {tail or 'no output'}")


def _tail(path: Path) -> str:
    """The last lines a worker printed, on one line; bytes that are not text are shown escaped."""
    if not path.exists():
        return ""
    lines = path.read_bytes()[-4096:].decode("utf-8", "backslashreplace").strip().splitlines()
    return " | ".join(line.strip() for line in lines[-TAIL_LINES:])


def remove_stale_work_folders() -> None:
    """Remove the worker folders of runs that were killed (SIGKILL leaves them; every other exit removes its own)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{WORK_PREFIX}*"):
        pid = folder.name.removeprefix(WORK_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


# The parent process: ``python -m shufflebench.launcher MODULE ...``.


def _send(channel: Any, message: dict[str, Any]) -> None:
    channel.write(json.dumps(message).encode() + b"\n")
    channel.flush()


def _child(request: dict[str, str], channel: Any) -> int:
    """In the forked child: what ``python -m shufflebench.worker`` does, with its own folder and output file."""
    from shufflebench import worker

    signal.signal(signal.SIGINT, signal.default_int_handler)
    worker.die_with_parent()
    channel.close()
    os.environ["TMPDIR"] = request["tmp"]
    tempfile.tempdir = None  # tempfile caches the parent's TMPDIR
    output = os.open(Path(request["tmp"]) / OUTPUT, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # a model that reads stdin must not read the parent's jobs
    os.dup2(output, 1)
    os.dup2(output, 2)
    try:
        return worker.main([request["kind"], request["job"], request["out"]])
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()


def serve(modules: list[str]) -> int:
    """Import ``modules``, say how many threads that started, then fork a child per request read from stdin and
    report its pid and exit status, until stdin closes."""
    import importlib

    import numpy  # noqa: F401 - its OpenBLAS pool is there before the count: OpenBLAS shuts it down across fork

    from shufflebench import worker

    before = len(os.listdir("/proc/self/task"))

    worker.die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's to handle; it ends this process
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever an import prints goes to the parent's log, not into the protocol
    try:
        for name in modules:
            importlib.import_module(name)
    except Exception as e:  # noqa: BLE001 - said to the runner, which fails the job with it
        _send(channel, {"error": f"{type(e).__name__}: {e}"})
        return 1
    _send(channel, {"threads": len(os.listdir("/proc/self/task")) - before})  # native pools included
    for line in sys.stdin.buffer:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _child(request, channel)
            finally:
                os._exit(code)
        _send(channel, {"pid": pid})
        _, status = os.waitpid(pid, 0)
        _send(channel, {"status": os.waitstatus_to_exitcode(status)})
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1:]))
