"""Runs the cells of a sweep and writes one results row per cell: scheduling only (shufflebench.rows builds the rows).

- Isolation: every process of a cell is a worker of its own (shufflebench.launcher forks it from a freshly executed
  parent per round, or executes it fresh), so a crash, hang or OOM becomes an ``error`` row and the sweep goes on.
  Workloads are prepared once per cell, and cached (shufflebench.preparation).
- Order: rounds. Each round runs every cell that still needs a process once, in an order shuffled with the sweep's
  seed, so slow drifts of the machine spread over all cells instead of biasing the last ones, and a sweep cut short
  has run every cell about as often as the next. A cell whose processes fall into separate modes (shufflebench.stats)
  gets as many processes again, up to ``max_processes``, in the rounds that follow, so the share of each mode is known.
- Resume: a cell is measured again unless this device already has an ``ok`` row for it that was measured the same way
  (measurement settings, all the processes it was to get, and for ONNX cells the opset and, from a bundle, the
  exporter); ``fresh`` measures the sweep's cells again, leaving other rows of the file alone. A row is written,
  atomically, as soon as its cell's last process finishes; when the run stops early (Ctrl-C, SIGTERM, a time cap, an
  internal error) every cell with finished processes gets a row flagged ``interrupted``, which the next run measures in
  full.
- Lock: one sweep at a time per device, because two sweeps would time each other.

``run_sweep`` is the one entry point: ``shufflebench run`` (sweep files and bundles) and ``shufflebench time`` both go
through it, under one lock and one fingerprint.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from tqdm import tqdm

from shufflebench import backends, device, preparation, probe, stats, workloads
from shufflebench.config import Cell, RunSettings, Sweep
from shufflebench.errors import Interrupted
from shufflebench.launcher import Launcher, remove_stale_work_folders
from shufflebench.lock import device_lock
from shufflebench.results import ResultsStore
from shufflebench.rows import Context, error_row, measured_row, now
from shufflebench.worker import Failure, Prepared, ProcessResult, TimeJob

# Measurement settings that do not change what a row measured: a different seed or timeout does not re-measure it.
NOT_COMPARED = ("seed", "probe")


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

    ``prepared`` holds each cell's cost, input shape and ONNX file when they come from a bundle (shufflebench.bundle).
    With ``write`` false (``shufflebench time``) nothing is stored and every cell is measured.
    """
    meta = device.collect()
    holder = f"pid {os.getpid()}, sweep {sweep.name}, since {now()}"
    with device_lock(meta["machine_key"], holder), Launcher(log) as launcher:
        context = Context(meta, results_root / meta["device_id"], sweep.name, sweep.run, log)
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
            if fresh:  # only the cells this run selects (a --backend filter leaves the others' rows alone)
                store.remove({cell.key for cell in sweep.cells})
        todo = cells_to_measure(sweep, store.by_cell() if store else {}, meta, prepared, log) if store else sweep.cells
        probing = write and sweep.run.probe and bool(todo)

        def on_row(row: dict) -> None:
            if store:
                store.put(row)
            rows.append(row)

        try:
            if probing:
                context.probe = run_probes(probe_pairs(todo), sweep.run.timeout, log, launcher)
                meta["probe"] = context.probe
            if store:
                device.write_if_changed(context.folder / "device.json", meta)
            measure_cells(todo, context, on_row, launcher, prepared)
            if probing:
                end = run_probes(probe_pairs(todo), sweep.run.timeout, log, launcher, "end")
                for row in finish_probes(rows, end, meta["cores_logical"]):
                    store.put(row)
        except KeyboardInterrupt as e:
            cut = sum(1 for r in rows if "interrupted" in (r.get("noise") or ""))
            where = f" ({store.path})" if store else ""
            partly = f", {cut} cut short (kept, flagged interrupted)" if cut else ""
            signal_number = getattr(e, "signal_number", signal.SIGINT)
            raise Interrupted(
                f"interrupted: {len(rows) - cut} of {len(todo)} cells measured in full{partly}{where}; run the same "
                "command again to measure the rest",
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
    planned = max(run.processes, row.get("processes_planned") or 0)  # more where its processes fell into modes
    if row.get("processes") is not None and row["processes"] < planned:
        return f"the last run was interrupted after {row.get('processes')} of {planned} processes"
    if backends.get(cell.backend).needs_onnx and not workloads.is_onnx(cell.workload):  # a file we exported
        export = prepared[cell.key].export if prepared and cell.key in prepared else None
        expected = {"opset": (export or {}).get("opset", backends.ONNX_OPSET)}
        if export:
            expected["exporter"] = export.get("exporter")
        for key, value in expected.items():
            if row.get(key) != value:
                return f"the ONNX {key} changed ({row.get(key)} -> {value})"
    return None


@dataclass
class Planned:
    """A cell being measured: its backend (resolved once), what preparation gave it, and its processes so far."""

    cell: Cell
    backend: backends.Backend
    prepared: Prepared
    runtime_cost: dict[str, Any] | None
    wanted: int  # processes it is to get: the sweep's, more where they fell into modes
    results: list[tuple[str, ProcessResult]] = field(default_factory=list)  # (start time, result) per process


def measure_cells(
    cells: list[Cell],
    context: Context,
    on_row: Callable[[dict], None],
    launcher: Launcher,
    prepared: dict[str, Prepared] | None = None,
) -> None:
    """Measure ``cells``, calling ``on_row`` once per cell as soon as its row is ready (skipped, error or ok).

    ``prepared`` is given when the cells come prepared (a bundle, a fleet); otherwise they are prepared here.
    """
    if not cells:
        return
    progress = Progress(len(cells), context.log)
    runnable: list[tuple[Cell, backends.Backend]] = []
    for cell in cells:
        backend = backends.get(cell.backend)
        reason = backend.unavailable_reason()
        if reason:
            on_row(error_row(cell, context, None, "skipped", reason))
            progress.done(cell, "skipped")
        else:
            runnable.append((cell, backend))
    if prepared is None:
        timeout = context.run.prepare_timeout
        prepared, errors = preparation.prepare_cells([c for c, _ in runnable], timeout, launcher, progress)
        for cell, _ in runnable:
            if cell.key in errors:
                on_row(error_row(cell, context, None, "error", errors[cell.key]))
                progress.done(cell, "error")
    ready = [c for c, _ in runnable if c.key in prepared]
    machine = context.meta["machine_key"]
    costs = preparation.runtime_costs(ready, prepared, machine, context.run.prepare_timeout, launcher)
    processes = context.run.processes
    planned = [Planned(c, b, prepared[c.key], costs.get(c.key), processes) for c, b in runnable if c.key in prepared]
    if planned:
        measure = context.run.measure
        progress.say(
            f"measuring {len(planned)} cells x {processes} processes, at least "
            f"{measure.warmup_time + measure.min_time:g} s each: {len(planned) * processes} worker runs"
        )
    progress.expect_runs(len(planned) * processes)
    rng = random.Random(context.run.seed)
    began, runs = time.perf_counter(), launcher.runs
    try:
        while todo := next_round(planned, rng):
            launcher.next_round()  # no two processes of a cell come from one parent
            for item in todo:
                progress.start(item.cell)
                started = now()
                job = TimeJob(item.cell, item.prepared, context.run.measure)
                env = item.backend.worker_env(item.cell.settings)
                answer = launcher.run("time", job, context.run.timeout, item.backend.preload, env)
                progress.run_done()
                if isinstance(answer, Failure):
                    planned.remove(item)  # its finished processes go with it: an error is never written as a result
                    on_row(error_row(item.cell, context, item.prepared, "error", answer.error))
                    progress.done(item.cell, "error")
                    continue
                item.results.append((started, answer))
                if len(item.results) < item.wanted:
                    continue
                extra = _extra_processes(item, context.run)
                if extra:
                    item.wanted += extra
                    progress.expect_more(extra, f"{item.cell.key}: processes fall into modes, {extra} more")
                    continue
                planned.remove(item)
                row = _row(item, context, launcher)
                on_row(row)
                progress.done(item.cell, f"{row['median_ms']:.3f} ms" + (" (noisy)" if row["is_noisy"] else ""))
    except BaseException as e:
        # Keep what was measured, whatever stopped the run: a cell with finished processes gets its row, flagged,
        # and the next run of the sweep measures it again in full (remeasure_reason).
        why = "" if isinstance(e, KeyboardInterrupt) else f" by an internal error ({type(e).__name__})"
        for item in planned:
            if item.results:
                note = f"interrupted{why} after {len(item.results)} of {item.wanted} processes: run the sweep again"
                on_row(_row(item, context, launcher, note))
        raise
    finally:
        done = launcher.runs - runs
        if done:
            seconds = time.perf_counter() - began
            print(f"{done} worker runs took {seconds:.0f} s, {seconds / done:.1f} s each", file=context.log)


def next_round(planned: list[Planned], rng: random.Random) -> list[Planned]:
    """The cells that still need a process, each once, in an order shuffled with the sweep's seeded ``rng``."""
    todo = [item for item in planned if len(item.results) < item.wanted]
    rng.shuffle(todo)
    return todo


def _row(item: Planned, context: Context, launcher: Launcher, interrupted: str | None = None) -> dict[str, Any]:
    how = launcher.how(item.backend.preload, item.backend.worker_env(item.cell.settings))
    return measured_row(
        item.cell, context, item.prepared, item.results, item.runtime_cost, item.wanted, how, interrupted
    )


def _extra_processes(item: Planned, run: RunSettings) -> int:
    """More processes for a cell whose processes fall into modes, once, up to ``run.max_processes``."""
    done = len(item.results)
    if item.wanted != run.processes or done >= run.max_processes:
        return 0
    if stats.find_modes([r.samples for _, r in item.results]) is None:
        return 0
    return min(run.processes, run.max_processes - done)


def probe_pairs(cells: list[Cell]) -> list[tuple[str, int | None, str]]:
    """The (backend, threads, precision) the cells run with, on backends this device has: what the probe measures.
    A backend that probes fp32 only (Backend.probe_precisions) is probed in fp32; its other cells are judged by
    another backend's probe in their precision (shufflebench.probe.device_roofs)."""
    pairs = set()
    for c in cells:
        backend = backends.get(c.backend)
        if backend.unavailable_reason() is None:
            precision = probe.precision(c.settings) if backend.probe_precisions else "fp32"
            pairs.add((c.backend, c.settings.get("threads"), precision))
    return sorted(pairs, key=str)


def run_probes(
    pairs: list[tuple[str, int | None, str]], timeout: float, log: TextIO, launcher: Launcher, when: str = "start"
) -> dict[str, dict]:
    """The roofs and noise floor of each pair, measured in a worker process each, with the CPU time stolen by other
    guests while it ran (where the kernel reports it), and said in the log."""
    out = {}
    for backend, threads, precision in pairs:
        key = probe.key(backend, threads, precision)
        job = probe.ProbeJob(backend, threads, precision)
        before = device.cpu_times()
        answer = launcher.run("probe", job, timeout, backends.get(backend).preload)
        if isinstance(answer, Failure):
            print(f"probe ({when}) {key}: failed ({answer.error}); its rows have no roofs", file=log)
            continue
        out[key] = probe.as_dict(answer)
        steal = device.steal_between(before, device.cpu_times())
        if steal is not None:
            out[key]["steal"] = round(steal, 3)
        print(f"probe ({when}) {key}: {device.roofs_text(out[key])}; {device.noise_text(out[key])}", file=log)
    return out


def finish_probes(rows: list[dict], end: dict[str, dict], cores: int | None = None) -> list[dict]:
    """The run's measured rows with the end probe added, flagged where the roofs moved more than PROBE_DRIFT, their
    noise floor the larger of the start's and the end's; a noisy row whose machine proves shared only by the end probe
    gets the shared-hardware reason then (shufflebench.stats.shared_hardware)."""
    finished = []
    for row in rows:
        record = row.get("probe")
        if row["status"] != "ok" or not record or record["key"] not in end:
            continue
        record["end"] = end[record["key"]]
        record["drift"] = round(probe.drift({"k": record["start"]}, {"k": record["end"]}), 4)
        probes = [r for r in (record["start"], record["end"]) if r.get("noise_floor") is not None]
        if probes:
            worst = max(probes, key=lambda r: r["noise_floor"])
            row["noise_floor"] = worst["noise_floor"]
            reasons = stats.shared_hardware(
                stats.reasons_of(row["noise"]),
                row.get("process_medians_ms") or [],
                row.get("load_avg"),
                cores,
                row.get("threads"),
                worst,
            )
            row["noise"] = "; ".join(reasons)
        if record["drift"] > probe.PROBE_DRIFT:
            flag = (
                f"the {record['key']} roofs moved {record['drift']:.0%} between the start and the end of the run "
                "(throttling, or another program): run again on a quiet, cooled device"
            )
            row.update(is_noisy=True, noise="; ".join(n for n in (flag, row["noise"]) if n))
        finished.append(row)
    return finished


@dataclass
class Progress:
    """What a run is doing, for a person watching. A line per finished cell. On a terminal: while preparing, one status
    line that overwrites itself; while measuring, a tqdm bar over the worker runs (runs, not cells, because a cell's
    repeats are spread over the whole shuffled sweep) with an ETA. Off a terminal (a log, CI): a plain line with the
    runs done, of how many, and an ETA every ``every`` seconds."""

    total: int
    out: TextIO
    every: float = 30.0  # s between progress lines off a terminal
    finished: int = 0
    runs: int = 0
    expected: int = 0
    bar: tqdm | None = None
    began: float = 0.0
    said: float = 0.0
    status: bool = False  # a preparation status line is on the terminal

    def __post_init__(self) -> None:
        self.terminal = self.out.isatty()
        self.said = time.monotonic() - self.every  # the first preparation line comes at once

    def note(self, text: str) -> None:
        """What preparation is doing now: overwrites itself on a terminal; elsewhere a line every ``every`` s."""
        if self.bar is not None:
            return
        if self.terminal:
            self.out.write("\r\x1b[K" + text[:100])
            self.out.flush()
            self.status = True
        elif time.monotonic() - self.said >= self.every:
            self.said = time.monotonic()
            print(text, file=self.out, flush=True)

    def say(self, text: str) -> None:
        """A line of its own, above the bar or the status line."""
        self._clear_status()
        tqdm.write(text, file=self.out)

    def expect_runs(self, n: int) -> None:
        self._clear_status()
        self.expected, self.began = n, time.monotonic()
        self.said = self.began
        self.bar = tqdm(
            total=n,
            file=self.out,
            unit="run",
            disable=not self.terminal,
            dynamic_ncols=True,
            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} runs [{elapsed}<{remaining}] {postfix}",
        )

    def expect_more(self, n: int, why: str) -> None:
        self.expected += n
        if self.bar is not None:
            self.bar.total += n
            self.bar.refresh()
        self.say(why)

    def run_done(self) -> None:
        self.runs += 1
        if self.bar is not None:
            self.bar.update(1)
        now_ = time.monotonic()
        if not self.terminal and now_ - self.said >= self.every:
            self.said = now_
            elapsed = now_ - self.began
            left = elapsed / self.runs * (self.expected - self.runs)
            print(
                f"progress: {self.runs} of {self.expected} worker runs, {self.finished} of {self.total} cells, "
                f"{_duration(elapsed)} so far, about {_duration(left)} left",
                file=self.out,
                flush=True,
            )

    def start(self, cell: Cell) -> None:
        if self.bar is not None:  # the cell in short: the bar keeps its width
            self.bar.set_postfix_str(f"{self.finished}/{self.total} cells, now {cell.workload} on {cell.backend}"[:60])

    def done(self, cell: Cell, outcome: str) -> None:
        self.finished += 1
        self.say(f"[{self.finished:>{len(str(self.total))}}/{self.total}] {cell.key}: {outcome}")
        if self.finished == self.total and self.bar is not None:
            self.bar.close()

    def _clear_status(self) -> None:
        if self.status:
            self.out.write("\r\x1b[K")
            self.status = False


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def _causes(noise: str | None) -> str:
    """A row's noise in a few words: its causes, then its notes (the report and `time` give the whole reasons)."""
    found = list(dict.fromkeys(stats.cause_of(r) for r in stats.reasons_of(noise)))
    noisy = [c for c in found if c not in stats.NOTES]
    notes = [c for c in found if c in stats.NOTES]
    return "; ".join(
        ([f"noisy: {', '.join(noisy)}"] if noisy else []) + ([f"note: {', '.join(notes)}"] if notes else [])
    )


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
                _causes(r.get("noise")) if ok else (r.get("error") or ""),
            ]
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    out += ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines]
    out += [f"{n} cells skipped: {reason}" for reason, n in skipped.items()]
    return "\n".join(out)
