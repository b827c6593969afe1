"""Latency statistics and noise flags (numpy and scipy.stats; no torch).

A cell is measured in several worker processes; each process gives samples, each the mean seconds per call over a
block of ``number`` calls. Processes differ in ways samples inside one process do not (where
the allocator put the tensors, which kernel a library picked, the clock), so the process is the unit:

- The headline ``median_ms`` is the median of the process medians: every process weighs the same, however many
  samples its block size gave it.
- Its interval is the distribution-free one for a median (order statistics of the process medians, coverage from the
  binomial distribution), with the level it really reaches in ``ci_level``: at least 95% needs 6 processes, 5 reach
  93.8%, 3 reach 75%, and with 1 or 2 there is no interval.
- Percentiles, IQR, mean and std describe the pooled samples with each process weighted equally. They are per call
  when every block was one call, and of block means otherwise (``percentiles_of`` says which); a percentile the
  samples cannot resolve (p99 needs 100 samples) is left empty and the noise text says why.
- Processes that fall into separate groups (a gap between process medians far wider than the spread inside a
  process) are reported as ``modes``: each group's median and how many processes it holds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

IQR_WARN = 0.10  # IQR/median above this: "system fluctuation" (torch.utils.benchmark)
IQR_GROSS = 0.25  # above this: "significant environmental influence"
STD_WARN = 0.10  # std/mean (pyperf)
TAIL_WARN = 0.50  # p99 this far above the median: frequent interruptions
CI_WARN = 0.05  # half-width of the median's interval, relative to the median
CI_LEVEL = 0.95  # the level an interval aims for
# Modes: a gap between neighbouring process medians wider than GAP_SPREADS times the typical spread inside one
# process, and than GAP_MIN of the median, separates two groups of processes.
GAP_SPREADS = 4.0
GAP_MIN = 0.25
PERCENTILES = {"p10_ms": 10, "p25_ms": 25, "p75_ms": 75, "p90_ms": 90, "p99_ms": 99}
MAX_ADVISED_PROCESSES = 60  # beyond this, more processes are not the answer: the machine is
# The machine's own noise: a probe's noise floor (shufflebench.probe) above this, with the load no more than the cell's
# own threads and SHARED_LOAD besides, says the hardware under it is shared (other tenants), not busy.
NOISE_HIGH = 0.10
SHARED_LOAD = 0.5
SHARED_STEAL = 0.01  # CPU time stolen by other guests worth naming in that reason (/proc/stat)
# Symptoms that shared hardware explains: their advice to close programs is replaced by the shared-hardware reason.
SHARED_SYMPTOMS = ("spread", "interruptions", "interval")

# What makes a cell noisy, told apart by how a reason reads, and the one thing to do about each. The report groups its
# cells by cause under this advice; a reason's own text carries the cell's numbers. Rows written by older versions
# read the same way.
CAUSES = {
    "shared": (
        r"on shared hardware",
        "the hardware is shared with other tenants (the device's noise floor is high while its load is low): closing "
        "programs will not help; measure on a dedicated machine, or raise measure.processes and measure.min_time as "
        "the cell says",
    ),
    "modes": (
        r"^processes fall into",
        "processes settled at different speeds: read the modes beside the median (on torch-cpu, keep malloc: steady)",
    ),
    "spread": (
        r"^(IQR|std) is",
        "samples inside a process vary: close other programs, raise measure.min_time, or on a shared machine measure "
        "with fewer threads (--threads 1)",
    ),
    "interruptions": (
        r"^p99 is",
        "some calls were interrupted: close other programs (on a shared VM, its neighbours cause this)",
    ),
    "interval": (
        r"^the median is only known",
        "the processes disagree: raise measure.processes as the cell says, or quiet the machine first",
    ),
    "load": (
        r"^load average",
        "other programs were running: stop them, or measure with --threads 1 so the cell does not need every core",
    ),
    "drift": (
        r"roofs moved|^(CPU|GPU) (clock|temperature)|^the GPU throttled",
        "the device's speed changed during the run (clock, heat, a neighbour): fix the clock or cool it, and run again",
    ),
    "cut short": (r"interrupted after", "the run stopped before every process: run the same command again"),
}
# Notes say something about how a cell was measured, not about the machine: they do not make it noisy.
NOTES = {
    "few processes": (r"^no interval for the median", "raise measure.processes to 6 for an interval of the median"),
    "few samples": (r"left empty: \d+ samples", "raise measure.min_time for the percentiles that are left empty"),
}


def reasons_of(noise: str | None) -> list[str]:
    """The reasons in a row's ``noise``. Older rows held "; " inside a reason too ("frequent interruptions; close other
    programs"): a part no cause or note knows belongs to the reason before it."""
    reasons: list[str] = []
    for part in (noise or "").split("; "):
        if reasons and cause_of(part) == "other":
            reasons[-1] += f"; {part}"
        elif part:
            reasons.append(part)
    return reasons


