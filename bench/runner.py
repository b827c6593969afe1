"""Runs the cells of a sweep and writes one results row per cell.

- Isolation: every (cell, repeat) runs in its own worker process (bench.worker), so a crash, hang or OOM becomes an
  ``error`` row and the sweep goes on. Workloads are built and exported once per run in ``prepare`` workers.
- Order: the (cell, repeat) pairs are shuffled with a recorded seed, so slow drifts of the machine spread over all
  cells instead of biasing the last ones (methodology R3.3). A cell whose processes fall into separate modes
  (bench.stats) gets as many processes again, up to ``max_processes``, so the share of each mode is known.
- Resume: a cell is measured again unless this device already has an ``ok`` row for it that was measured the same
  way (measurement settings, and for ONNX cells the opset and, from a bundle, the exporter); ``fresh`` starts over.
  A row is written, atomically, as soon as its cell's last repeat finishes.
- Lock: one sweep at a time per device, because two sweeps would time each other.

``run_sweep`` is the one entry point: ``shufflebench run`` (sweep files and bundles) and ``shufflebench time`` both go
through it, under one lock and one fingerprint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import random
import shlex
import shutil
import statistics
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

import psutil
from tqdm import tqdm

from bench import backends, device, probe, roofline, sensors, stats, workloads
from bench.config import Cell, RunSettings, Sweep, kv
from bench.errors import Interrupted, UserError
from bench.results import SCHEMA_VERSION, CellColumns, CostColumns, ResultsStore, RunColumns, make_row
from bench.worker import Failure, Prepared, PrepareJob, ProcessResult, TimeJob, decode, encode

# Prepended to every worker command. Under qemu-user without binfmt_misc a process cannot start a foreign binary, so
# `make arm-emulated` sets it to "qemu-aarch64-static -L <root>" (see scripts/arm_emulated.sh).
WORKER_PREFIX = shlex.split(os.environ.get("SHUFFLEBENCH_WORKER_PREFIX", ""))
# Prepare workers (build, count, export) that run at once: each holds a torch process of a few hundred MB.
PREPARE_WORKERS = max(1, min(8, (os.cpu_count() or 1) // 2))
# Measurement settings that do not change what a row measured: a different seed or timeout does not re-measure it.
NOT_COMPARED = ("seed", "probe")
# Warm-up call times kept per process in a row: the warm-up curve is in its first calls, and a 6 us cell warms up
# with 16,000 of them.
WARMUP_KEPT = 200


# One lock per device, in a fixed place: not $TMPDIR, which two shells on one machine may set differently.
LOCK_DIR = Path("/tmp/shufflebench-locks")


@contextlib.contextmanager
def device_lock(device_id: str, holder: str) -> Iterator[None]:
    """Hold the one-sweep-at-a-time lock of this device; raises UserError naming the holder when it is taken."""
    LOCK_DIR.mkdir(exist_ok=True)
    with contextlib.suppress(PermissionError):  # every user of the machine shares the folder
        LOCK_DIR.chmod(0o1777)
    path = LOCK_DIR / f"{device_id}.lock"
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


@dataclass
class Context:
    """What every row of one run shares: the device, the folder, the sweep's name and settings, the log."""

    meta: dict[str, Any]
    folder: Path
    sweep: str
    run: RunSettings
    log: TextIO
    probe: dict[str, dict] = field(default_factory=dict)  # the start probe of this run, by probe key


