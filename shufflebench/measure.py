"""Warm-up, block calibration and sampling of one prepared backend, in one process.

The backend gives ``time(n)``: the seconds ``n`` calls take, synchronised by the backend itself (CUDA events or
synchronize, ONNX Runtime's own ``run``), so nothing here knows about devices. Procedure:

1. Warm up by time and count: calls until at least ``warmup_time`` seconds and ``warmup_calls`` calls have run
   (after any autotuning, which happens on the first calls). The warm-up times are kept.
2. Calibrate the block size: the number of calls per sample grows until one block takes at least 1000x the timer's
   own overhead (so the overhead is under 0.1%) and at least ``min_time / 1000``, judged by the median of several
   timings per size; after the first samples the size is checked again. Calls of a millisecond or more are timed one
   by one, which keeps tail percentiles meaningful for whole networks.
3. Sample blocks until ``min_time`` seconds and ``min_samples`` samples are collected; with ``target_ci`` set, go on
   (up to ``max_time``) until the median's 95% distribution-free interval over the samples (shufflebench.stats) is that
   narrow, relative to the median.
4. On an asynchronous device (a GPU: the backend's ``asynchronous`` is true), ``time(n)`` is per-call latency and
   the backend also offers ``time_pipelined(n)``, calls queued back to back with one wait at the end: its blocks are
   calibrated the same way and sampled for ``min_time / 2`` as the throughput column.
5. With a ``reference`` (on a CPU: the noise floor's fixed 256 x 256 product, shufflebench.probe), a block of it of at
   least REFERENCE_BLOCK seconds is timed after the sample that ends every REFERENCE_EVERY seconds of sampling, about a
   tenth of the time: the speed the machine ran at while this process sampled. On a VM whose speed drifts with its
   neighbours it moves with the cell (shufflebench.stats: the cell's median in reference calls).

Garbage collection is off inside the timed loop (pytest-benchmark, pyperf).
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Protocol

CALIBRATION_REPEATS = 5  # timings per candidate block size
RECHECK_AFTER = 5  # samples after which the block size is checked against the timer's overhead again
REFERENCE_BLOCK = 0.002  # s: the shortest block of reference calls (a few calls of a half-millisecond kernel)
REFERENCE_EVERY = 0.02  # s of sampling between reference blocks: the reference takes about a tenth of the time


class Timed(Protocol):
    """What a backend's ``prepare`` returns."""

    asynchronous: bool  # calls are queued on a device: time_pipelined differs from time

    def time(self, n: int) -> float:
        """Run the workload ``n`` times, waiting for each call, and return the elapsed seconds."""

    def time_pipelined(self, n: int) -> float:
        """Run the workload ``n`` times back to back, wait once, and return the elapsed seconds."""


@dataclass(frozen=True)
class MeasureSettings:
    warmup_time: float = 0.2  # s
    warmup_calls: int = 10
    min_time: float = 1.0  # s of sampling per process
    min_samples: int = 10
    max_time: float = 10.0  # s, upper bound when sampling towards target_ci
    target_ci: float | None = None  # relative half-width of the median's 95% CI to reach, e.g. 0.01

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Measurement:
    """One process's samples: seconds per call, each the mean over a block of ``number`` calls."""

    number: int
    samples: list[float] = field(default_factory=list)
    warmup: list[float] = field(default_factory=list)  # seconds per call of each warm-up call
    timer_overhead: float = 0.0  # s per time() call with n = 0
    pipelined: list[float] = field(default_factory=list)  # s per call of back-to-back blocks (asynchronous only)
    pipelined_number: int = 0
    calls: int = 0  # every call made, warm-up and calibration included (for energy per call)
    reference: list[float] = field(default_factory=list)  # s per call of the reference kernel, block by block


class _Counted:
    """A Timed that counts the calls it is asked for."""

    def __init__(self, timed: Timed) -> None:
        self.timed, self.calls = timed, 0
        self.asynchronous = getattr(timed, "asynchronous", False)

    def time(self, n: int) -> float:
        self.calls += n
        return self.timed.time(n)

    def time_pipelined(self, n: int) -> float:
        self.calls += n
        return self.timed.time_pipelined(n)