def cause_of(reason: str) -> str:
    """The cause (CAUSES) or note (NOTES) of one reason in a row's ``noise``; "other" for one neither knows."""
    for name, (pattern, _) in {**CAUSES, **NOTES}.items():
        if re.search(pattern, reason):
            return name
    return "other"


@dataclass(frozen=True)
class Summary:
    """The statistics columns of a results row (times in ms)."""

    median_ms: float  # the headline: median of the processes' median latencies, per call
    ci_low_ms: float | None  # low end of the median's distribution-free interval
    ci_high_ms: float | None  # high end of that interval
    ci_level: float | None  # the level that interval reaches (0.95 where the processes allow it)
    iqr_ms: float | None  # interquartile range of the samples (each process weighs the same)
    p10_ms: float | None  # 10th percentile of the samples; empty where they are too few
    p25_ms: float | None  # 25th percentile
    p75_ms: float | None  # 75th percentile
    p90_ms: float | None  # 90th percentile
    p99_ms: float | None  # 99th percentile; empty under 100 samples
    percentiles_of: str  # what a sample is: single calls, or block means of that many calls
    mean_ms: float  # mean of the samples
    std_ms: float  # standard deviation of the samples
    min_ms: float  # fastest sample
    max_ms: float  # slowest sample
    images_per_s: float  # batch / median latency
    batches_per_s: float  # 1 / median latency
    pipelined_ms: float | None  # GPU: per call with calls queued back to back, one wait at the end (throughput)
    pipelined_images_per_s: float | None  # GPU: images/s of back-to-back calls
    pipelined_batches_per_s: float | None  # GPU: batches/s of back-to-back calls
    samples: int  # samples over all processes
    processes: int  # worker processes that measured the cell
    process_medians_ms: list[float]  # each process's median latency
    numbers: list[int]  # per process, calls per sample (1, or the block size of a fast cell)
    # groups of processes at separate speeds, each with its median and count; empty when one
    modes: list[dict[str, Any]] | None
    required_processes: int  # processes a 1%-wide 95% interval would need (pyperf's rule)
    is_noisy: bool  # whether any noise cause was found (see noise)
    noise: str  # why the cell is noisy, each with what to do, then notes on how it was measured; "; " between