def run_sweep(
    sweep: Sweep,
    results_root: Path,
    *,
    fresh: bool = False,
    prepared: dict[str, Prepared] | None = None,
    write: bool = True,
    log: TextIO = sys.stderr,
) -> list[dict]:
    """Measure the cells of ``sweep`` not yet measured this way on this device; returns the rows of this run.

    ``prepared`` holds each cell's cost, input shape and ONNX file when they come from a bundle (bench.bundle).
    With ``write`` false (``shufflebench time``) nothing is stored and every cell is measured.
    """
    meta = device.collect()
    context = Context(meta, results_root / meta["device_id"], sweep.name, sweep.run, log)
    holder = f"pid {os.getpid()}, sweep {sweep.name}, since {_now()}"
    with device_lock(meta["machine_key"], holder):
        remove_stale_work_folders()
        rows: list[dict] = []
        store = None
        if write:
            context.folder.mkdir(parents=True, exist_ok=True)
            store = ResultsStore(context.folder / f"{sweep.name}.csv")
            if store.set_aside:
                print(
                    f"{store.path}: {store.set_aside} line(s) could not be read (a cut or corrupt write); moved to "
                    f"{store.path.name}.corrupt, those cells are measured again",
                    file=log,
                )
            if fresh:
                store.clear()
        todo = cells_to_measure(sweep, store.by_cell() if store else {}, meta, prepared, log) if store else sweep.cells
        probing = write and sweep.run.probe and bool(todo)

        def on_row(row: dict) -> None:
            if store:
                store.put(row)
            rows.append(row)

        try:
            if probing:
                context.probe = run_probes(probe_pairs(todo), sweep.run.timeout, log)
                meta["probe"] = context.probe
            if store:
                device.write_if_changed(context.folder / "device.json", meta)
            measure_cells(todo, context, on_row, prepared)
            if probing:
                end = run_probes(probe_pairs(todo), sweep.run.timeout, log, "end")
                for row in finish_probes(rows, end):
                    store.put(row)
        except KeyboardInterrupt as e:
            where = f"written to {store.path}" if store else "measured"
            signal_number = getattr(e, "signal_number", signal.SIGINT)
            raise Interrupted(
                f"interrupted: {len(rows)} of {len(todo)} cells {where}; run the same command again to measure "
                "the rest",
                signal_number,
            ) from None
    return rows


def cells_to_measure(
    sweep: Sweep, rows: dict[str, dict], meta: dict[str, Any], prepared: dict[str, Prepared] | None, log: TextIO
) -> list[Cell]:
    """The cells without an ``ok`` row measured the way this sweep measures; says what is resumed and why not."""
    todo, reasons = [], Counter()
    for cell in sweep.cells:
        reason = remeasure_reason(cell, rows.get(cell.key), sweep.run, meta, prepared)
        if reason is not None:
            todo.append(cell)
            if reason:
                reasons[reason] += 1
    done = len(sweep.cells) - len(todo)
    if done:
        print(
            f"resuming {sweep.name}: {done} of {len(sweep.cells)} cells already measured (--fresh to measure them "
            "again)",
            file=log,
        )
    for reason, n in reasons.items():
        print(f"measuring {n} cell(s) again: {reason}", file=log)
    return todo


def remeasure_reason(
    cell: Cell, row: dict | None, run: RunSettings, meta: dict[str, Any], prepared: dict[str, Prepared] | None
) -> str | None:
    """None when ``row`` already measures ``cell`` as ``run`` would on this machine; otherwise why not ('' for a cell
    never run)."""
    if row is None:
        return ""
    if row.get("status") != "ok":
        return f"the last run ended as {row.get('status')}"
    if row.get("machine_key") != meta["machine_key"]:
        return f"measured on another machine ({row.get('machine_key') or 'no machine key recorded'})"
    wanted = {k: v for k, v in run.recorded().items() if k not in NOT_COMPARED}
    had = {k: v for k, v in (row.get("measure_settings") or {}).items() if k not in NOT_COMPARED}
    changed = sorted(k for k in wanted.keys() | had.keys() if wanted.get(k) != had.get(k))
    if changed:
        return (
            "measurement settings changed (" + ", ".join(f"{k} {had.get(k)} -> {wanted.get(k)}" for k in changed) + ")"
        )
    if row.get("processes") is not None and row["processes"] < run.processes:
        return f"the last run was interrupted after {row.get('processes')} of {run.processes} processes"
    if backends.get(cell.backend).needs_onnx and not workloads.is_onnx(cell.workload):  # a file we exported
        export = prepared[cell.key].export if prepared and cell.key in prepared else None
        expected = {"opset": (export or {}).get("opset", backends.ONNX_OPSET)}
        if export:
            expected["exporter"] = export.get("exporter")
        for key, value in expected.items():
            if row.get(key) != value:
                return f"the ONNX {key} changed ({row.get(key)} -> {value})"
    return None


