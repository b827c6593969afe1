"""Cross-check shufflebench's timer against torch.utils.benchmark on this device (`make validate-timing`).

1. Agreement: for the G1 x1 cells and one G4 cell on torch-cpu, the torch-cpu backend's timer and measure() (what a
   `shufflebench time` worker runs) against `torch.utils.benchmark.Timer(..., num_threads=N).blocked_autorange()`,
   on the same module and input object, alternately, three rounds each. A median ratio within 2% of 1 means both
   time the same thing.
2. Processes: the same cell through `shufflebench time` (worker processes of its own, each building the module anew), to
   show the process medians side by side. With glibc's default heap some processes of a cell ran 2x slower than
   others here (page faults on every call, docs/design-notes.md); the torch-cpu default heap, ``malloc: steady``,
   removed that. This script runs itself with the same heap.
3. Overhead: a near-empty workload (one 1x1 conv on a 1x8x4x4 input) timed with measure() against a bare
   perf_counter loop over the same call, alternately; the difference of the medians should stay under 0.05 us.

Usage: python scripts/validate_timing.py [THREADS]   (default 1)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.utils.benchmark as tb
from torch import nn

from shufflebench import blocks
from shufflebench import backends
from shufflebench.backends import torch_backend
from shufflebench.measure import MeasureSettings, measure

CELLS = [
    ("g1", {"c1": 32, "c2": 32}),
    ("g1", {"c1": 22, "c2": 44}),
    ("g1", {"c1": 13, "c2": 78}),
    ("g1", {"c1": 9, "c2": 108}),
    ("g4", {"c": 32}),
]
ROUNDS = 3
AGREEMENT = 0.02  # |ratio - 1| of the two timers' medians
OVERHEAD_US = 0.05  # shufflebench's median minus the bare loop's, on a ~8 us call


def agreement(threads: int) -> list[float]:
    print(f"timer agreement on torch-cpu, {threads} thread(s), same module and input (median ms)")
    ratios = []
    for name, args in CELLS:
        w = blocks.build(name, **args)
        settings = backends.get("torch-cpu").defaults(threads=threads)
        timed = torch_backend.prepare(w.module, w.input_shape, device="cpu", settings=settings)
        ours, theirs = [], []
        for _ in range(ROUNDS):
            ours.append(statistics.median(measure(timed, MeasureSettings(min_time=1.0)).samples) * 1e3)
            with torch.inference_mode():
                timer = tb.Timer("module(x)", globals={"module": timed.module, "x": timed.x}, num_threads=threads)
                theirs.append(timer.blocked_autorange(min_run_time=1.0).median * 1e3)
        ratio = statistics.median(ours) / statistics.median(theirs)
        ratios.append(ratio)
        sub = shufflebench_time(name, args, threads)
        print(
            f"  {_label(name, args):<18} shufflebench {statistics.median(ours):8.3f}  Timer "
            f"{statistics.median(theirs):8.3f}  ratio {ratio:.3f} "
            f"{'ok' if abs(ratio - 1) <= AGREEMENT else 'OUTSIDE 2%'}"
            f"   | `shufflebench time` over fresh processes: {sub}"
        )
    return ratios


def shufflebench_time(name: str, args: dict, threads: int) -> str:
    argv = [
        sys.executable,
        "-m",
        "shufflebench.cli",
        "time",
        name,
        *(f"{k}={v}" for k, v in args.items()),
        "--threads",
        str(threads),
        "--processes",
        "6",
        "--min-time",
        "0.5",
        "--json",
    ]
    row = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    medians = sorted(statistics.median(p) for p in row["samples_ms"])
    return f"median {row['median_ms']:.3f}, process medians {', '.join(f'{m:.2f}' for m in medians)}"


def overhead() -> float:
    settings = backends.get("torch-cpu").defaults(threads=1)
    timed = torch_backend.prepare(nn.Conv2d(8, 8, 1), (1, 8, 4, 4), device="cpu", settings=settings)
    conv, x = timed.module, timed.x
    ours, bare = [], []
    for _ in range(5):
        m = measure(timed, MeasureSettings(min_time=0.5))
        ours.append(statistics.median(m.samples))
        samples = []
        with torch.inference_mode():
            deadline = time.perf_counter() + 0.5
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                for _ in range(m.number):
                    conv(x)
                samples.append((time.perf_counter() - start) / m.number)
        bare.append(statistics.median(samples))
    diff_us = (statistics.median(ours) - statistics.median(bare)) * 1e6
    print(
        f"overhead on a near-empty workload: shufflebench {statistics.median(ours) * 1e6:.2f} us, bare loop "
        f"{statistics.median(bare) * 1e6:.2f} us, difference {diff_us:+.2f} us "
        f"({'ok' if abs(diff_us) <= OVERHEAD_US else 'OVER 0.05 us'})"
    )
    return diff_us


def _label(name: str, args: dict) -> str:
    return f"{name}({', '.join(f'{k}={v}' for k, v in args.items())})"


def steady_heap() -> None:
    """Run this process as a worker runs: with the steady heap of the torch-cpu default
    (shufflebench.backends.STEADY_HEAP), so the comparison is not between two timers caught in glibc's page-fault churn
    (docs/design-notes.md)."""
    env = backends.get("torch-cpu").worker_env({"malloc": "steady"})
    if os.environ.get("GLIBC_TUNABLES") != env["GLIBC_TUNABLES"]:
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **env})


if __name__ == "__main__":
    steady_heap()
    ratios = agreement(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    diff = overhead()
    sys.exit(0 if all(abs(r - 1) <= AGREEMENT for r in ratios) and abs(diff) <= OVERHEAD_US else 1)