def summarize(
    samples: list[list[float]],  # None
    numbers: list[int],  # None
    batch: int,
    *,
    pipelined: list[list[float]] | None = None,
    load_avg: float | None = None,
    cores: int | None = None,
    threads: int | None = None,
    warnings: list[str] | tuple[str, ...] = (),
    floor: dict[str, float] | None = None,
) -> Summary:
    """Statistics of one cell.

    Args:
        samples: per process, the seconds per call of each sample (a block mean when that process's number > 1).
        numbers: per process, the calls per block.
        batch: images per call, for throughput.
        pipelined: per process, seconds per call of back-to-back blocks (asynchronous devices only).
        load_avg: the 1-minute load average at the end of the cell, to flag a busy machine.
        cores: logical cores of the device, to judge ``load_avg``.
        warnings: what the backend noticed while preparing the cell (e.g. nodes off the GPU), added to the flags.
        floor: the run's probe of this cell's backend: its ``noise_floor`` and, where the kernel reports it, ``steal``
            (shufflebench.probe), to tell shared hardware from a busy machine.
    """
    processes = [np.asarray(p, dtype=float) * 1e3 for p in samples if len(p)]
    if not processes:
        raise ValueError("no samples to summarise")
    medians = np.array([float(np.median(p)) for p in processes])
    median = float(np.median(medians))
    low, high, level = median_interval(medians)
    pooled = np.concatenate(processes)
    weights = np.concatenate([np.full(p.size, 1.0 / p.size) for p in processes])
    notes: list[str] = []
    percentiles = {}
    for column, q in PERCENTILES.items():
        needed = math.ceil(100 / min(q, 100 - q))
        if pooled.size >= needed:
            percentiles[column] = float(np.percentile(pooled, q, weights=weights, method="inverted_cdf"))
        else:
            percentiles[column] = None
            notes.append(
                f"{column.removesuffix('_ms')} left empty: {pooled.size} samples, {needed} needed (raise min_time)"
            )
    mean = float(np.average(pooled, weights=weights))
    std = float(np.sqrt(np.average((pooled - mean) ** 2, weights=weights)))
    iqr = None if percentiles["p25_ms"] is None else percentiles["p75_ms"] - percentiles["p25_ms"]
    blocks = sorted(set(numbers))
    if blocks == [1]:
        basis = "calls"
    else:
        basis = f"blocks of {blocks[0]} calls" if len(blocks) == 1 else f"blocks of {blocks[0]}-{blocks[-1]} calls"
    pipe = _pipelined(pipelined or [], batch)
    modes = find_modes(processes)
    summary = dict(
        median_ms=median,
        ci_low_ms=low,
        ci_high_ms=high,
        ci_level=level,
        iqr_ms=iqr,
        **percentiles,
        percentiles_of=basis,
        mean_ms=mean,
        std_ms=std,
        min_ms=float(pooled.min()),
        max_ms=float(pooled.max()),
        images_per_s=batch * 1e3 / median,
        batches_per_s=1e3 / median,
        **pipe,
        samples=int(pooled.size),
        processes=len(processes),
        process_medians_ms=[round(float(m), 6) for m in medians],
        numbers=list(numbers),
        modes=modes,
        required_processes=required_processes(list(medians)),
    )
    reasons = noise_reasons(summary, load_avg=load_avg, cores=cores, threads=threads, floor=floor) + list(warnings)
    flags = [r for r in reasons if cause_of(r) not in NOTES]
    notes = [r for r in reasons if cause_of(r) in NOTES] + notes
    return Summary(**summary, is_noisy=bool(flags), noise="; ".join(flags + notes))


def in_reference_calls(samples: list[list[float]], reference: list[list[float]]) -> list[float]:
    """Per process, its median sample over its median call of the reference kernel timed between its samples
    (shufflebench.measure; both in one unit): the cell in reference calls, the machine's speed at the time taken out."""
    return [float(np.median(s) / np.median(r)) for s, r in zip(samples, reference)]