def measure_cells(
    cells: list[Cell],
    context: Context,
    on_row: Callable[[dict], None],
    prepared: dict[str, Prepared] | None = None,
) -> None:
    """Measure ``cells``, calling ``on_row`` once per cell as soon as its row is ready (skipped, error or ok)."""
    if not cells:
        return
    progress = Progress(len(cells), context.log)
    runnable = []
    for cell in cells:
        reason = backends.get(cell.backend).unavailable_reason()
        if reason:
            on_row(error_row(cell, context, None, "skipped", reason))
            progress.done(cell, "skipped")
        else:
            runnable.append(cell)
    if prepared is None:
        prepared, errors = prepare_cells(runnable, context.folder / "onnx", context.run.timeout, progress)
        for cell in runnable:
            if cell.key in errors:
                on_row(error_row(cell, context, None, "error", errors[cell.key]))
                progress.done(cell, "error")
    queue = schedule([c for c in runnable if c.key in prepared], context.run.processes, context.run.seed)
    if queue:
        measure = context.run.measure
        print(
            f"measuring {len(queue) // context.run.processes} cells x {context.run.processes} processes, at least "
            f"{measure.warmup_time + measure.min_time:g} s each: {len(queue)} worker runs",
            file=context.log,
        )
    progress.expect_runs(len(queue))
    results: dict[str, list[tuple[str, ProcessResult]]] = defaultdict(list)
    wanted = {cell.key: context.run.processes for cell in runnable}
    failed: set[str] = set()
    began = time.perf_counter()
    try:
        while queue:
            cell = queue.pop(0)
            if cell.key in failed:
                continue
            progress.start(cell)
            started = _now()
            job = TimeJob(cell, prepared[cell.key], context.run.measure)
            env = backends.get(cell.backend).worker_env(cell.settings)
            answer = run_worker("time", job, context.run.timeout, env)
            progress.run_done()
            if isinstance(answer, Failure):
                failed.add(cell.key)
                on_row(error_row(cell, context, prepared[cell.key], "error", answer.error))
                progress.done(cell, "error")
                continue
            results[cell.key].append((started, answer))
            if len(results[cell.key]) < wanted[cell.key]:
                continue
            extra = _extra_processes(results[cell.key], wanted[cell.key], context.run)
            if extra:
                wanted[cell.key] += extra
                queue += [cell] * extra
                progress.expect_more(extra, f"{cell.key}: processes fall into modes, {extra} more")
                continue
            row = measured_row(cell, context, prepared[cell.key], results.pop(cell.key))
            on_row(row)
            progress.done(cell, f"{row['median_ms']:.3f} ms" + (" (noisy)" if row["is_noisy"] else ""))
    except KeyboardInterrupt:
        # Keep what was measured: a cell with finished processes gets its row, flagged, and the next run of the
        # sweep measures it again in full (remeasure_reason).
        for key, finished in list(results.items()):
            cell = next(c for c in runnable if c.key == key)
            note = f"interrupted after {len(finished)} of {wanted[key]} processes: run the sweep again to finish it"
            on_row(measured_row(cell, context, prepared[key], results.pop(key), note))
        raise
    finally:
        if progress.runs:
            seconds = time.perf_counter() - began
            each = seconds / progress.runs
            print(f"{progress.runs} worker runs took {seconds:.0f} s, {each:.1f} s each", file=context.log)


def _extra_processes(results: list[tuple[str, ProcessResult]], done: int, run: RunSettings) -> int:
    """More processes for a cell whose processes fall into modes, once, up to ``run.max_processes``."""
    if done != run.processes or done >= run.max_processes:
        return 0
    if stats.find_modes([r.samples for _, r in results]) is None:
        return 0
    return min(run.processes, run.max_processes - done)


def schedule(cells: list[Cell], processes: int, seed: int) -> list[Cell]:
    """Each cell ``processes`` times, in rounds: every round runs each cell once, in an order shuffled with ``seed``.

    A cell's processes are spread over the whole sweep, so slow drift of the machine shows up as spread between them
    rather than as a difference between cells, and a sweep cut short has run every cell about as often as the next.
    """
    rng = random.Random(seed)
    runs: list[Cell] = []
    for _ in range(processes):
        round_ = list(cells)
        rng.shuffle(round_)
        runs += round_
    return runs


