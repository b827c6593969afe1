"""Latency statistics and noise flags (numpy only).

A measurement is a list of processes, each a list of samples: seconds per call, each the mean over a block of calls
(methodology section 0). The median is the headline number (robust to the spikes a shared machine produces), with
the IQR and percentiles beside it. The 95% confidence interval of the median is a percentile bootstrap over the
process medians, because samples inside one process share allocator, ASLR and clock state and would make the interval
too narrow; with one process it falls back to the samples and says so in ``ci_method``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

IQR_WARN = 0.10  # IQR/median above this: "system fluctuation" (torch.utils.benchmark)
IQR_GROSS = 0.25  # above this: "significant environmental influence"
STD_WARN = 0.10  # std/mean (pyperf)
TAIL_WARN = 0.50  # p99 this far above the median: frequent interruptions (pyperf checks min/max against the mean;
# with hundreds of per-call samples one interrupt always trips that, so we check the 99th percentile instead)
# Half-width of the median's 95% CI, relative. pyperf flags any cell needing more processes than ran for a 1%-wide
# interval; on a shared machine that fires on nearly every cell, so we flag the interval itself and keep
# `required_processes` as a column.
CI_WARN = 0.05
BOOTSTRAP_RESAMPLES = 2000


def summarize(
    processes: list[list[float]],
    batch: int,
    load_avg: float | None = None,
    cores: int | None = None,
    warnings: list[str] = (),
) -> dict[str, Any]:
    """Statistics of per-call times (seconds) from several processes, as results-row columns in ms.

    Args:
        processes: per process, the per-call seconds of each sample.
        batch: images per call, for throughput.
        load_avg: the 1-minute load average at the end of the cell, to flag a busy machine.
        cores: logical cores of the device, to judge ``load_avg``.
        warnings: what the backend noticed while preparing the cell (e.g. nodes off the GPU), added to the flags.
    """
    pooled = np.concatenate([np.asarray(p, dtype=float) for p in processes])
    if pooled.size == 0:
        raise ValueError("no samples to summarise")
    ms = pooled * 1e3
    p10, p25, median, p75, p90, p99 = np.percentile(ms, [10, 25, 50, 75, 90, 99])
    process_medians = [float(np.median(p)) * 1e3 for p in processes if len(p)]
    ci_low, ci_high, ci_method = median_ci(process_medians, ms)
    mean, std = float(ms.mean()), float(ms.std(ddof=1)) if ms.size > 1 else 0.0
    out = {
        "median_ms": float(median),
        "iqr_ms": float(p75 - p25),
        "p10_ms": float(p10),
        "p25_ms": float(p25),
        "p75_ms": float(p75),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "mean_ms": mean,
        "std_ms": std,
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
        "ci95_low_ms": ci_low,
        "ci95_high_ms": ci_high,
        "ci_method": ci_method,
        "samples": int(ms.size),
        "processes": len(process_medians),
        "required_processes": required_processes(process_medians),
        "images_per_s": batch * 1e3 / float(median),
        "batches_per_s": 1e3 / float(median),
    }
    reasons = noise_reasons(out, load_avg=load_avg, cores=cores) + list(warnings)
    out["is_noisy"] = bool(reasons)
    out["noise"] = "; ".join(reasons)
    return out


def pipelined(processes: list[list[float]], batch: int) -> dict[str, Any]:
    """Columns for back-to-back calls on an asynchronous device: the median over processes of each process's median
    seconds per call, in ms, and the throughput it gives."""
    median_ms = float(np.median([np.median(p) for p in processes if len(p)])) * 1e3
    return {
        "pipelined_ms": median_ms,
        "pipelined_images_per_s": batch * 1e3 / median_ms,
        "pipelined_batches_per_s": 1e3 / median_ms,
    }


def median_ci(
    process_medians: list[float], pooled_ms: np.ndarray, confidence: float = 0.95
) -> tuple[float, float, str]:
    """95% percentile-bootstrap interval of the median, over process medians when there are at least 3."""
    if len(process_medians) >= 3:
        data, method = np.asarray(process_medians), "bootstrap over process medians"
    else:
        data, method = pooled_ms, "bootstrap over samples of one process (too narrow: run more processes)"
    rng = np.random.default_rng(0)
    resampled = np.median(rng.choice(data, size=(BOOTSTRAP_RESAMPLES, data.size), replace=True), axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return float(low), float(high), method


def required_processes(process_medians: list[float], width: float = 0.01, z: float = 1.96) -> int:
    """Processes needed for a 95% confidence interval ``width`` wide (relative), pyperf's rule n = 4 z^2 s^2 / W^2."""
    if len(process_medians) < 2:
        return 0
    values = np.asarray(process_medians)
    rel_std = float(values.std(ddof=1) / values.mean())
    return max(1, math.ceil(4 * z**2 * rel_std**2 / width**2))


def noise_reasons(stats: dict[str, Any], load_avg: float | None = None, cores: int | None = None) -> list[str]:
    """Why a cell's numbers are not to be trusted, each with what to do about it (empty when they are)."""
    reasons = []
    median, mean = stats["median_ms"], stats["mean_ms"]
    iqr_ratio = stats["iqr_ms"] / median
    if iqr_ratio > IQR_GROSS:
        reasons.append(
            f"IQR is {iqr_ratio:.0%} of the median, a strong outside influence: stop other programs and run again"
        )
    elif iqr_ratio > IQR_WARN:
        reasons.append(f"IQR is {iqr_ratio:.0%} of the median: close other programs or raise min_time")
    if stats["std_ms"] / mean >= STD_WARN and iqr_ratio <= IQR_WARN:
        reasons.append(
            f"std is {stats['std_ms'] / mean:.0%} of the mean (spikes): close other programs or raise processes"
        )
    if stats["p99_ms"] > median * (1 + TAIL_WARN):
        reasons.append(
            f"p99 is {stats['p99_ms'] / median - 1:.0%} above the median: frequent interruptions; "
            "close other programs and run again"
        )
    ci_half = (stats["ci95_high_ms"] - stats["ci95_low_ms"]) / 2 / median
    if ci_half > CI_WARN:
        reasons.append(
            f"the median is only known to ±{ci_half:.0%}: raise processes ({stats['required_processes']} "
            f"needed for a 1%-wide interval, {stats['processes']} ran)"
        )
    if load_avg is not None and cores and load_avg > cores:
        reasons.append(f"load average {load_avg:.1f} on {cores} cores: other programs were running")
    return reasons
