"""Runs the cells of a sweep and writes one results row per cell.

- Isolation: every (cell, repeat) runs in its own worker process (bench.worker), so a crash, hang or OOM becomes an
  ``error`` row and the sweep goes on. Workloads are built and exported once per run in a ``prepare`` worker.
- Order: the (cell, repeat) pairs are shuffled with a recorded seed, so slow drifts of the machine spread over all
  cells instead of biasing the last ones (methodology R3.3).
- Resume: cells that already have an ``ok`` row for this sweep on this device are skipped; ``fresh`` starts over.
  A row is written, atomically, as soon as its cell's last repeat finishes.
- Lock: one sweep at a time per device (a file lock in the temp directory), because two sweeps would time each
  other.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

from bench import backends, device, stats
from bench.config import Cell, RunSettings, Sweep
from bench.errors import UserError
from bench.results import SCHEMA_VERSION, ResultsStore


# Prepended to every worker command. Under qemu-user without binfmt_misc a process cannot start a foreign binary, so
# `make arm-emulated` sets it to "qemu-aarch64-static -L <root>" (see scripts/arm_emulated.sh).
WORKER_PREFIX = shlex.split(os.environ.get("SHUFFLEBENCH_WORKER_PREFIX", ""))
# Prepare workers (build, count, export) that run at once: each holds a torch process of a few hundred MB.
PREPARE_WORKERS = max(1, min(8, (os.cpu_count() or 1) // 2))


@contextlib.contextmanager
def device_lock(device_id: str, holder: str) -> Iterator[None]:
    path = Path(tempfile.gettempdir()) / f"shufflebench-{device_id}.lock"
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            other = f.read().strip() or "another process"
            raise UserError(
                f"another sweep is running on this device ({other}); wait for it to finish, two sweeps "
                "would time each other"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(holder)
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()


def run_sweep(
    sweep: Sweep,
    results_root: Path,
    *,
    fresh: bool = False,
    prepared: dict[str, dict] | None = None,
    log: TextIO = sys.stderr,
) -> list[dict]:
    """Measure the cells of ``sweep`` not yet measured on this device; returns the rows of this run.

    ``prepared`` holds each cell's cost, input shape and ONNX file when they come from a bundle (bench.bundle).
    """
    meta = device.collect()
    folder = results_root / meta["device_id"]
    holder = f"pid {os.getpid()}, sweep {sweep.name}, since {_now()}"
    with device_lock(meta["device_id"], holder):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "device.json").write_text(json.dumps(meta, indent=2) + "\n")
        store = ResultsStore(folder / f"{sweep.name}.csv")
        if fresh:
            store.clear()
        done = {key for key, row in store.by_cell().items() if row.get("status") == "ok"}
        todo = [c for c in sweep.cells if c.key not in done]
        if len(todo) < len(sweep.cells):
            print(
                f"resuming {sweep.name}: {len(sweep.cells) - len(todo)} of {len(sweep.cells)} cells already "
                f"measured on {meta['device_id']} (--fresh to measure them again)",
                file=log,
            )
        rows: list[dict] = []

        def on_row(row: dict) -> None:
            row["sweep"] = sweep.name
            store.put(row)
            rows.append(row)

        Measurer(meta, folder, sweep.run, log).measure(todo, on_row, prepared)
    return rows


class Measurer:
    """Prepares workloads and runs worker processes for a list of cells, calling ``on_row`` per finished cell."""

    def __init__(self, meta: dict[str, Any], folder: Path, run: RunSettings, log: TextIO) -> None:
        self.meta, self.folder, self.run, self.log = meta, folder, run, log

    def measure(
        self, cells: list[Cell], on_row: Callable[[dict], None], prepared: dict[str, dict] | None = None
    ) -> None:
        """Measure ``cells``; ``prepared`` (cost, input shape, ONNX file per cell key) comes from a bundle, or is
        made here by prepare workers."""
        if not cells:
            return
        progress = Progress(len(cells), self.log)
        runnable = []
        for cell in cells:
            reason = backends.unavailable_reason(backends.parse(cell.backend))
            if reason:
                on_row(self._row(cell, status="skipped", error=reason))
                progress.done(cell, "skipped")
            else:
                runnable.append(cell)
        if prepared is None:
            prepared, errors = self.prepare(runnable, self.folder / "onnx", progress)
            for cell in runnable:
                if cell.key in errors:
                    on_row(self._row(cell, status="error", error=errors[cell.key]))
                    progress.done(cell, "error")
        jobs = [(cell, r) for cell in runnable if cell.key in prepared for r in range(self.run.processes)]
        random.Random(self.run.seed).shuffle(jobs)
        progress.expect_runs(len(jobs))
        results: dict[str, list[dict]] = defaultdict(list)
        failed: set[str] = set()
        for cell, _ in jobs:
            if cell.key in failed:
                continue
            progress.start(cell)
            started = _now()
            job = {
                "cell": cell.as_dict(),
                "input_shape": prepared[cell.key]["input_shape"],
                "onnx": prepared[cell.key].get("onnx"),
                "measure": self.run.measure.as_dict(),
            }
            result = self._worker("time", job)
            progress.run_done()
            if "error" in result:
                failed.add(cell.key)
                on_row(self._row(cell, prepared[cell.key], status="error", error=result["error"]))
                progress.done(cell, "error")
                continue
            result["started_at"] = started
            results[cell.key].append(result)
            if len(results[cell.key]) == self.run.processes:
                row = self._measured_row(cell, prepared[cell.key], results.pop(cell.key))
                on_row(row)
                progress.done(cell, f"{row['median_ms']:.3f} ms" + (" (noisy)" if row["is_noisy"] else ""))

    def prepare(
        self, cells: list[Cell], onnx_dir: Path, progress: Progress | None = None
    ) -> tuple[dict[str, dict], dict[str, str]]:
        """Cost (and ONNX file in ``onnx_dir``, for ORT cells) per distinct workload and batch, built once each.

        Returns the prepared data and the error text, both by cell key.
        """
        groups: dict[str, list[Cell]] = defaultdict(list)
        for cell in cells:
            groups[json.dumps([cell.workload, cell.args, cell.batch], sort_keys=True)].append(cell)
        prepared: dict[str, dict] = {}
        errors: dict[str, str] = {}

        def prepare_group(group_key: str, group: list[Cell]) -> None:
            needs_onnx = any(backends.parse(c.backend).family == "ort" for c in group)
            digest = hashlib.sha256(group_key.encode()).hexdigest()[:12]
            onnx = onnx_dir / f"{group[0].workload}-{digest}.onnx" if needs_onnx else None
            job = {
                "workload": group[0].workload,
                "args": group[0].args,
                "batch": group[0].batch,
                "onnx": str(onnx) if onnx else None,
            }
            if progress:
                progress.note(f"preparing {group[0].workload} {_args(group[0].args)} batch={group[0].batch}")
            result = self._worker("prepare", job)
            for cell in group:
                if "error" in result:
                    errors[cell.key] = result["error"]
                else:
                    prepared[cell.key] = {**result, "onnx": str(onnx) if onnx else None}

        # Nothing is timed while workloads are prepared, so their workers may share the cores.
        with ThreadPoolExecutor(max_workers=PREPARE_WORKERS) as pool:
            list(pool.map(prepare_group, groups.keys(), groups.values()))
        return prepared, errors

    def _worker(self, kind: str, job: dict) -> dict:
        with tempfile.TemporaryDirectory(prefix="shufflebench-") as tmp:
            job_path, out_path = Path(tmp) / "job.json", Path(tmp) / "out.json"
            job_path.write_text(json.dumps(job))
            try:
                proc = subprocess.run(
                    [*WORKER_PREFIX, sys.executable, "-m", "bench.worker", kind, str(job_path), str(out_path)],
                    capture_output=True,
                    text=True,
                    timeout=self.run.timeout,
                )
            except subprocess.TimeoutExpired:
                return {"error": f"worker timed out after {self.run.timeout:g} s (raise measure.timeout)"}
            tail = " | ".join(line.strip() for line in proc.stderr.strip().splitlines()[-3:])
            if out_path.exists():
                result = json.loads(out_path.read_text())
                if "error" in result and tail:
                    result["error"] += f" (worker stderr: {tail})"
                return result
            how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
            return {"error": f"worker crashed ({how}): {tail or 'no output'}"}

    def _row(self, cell: Cell, prepared: dict | None = None, **columns: Any) -> dict[str, Any]:
        # A group's ONNX export is shared by its torch cells too; only ORT cells ran the exported file.
        export = ((prepared or {}).get("export") or {}) if backends.parse(cell.backend).family == "ort" else {}
        row = {
            "schema_version": SCHEMA_VERSION,
            "cell": cell.key,
            "workload": cell.workload,
            "workload_args": cell.args,
            "backend": cell.backend,
            **cell.settings,
            "device_id": self.meta["device_id"],
            "arch": self.meta["arch"],
            "emulated": self.meta["emulated"],
            **((prepared or {}).get("cost") or {}),
            "exporter": export.get("exporter"),
            "opset": export.get("opset"),
            "measure_settings": {**self.run.measure.as_dict(), "processes": self.run.processes, "seed": self.run.seed},
            "finished_at": _now(),
        }
        row.update(columns)
        return row

    def _measured_row(self, cell: Cell, prepared: dict, results: list[dict]) -> dict[str, Any]:
        samples = [r["samples"] for r in results]
        load_avg = device.load_average()
        warnings = results[0]["info"].get("warnings") or []
        summary = stats.summarize(
            samples, cell.batch, load_avg=load_avg, cores=self.meta["cores_logical"], warnings=warnings
        )
        if any(r.get("pipelined") for r in results):
            summary.update(stats.pipelined([r["pipelined"] for r in results], cell.batch))
        return self._row(
            cell,
            prepared,
            status="ok",
            error=None,
            **summary,
            number=results[0]["number"],
            timer_overhead_us=min(r["timer_overhead"] for r in results) * 1e6,
            load_avg=load_avg,
            backend_info=results[0]["info"],
            # raw samples in ms to the nanosecond: the clock resolves no finer, and the file stays small
            samples_ms=[[round(s * 1e3, 6) for s in p] for p in samples],
            warmup_ms=[[round(s * 1e3, 6) for s in r["warmup"]] for r in results],
            started_at=min(r["started_at"] for r in results),
        )


class Progress:
    """A line per finished cell; on a terminal also a progress bar over the worker runs with the current cell and
    an ETA (worker runs, not cells, because a cell's repeats are spread over the whole shuffled sweep)."""

    def __init__(self, total: int, out: TextIO) -> None:
        self.total, self.out, self.finished = total, out, 0
        self.runs_total = self.runs_done = 0
        self.runs_started_at = time.monotonic()
        self.tty = out.isatty()

    def expect_runs(self, n: int) -> None:
        self.runs_total, self.runs_done, self.runs_started_at = n, 0, time.monotonic()

    def run_done(self) -> None:
        self.runs_done += 1

    def note(self, text: str) -> None:
        if self.tty:
            self._line(text)

    def start(self, cell: Cell) -> None:
        if self.tty:
            self._line(cell.key)

    def done(self, cell: Cell, outcome: str) -> None:
        self.finished += 1
        if self.tty:
            self.out.write("\r\033[K")
        print(f"[{self.finished:>{len(str(self.total))}}/{self.total}] {cell.key}: {outcome}", file=self.out)

    def _line(self, text: str) -> None:
        eta, fraction = "", 0.0
        if self.runs_total:
            fraction = self.runs_done / self.runs_total
            if self.runs_done:
                per_run = (time.monotonic() - self.runs_started_at) / self.runs_done
                eta = f"ETA {_duration(per_run * (self.runs_total - self.runs_done))} "
        width = 30
        bar = "#" * int(width * fraction) + "-" * (width - int(width * fraction))
        self.out.write(f"\r\033[K[{bar}] {self.finished}/{self.total} cells {eta}{text}"[:200])
        self.out.flush()


def summary_table(rows: list[dict]) -> str:
    """The table printed at the end of a run: measured and failed cells, then a count of the skipped ones."""
    header = ["cell", "status", "median_ms", "iqr_%", "images/s", "MFLOPs", "MAC_M", "note"]
    lines = []
    skipped = defaultdict(int)
    for r in rows:
        if r["status"] == "skipped":
            skipped[r["error"]] += 1
    for r in sorted((r for r in rows if r["status"] != "skipped"), key=lambda r: r["cell"]):
        ok = r.get("status") == "ok"
        lines.append(
            [
                r["cell"],
                r["status"],
                f"{r['median_ms']:.3f}" if ok else "",
                f"{100 * r['iqr_ms'] / r['median_ms']:.1f}" if ok else "",
                f"{r['images_per_s']:.1f}" if ok else "",
                f"{r['flops'] / 1e6:.1f}" if r.get("flops") is not None else "",
                f"{r['mac'] / 1e6:.2f}" if r.get("mac") is not None else "",
                (r.get("noise") or "") if ok else (r.get("error") or ""),
            ]
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    out += ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines]
    out += [f"{n} cells skipped: {reason}" for reason, n in skipped.items()]
    return "\n".join(out)


def _args(args: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in args.items())


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