def prepare_cells(
    cells: list[Cell], onnx_dir: Path, timeout: float, progress: Progress | None = None
) -> tuple[dict[str, Prepared], dict[str, str]]:
    """Cost (and ONNX file in ``onnx_dir``, for backends that run one) per distinct workload and batch.

    Returns what each cell needs and the error text, both by cell key.
    """
    groups: dict[str, list[Cell]] = defaultdict(list)
    for cell in cells:
        groups[json.dumps([cell.workload, cell.source, cell.args, cell.batch], sort_keys=True)].append(cell)
    prepared: dict[str, Prepared] = {}
    errors: dict[str, str] = {}

    def prepare_group(group_key: str, group: list[Cell]) -> None:
        first = group[0]
        needs_onnx = any(backends.get(c.backend).needs_onnx for c in group) and not workloads.is_onnx(first.workload)
        digest = hashlib.sha256(group_key.encode()).hexdigest()[:12]
        stem = Path(first.workload.replace(":", "-")).name  # an import path's file name or callable
        onnx = str(onnx_dir / f"{stem}-{digest}.onnx") if needs_onnx else None
        if progress:
            progress.note(f"preparing {first.workload} {kv(first.args)} batch={first.batch}")
        answer = run_worker("prepare", PrepareJob(first.workload, first.args, first.batch, onnx), timeout)
        for cell in group:
            if isinstance(answer, Failure):
                errors[cell.key] = answer.error
            else:
                prepared[cell.key] = answer

    # Nothing is timed while workloads are prepared, so their workers may share the cores.
    with ThreadPoolExecutor(max_workers=PREPARE_WORKERS) as pool:
        list(pool.map(prepare_group, groups.keys(), groups.values()))
    return prepared, errors


def probe_pairs(cells: list[Cell]) -> list[tuple[str, int | None]]:
    """The (backend, threads) the cells run with, on backends this device has: what the probe measures."""
    pairs = {(c.backend, c.settings.get("threads")) for c in cells}
    return sorted((p for p in pairs if backends.get(p[0]).unavailable_reason() is None), key=str)


def run_probes(
    pairs: list[tuple[str, int | None]], timeout: float, log: TextIO, when: str = "start"
) -> dict[str, dict]:
    """The roofs of each pair, measured in a worker process each, and said in the log."""
    out = {}
    for backend, threads in pairs:
        key = probe.key(backend, threads)
        answer = run_worker("probe", probe.ProbeJob(backend, threads), timeout)
        if isinstance(answer, Failure):
            print(f"probe ({when}) {key}: failed ({answer.error}); its rows have no roofs", file=log)
            continue
        out[key] = probe.as_dict(answer)
        print(f"probe ({when}) {key}: {device.roofs_text(out[key])}", file=log)
    return out


def finish_probes(rows: list[dict], end: dict[str, dict]) -> list[dict]:
    """The run's measured rows with the end probe added, flagged where the roofs moved more than PROBE_DRIFT."""
    finished = []
    for row in rows:
        record = row.get("probe")
        if row["status"] != "ok" or not record or record["key"] not in end:
            continue
        record["end"] = end[record["key"]]
        record["drift"] = round(probe.drift({"k": record["start"]}, {"k": record["end"]}), 4)
        if record["drift"] > probe.PROBE_DRIFT:
            flag = (
                f"the {record['key']} roofs moved {record['drift']:.0%} between the start and the end of the run "
                "(throttling, or another program): run again on a quiet, cooled device"
            )
            row.update(is_noisy=True, noise="; ".join(n for n in (flag, row["noise"]) if n))
        finished.append(row)
    return finished


ANSWERS = {"Prepared": Prepared, "ProcessResult": ProcessResult, "Failure": Failure, "Roofs": probe.Roofs}


WORK_PREFIX = "shufflebench-work-"