def timer_overhead(timed: Timed, repeats: int = 20) -> float:
    """The cost of an empty timed block: clock reads plus whatever synchronisation the backend does."""
    return min(timed.time(0) for _ in range(repeats))


def measure(timed: Timed, settings: MeasureSettings = MeasureSettings(), reference: Timed | None = None) -> Measurement:
    gc_was_enabled = gc.isenabled()
    gc.disable()
    timed = _Counted(timed)
    try:
        warmup = _warm_up(timed, settings)
        overhead = timer_overhead(timed)
        min_block = max(1000 * overhead, settings.min_time / 1000)
        number = calibrate(timed.time, min_block)
        reference_number = calibrate(reference.time, max(min_block, REFERENCE_BLOCK)) if reference else 0
        m = Measurement(number=number, warmup=warmup, timer_overhead=overhead)
        start = last_reference = time.perf_counter()
        while True:
            m.samples.append(timed.time(m.number) / m.number)
            if reference and time.perf_counter() - last_reference >= REFERENCE_EVERY:
                m.reference.append(reference.time(reference_number) / reference_number)
                last_reference = time.perf_counter()
            if len(m.samples) == RECHECK_AFTER and statistics.median(m.samples) * m.number < min_block / 2:
                # Calibration was misled (a slow first block): the blocks are too short for the timer. Size them
                # again from the calls just timed and start sampling over.
                m.number = calibrate(timed.time, min_block, start=m.number)
                m.samples.clear()
                m.reference.clear()
                start = last_reference = time.perf_counter()
                continue
            elapsed = time.perf_counter() - start
            if elapsed < settings.min_time or len(m.samples) < settings.min_samples:
                continue
            if settings.target_ci is None or elapsed >= settings.max_time:
                break
            if _interval_halfwidth(m.samples) <= settings.target_ci:
                break
        if reference and not m.reference:  # sampling ended sooner than REFERENCE_EVERY
            m.reference.append(reference.time(reference_number) / reference_number)
        if timed.asynchronous:
            m.pipelined_number, m.pipelined = _sample_pipelined(timed, overhead, settings)
        m.calls = timed.calls
        return m
    finally:
        if gc_was_enabled:
            gc.enable()


def _sample_pipelined(timed: Timed, overhead: float, settings: MeasureSettings) -> tuple[int, list[float]]:
    number = calibrate(timed.time_pipelined, min_block=max(1000 * overhead, settings.min_time / 1000))
    samples: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < settings.min_time / 2 or len(samples) < settings.min_samples:
        samples.append(timed.time_pipelined(number) / number)
    return number, samples


def _warm_up(timed: Timed, settings: MeasureSettings) -> list[float]:
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < settings.warmup_calls or time.perf_counter() - start < settings.warmup_time:
        times.append(timed.time(1))
    return times


def calibrate(time_calls: Callable[[int], float], min_block: float, start: int = 1) -> int:
    """Smallest convenient number of calls per block that ``time_calls(number)`` times at ``min_block`` s or more.

    Each size is timed CALIBRATION_REPEATS times and judged by the median, so one preempted block cannot decide it.
    """
    number = start
    while True:
        elapsed = statistics.median(time_calls(number) for _ in range(CALIBRATION_REPEATS))
        if elapsed >= min_block:
            return number
        # Aim 20% past the target from the measured rate, at least doubling so a noisy estimate cannot stall.
        number = max(2 * number, math.ceil(number * 1.2 * min_block / max(elapsed, 1e-9)))


def _interval_halfwidth(samples: list[float]) -> float:
    """Relative half-width of the median's 95% distribution-free interval (the one shufflebench.stats reports)."""
    from shufflebench.stats import median_interval  # scipy: imported only by the sweeps that set target_ci

    low, high, _ = median_interval(samples)
    return math.inf if low is None else (high - low) / 2 / statistics.median(samples)