def median_interval(values: np.ndarray | list[float], level: float = CI_LEVEL) -> tuple[float | None, ...]:
    """Distribution-free interval of the median of ``values``: ``(low, high, achieved level)``.

    The interval between the j-th smallest and the j-th largest value covers the true median with probability
    1 - 2 * P(Binomial(n, 1/2) <= j - 1), for any continuous distribution. The narrowest such interval that reaches
    ``level`` is returned; when even the full range falls short (n < 6 at 95%), the range with the level it reaches.
    With fewer than 3 values there is no interval worth the name: ``(None, None, None)``.
    """
    x = np.sort(np.asarray(values, dtype=float))
    n = x.size
    if n < 3:
        return None, None, None
    j = 1
    coverage = 1 - 2 * scipy_stats.binom.cdf(0, n, 0.5)
    for candidate in range(2, n // 2 + 1):
        candidate_coverage = 1 - 2 * scipy_stats.binom.cdf(candidate - 1, n, 0.5)
        if candidate_coverage < level:
            break
        j, coverage = candidate, candidate_coverage
    return float(x[j - 1]), float(x[n - j]), float(coverage)


def find_modes(processes: list[np.ndarray]) -> list[dict[str, Any]] | None:
    """Groups of processes whose medians are separated by gaps far wider than the spread inside a process, or None.

    Args:
        processes: per process, its samples (any unit; the modes are reported in the same unit).
    """
    if len(processes) < 2:
        return None
    medians = np.sort([float(np.median(p)) for p in processes])
    spread = float(np.median([np.subtract(*np.percentile(p, [75, 25])) for p in processes]))
    threshold = max(GAP_SPREADS * spread, GAP_MIN * float(np.median(medians)))
    groups: list[list[float]] = [[float(medians[0])]]
    for previous, value in zip(medians[:-1], medians[1:]):
        if value - previous > threshold:
            groups.append([])
        groups[-1].append(float(value))
    if len(groups) == 1:
        return None
    return [{"median_ms": round(float(np.median(g)), 6), "processes": len(g)} for g in groups]


def _pipelined(processes: list[list[float]], batch: int) -> dict[str, float | None]:
    """Back-to-back calls on an asynchronous device: the median over processes of each process's median."""
    medians = [float(np.median(p)) * 1e3 for p in processes if len(p)]
    if not medians:
        return {"pipelined_ms": None, "pipelined_images_per_s": None, "pipelined_batches_per_s": None}
    median_ms = float(np.median(medians))
    return {
        "pipelined_ms": median_ms,
        "pipelined_images_per_s": batch * 1e3 / median_ms,
        "pipelined_batches_per_s": 1e3 / median_ms,
    }


def required_processes(process_medians: list[float], width: float = 0.01, z: float = 1.96) -> int:
    """Processes needed for a 95% confidence interval ``width`` wide (relative), pyperf's rule n = 4 z^2 s^2 / W^2."""
    if len(process_medians) < 2:
        return 0
    values = np.asarray(process_medians)
    rel_std = float(values.std(ddof=1) / values.mean())
    return max(1, math.ceil(4 * z**2 * rel_std**2 / width**2))


def noise_reasons(
    stats: dict[str, Any],
    load_avg: float | None = None,
    cores: int | None = None,
    threads: int | None = None,
    floor: dict[str, float] | None = None,
) -> list[str]:
    """Why a cell's numbers are not to be trusted, each with what to do about it (empty when they are), and the notes
    on how it was measured (NOTES). No reason holds "; ", which joins them in a row. Where the machine's noise floor
    is high and its load low, the symptoms it explains become one reason that says the hardware is shared."""
    reasons = []
    median, mean = stats["median_ms"], stats["mean_ms"]
    if stats["modes"]:
        modes = ", ".join(f"{m['median_ms']:.3g} ms in {m['processes']}" for m in stats["modes"])
        reasons.append(
            f"processes fall into {len(stats['modes'])} modes ({modes} of {stats['processes']} processes): the "
            "median depends on how many land in each, so read the modes, not the median alone"
        )
    iqr_ratio = None if stats["iqr_ms"] is None else stats["iqr_ms"] / median
    if iqr_ratio is not None and iqr_ratio > IQR_GROSS:
        reasons.append(
            f"IQR is {iqr_ratio:.0%} of the median, a strong outside influence: stop other programs and run again"
        )
    elif iqr_ratio is not None and iqr_ratio > IQR_WARN:
        reasons.append(f"IQR is {iqr_ratio:.0%} of the median: close other programs or raise min_time")
    if stats["std_ms"] / mean >= STD_WARN and (iqr_ratio is None or iqr_ratio <= IQR_WARN) and not stats["modes"]:
        reasons.append(
            f"std is {stats['std_ms'] / mean:.0%} of the mean (spikes): close other programs or raise processes"
        )
    if stats["p99_ms"] is not None and stats["p99_ms"] > median * (1 + TAIL_WARN):
        reasons.append(
            f"p99 is {stats['p99_ms'] / median - 1:.0%} above the median: frequent interruptions, close other "
            "programs and run again"
        )
    if stats["ci_level"] is None:
        reasons.append(f"no interval for the median from {stats['processes']} process(es): raise processes to 6")
    else:
        ci_half = (stats["ci_high_ms"] - stats["ci_low_ms"]) / 2 / median
        if ci_half > CI_WARN:
            needed = required_processes(stats["process_medians_ms"], width=2 * CI_WARN)
            what = (
                f"raise processes to {needed} for ±{CI_WARN:.0%}"
                if needed <= MAX_ADVISED_PROCESSES
                else f"the processes differ too much for more of them to help ({needed} for ±{CI_WARN:.0%}): quiet "
                "the machine"
            )
            reasons.append(f"the median is only known to ±{ci_half:.0%} ({stats['ci_level']:.0%} interval): {what}")
    if load_avg is not None and cores and load_avg > cores:
        hint = f", and this cell ran {threads} threads: measure with --threads 1" if threads and threads > 1 else ""
        reasons.append(f"load average {load_avg:.1f} on {cores} cores: other programs were running{hint}")
    return shared_hardware(reasons, stats["process_medians_ms"], load_avg, cores, threads, floor)


def shared_hardware(
    reasons: list[str],
    process_medians_ms: list[float],
    load_avg: float | None,
    cores: int | None,
    threads: int | None,
    floor: dict[str, float] | None,
) -> list[str]:
    """``reasons`` with the symptoms of shared hardware (SHARED_SYMPTOMS) made one reason that says so and what helps,
    where the noise floor is above NOISE_HIGH and the load is the cell's own; ``reasons`` unchanged otherwise (and
    where that reason is already there: it holds the symptoms)."""
    noise_floor = (floor or {}).get("noise_floor")
    if noise_floor is None or noise_floor <= NOISE_HIGH or load_avg is None or not cores:
        return reasons
    if load_avg > (threads or 1) + SHARED_LOAD:
        return reasons
    symptoms = [r for r in reasons if cause_of(r) in SHARED_SYMPTOMS]
    if not symptoms:
        return reasons
    needed = required_processes(process_medians_ms, width=2 * CI_WARN)
    processes = (
        f"more processes ({needed} for ±{CI_WARN:.0%}, spread over the sweep so each meets the neighbours at another "
        "moment)"
        if needed <= MAX_ADVISED_PROCESSES
        else f"more processes will not reach ±{CI_WARN:.0%} ({needed} needed)"
    )
    steal = floor.get("steal") or 0
    stolen = f", {steal:.0%} of CPU time stolen by other guests" if steal >= SHARED_STEAL else ""
    shared = (
        f"{', '.join(r.split(':')[0] for r in symptoms)}, on shared hardware: the device's noise floor is "
        f"{noise_floor:.0%} (a fixed kernel's p90/p10){stolen} at load {load_avg:.1f} on {cores} cores, so other "
        f"tenants cause it, not programs here: measure on a dedicated machine, or give the cell {processes} and a 4x "
        "longer measure.min_time (halving the spread of each process's median where the noise changes faster than a "
        "sample)"
    )
    return [r for r in reasons if r not in symptoms] + [shared]