def run_worker(kind: str, job: Any, timeout: float, env: dict[str, str] | None = None) -> Any:
    """Run one worker process on ``job`` (with ``env`` added to this process's environment); its answer, or a Failure
    that says what went wrong.

    The worker gets a folder of its own, named after this process, as its TMPDIR: whatever it or its libraries leave
    there goes with the folder, and a folder left by a killed run is removed by the next (remove_stale_work_folders).
    """
    with tempfile.TemporaryDirectory(prefix=f"{WORK_PREFIX}{os.getpid()}-") as tmp:
        job_path, out_path = Path(tmp) / "job.json", Path(tmp) / "out.json"
        job_path.write_text(encode(job))
        try:
            proc = subprocess.run(
                [*WORKER_PREFIX, sys.executable, "-m", "bench.worker", kind, str(job_path), str(out_path)],
                capture_output=True,
                text=True,
                timeout=timeout,
                env={**os.environ, **(env or {}), "TMPDIR": tmp},
            )
        except subprocess.TimeoutExpired:
            return Failure(f"worker timed out after {timeout:g} s (raise measure.timeout)")
        tail = " | ".join(line.strip() for line in proc.stderr.strip().splitlines()[-3:])
        if out_path.exists():
            out = json.loads(out_path.read_text())
            answer = decode(ANSWERS[out["kind"]], out["answer"])
            if isinstance(answer, Failure) and tail:
                return Failure(f"{answer.error} (worker stderr: {tail})", answer.traceback)
            return answer
        how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
        return Failure(f"worker crashed ({how}): {tail or 'no output'}")


def remove_stale_work_folders() -> None:
    """Remove the worker folders of runs that were killed (SIGKILL leaves them; every other exit removes its own)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{WORK_PREFIX}*"):
        pid = folder.name.removeprefix(WORK_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _cell_columns(cell: Cell, context: Context, status: str, error: str | None) -> CellColumns:
    return CellColumns(
        schema_version=SCHEMA_VERSION,
        sweep=context.sweep,
        cell=cell.key,
        status=status,
        error=error,
        workload=cell.workload,
        workload_args=cell.args,
        source=cell.source,
        backend=cell.backend,
        device_id=context.meta["device_id"],
        machine_key=context.meta["machine_key"],
        arch=context.meta["arch"],
        emulated=context.meta["emulated"],
    )


def _cost_columns(cell: Cell, prepared: Prepared | None) -> CostColumns:
    if prepared is None:
        return CostColumns()
    cost = dict(prepared.cost)
    dtype = cell.settings.get("dtype", "float32")
    cost["mac_bytes"] = cost["mac"] * backends.ITEMSIZE[dtype]  # counted at float32; the cell may run narrower
    return CostColumns(**cost)


def _scaled_classes(classes: dict[str, list[int]] | None, cell: Cell) -> dict[str, list[int]] | None:
    """The prepared (float32) op classes with bytes at the cell's dtype."""
    if not classes:
        return None
    ratio = backends.ITEMSIZE[cell.settings.get("dtype", "float32")] / 4
    return {k: [n, flops, round(nbytes * ratio)] for k, (n, flops, nbytes) in classes.items()}


def _export_columns(cell: Cell, prepared: Prepared | None) -> dict[str, Any]:
    export = (prepared.export or {}) if prepared and backends.get(cell.backend).needs_onnx else {}
    return {"exporter": export.get("exporter"), "opset": export.get("opset")}


def error_row(cell: Cell, context: Context, prepared: Prepared | None, status: str, error: str) -> dict[str, Any]:
    """The row of a cell that was skipped or failed."""
    run = RunColumns(context.run.recorded(), _now(), **_export_columns(cell, prepared))
    return make_row(
        _cell_columns(cell, context, status, error),
        {"batch": cell.batch, **cell.settings},
        run,
        _cost_columns(cell, prepared),
    )


def measured_row(
    cell: Cell,
    context: Context,
    prepared: Prepared,
    results: list[tuple[str, ProcessResult]],
    interrupted: str | None = None,
) -> dict[str, Any]:
    """The row of a measured cell, from its processes' results; ``interrupted`` says why some are missing."""
    processes = [r for _, r in results]
    load_avg = device.load_average()
    info = processes[0].info
    health = [p.health for p in processes if p.health]
    flags = list(dict.fromkeys(f for h in health for f in sensors.health_flags(h["start"], h["end"])))
    summary = stats.summarize(
        [p.samples for p in processes],
        [p.number for p in processes],
        cell.batch,
        pipelined=[p.pipelined for p in processes],
        load_avg=load_avg,
        cores=context.meta["cores_logical"],
        warnings=[*(info.get("warnings") or []), *flags, *([interrupted] if interrupted else [])],
    )
    key = probe.key(cell.backend, cell.settings.get("threads"))
    roofs = context.probe.get(key)
    energies = [p.energy_j / p.calls / cell.batch * 1e3 for p in processes if p.energy_j is not None and p.calls]
    runtime = info.get("runtime_cost") or {}
    cost = dataclasses.replace(
        _cost_columns(cell, prepared),
        mac_runtime=runtime.get("mac"),
        mac_runtime_bytes=runtime.get("mac_bytes"),
        runtime_ops=runtime.get("ops"),
        op_classes=runtime.get("classes") or _scaled_classes(prepared.classes, cell),
    )
    run = RunColumns(
        measure_settings=context.run.recorded(),
        finished_at=_now(),
        started_at=min(started for started, _ in results),
        timer_overhead_us=min(p.timer_overhead for p in processes) * 1e6,
        load_avg=load_avg,
        backend_info=info,
        # raw samples in ms to the nanosecond: the clock resolves no finer, and the file stays small
        samples_ms=[[round(s * 1e3, 6) for s in p.samples] for p in processes],
        warmup_ms=[[round(s * 1e3, 6) for s in p.warmup[:WARMUP_KEPT]] for p in processes],
        health=health or None,
        energy_mj_per_image=statistics.median(energies) if len(energies) == len(processes) else None,
        energy_method=processes[0].energy_method or None,
        peak_gflops=roofs["matmul_gflops"] if roofs else None,
        peak_gbs=roofs["bandwidth_gbs"] if roofs else None,
        probe={"key": key, "start": roofs} if roofs else None,
        **_export_columns(cell, prepared),
    )
    bounds = roofline.analyse(
        cost.flops, cost.mac_bytes, summary.median_ms, run.peak_gflops, run.peak_gbs, cost.mac_runtime_bytes
    )
    return make_row(
        _cell_columns(cell, context, "ok", None), {"batch": cell.batch, **cell.settings}, run, cost, summary, bounds
    )


@dataclass
class Progress:
    """A line per finished cell; on a terminal also a tqdm bar over the worker runs (runs, not cells, because a
    cell's repeats are spread over the whole shuffled sweep) with the current cell and an ETA."""

    total: int
    out: TextIO
    finished: int = 0
    runs: int = 0
    bar: tqdm = field(init=False)

    def __post_init__(self) -> None:
        self.bar = tqdm(
            total=0,
            file=self.out,
            unit="run",
            disable=not self.out.isatty(),
            dynamic_ncols=True,
            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} runs [{elapsed}<{remaining}] {postfix}",
        )

    def expect_runs(self, n: int) -> None:
        self.bar.reset(total=n)

    def expect_more(self, n: int, why: str) -> None:
        self.bar.total += n
        self.bar.refresh()
        tqdm.write(why, file=self.out)

    def run_done(self) -> None:
        self.runs += 1
        self.bar.update(1)

    def note(self, text: str) -> None:
        self.bar.set_postfix_str(text[:80])

    def start(self, cell: Cell) -> None:
        self.bar.set_postfix_str(f"{self.finished}/{self.total} cells, now {cell.key}"[:120])

    def done(self, cell: Cell, outcome: str) -> None:
        self.finished += 1
        tqdm.write(f"[{self.finished:>{len(str(self.total))}}/{self.total}] {cell.key}: {outcome}", file=self.out)
        if self.finished == self.total:
            self.bar.close()


def summary_table(rows: list[dict]) -> str:
    """The table printed at the end of a run: measured and failed cells, then a count of the skipped ones."""
    header = ["cell", "status", "median_ms", "ci", "iqr_%", "images/s", "MFLOPs", "MAC_M", "note"]
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
                f"[{r['ci_low_ms']:.3f}, {r['ci_high_ms']:.3f}] {r['ci_level']:.0%}" if ok and r["ci_level"] else "",
                f"{100 * r['iqr_ms'] / r['median_ms']:.1f}" if ok and r["iqr_ms"] is not None else "",
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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
