"""Check that forked workers measure what freshly executed ones measure (`make validate-launcher`).

The same cells (G1 x1 on torch-cpu and ort-cpu, ShuffleNet V2 1x and MobileNet V2 1x on both) are measured with both
launchers of shufflebench.launcher in one run, interleaved: every round runs each launcher once, in a shuffled order,
and each launcher runs every cell once in a shuffled order. Per cell it prints the ratio of medians (fork / exec),
whether each median lies inside the other's interval, the ratio of between-process spread (IQR of the process medians,
fork / exec: forking processes that came out identical would show far below 1), and the seconds per worker run of each,
with the part beyond warm-up and sampling. Then the same with glibc's default heap (``malloc: glibc``) on g1
c1=13,c2=78, whose processes fell into two speeds with fresh processes on the zen4 development machine: the process
medians of each launcher and the modes shufflebench.stats finds in them.

Pass criteria: medians within 2% of each other for the median cell, each inside the other's interval for at least
90% of cells, spread ratio between 0.7 and 1.5 for the median cell.

Usage: python scripts/validate_launcher.py [PROCESSES]   (default 6; 12 for the glibc cell)
"""

from __future__ import annotations

import random
import statistics
import sys
import time

import numpy as np

from shufflebench import backends, config, device, preparation, stats
from shufflebench.launcher import Launcher
from shufflebench.measure import MeasureSettings
from shufflebench.worker import Failure, ProcessResult, TimeJob

WORKLOADS = [
    ("g1", {"c1": 32, "c2": 32}),
    ("g1", {"c1": 22, "c2": 44}),
    ("g1", {"c1": 13, "c2": 78}),
    ("g1", {"c1": 9, "c2": 108}),
    ("shufflenet_v2", {"width": 1.0}),
    ("mobilenet_v2", {"width": 1.0}),
]
MEASURE = MeasureSettings(min_time=0.3)
TIMEOUT = 600.0


def cells(backends: tuple[str, ...], workloads: list, **settings: object) -> list[config.Cell]:
    return [
        config.single_cell(name, args, backend, {"batch": 1, "threads": 1, **settings})
        for backend in backends
        for name, args in workloads
    ]


def measure(todo: list[config.Cell], processes: int, seed: int = 0) -> dict:
    """Per (launcher mode, cell key): the process results and the wall seconds of each worker run."""
    rng = random.Random(seed)
    launchers = {mode: Launcher(mode=mode) for mode in ("fork", "exec")}
    with launchers["fork"], launchers["exec"]:
        prepared, errors = preparation.prepare_cells(todo, TIMEOUT, launchers["exec"])
        if errors:
            sys.exit(f"validate-launcher: could not prepare {errors}")
        out: dict = {(mode, c.key): ([], []) for mode in launchers for c in todo}
        for round_ in range(processes):
            for mode in rng.sample(list(launchers), 2):
                launcher = launchers[mode]
                launcher.next_round()
                for cell in rng.sample(todo, len(todo)):
                    backend = backends.get(cell.backend)
                    started = time.perf_counter()
                    answer = launcher.run(
                        "time",
                        TimeJob(cell, prepared[cell.key], MEASURE),
                        TIMEOUT,
                        backend.preload,
                        backend.worker_env(cell.settings),
                    )
                    if isinstance(answer, Failure):
                        sys.exit(f"validate-launcher: {cell.key} failed with the {mode} launcher: {answer.error}")
                    results, walls = out[(mode, cell.key)]
                    results.append(answer)
                    walls.append(time.perf_counter() - started)
            print(f"round {round_ + 1} of {processes} done", file=sys.stderr)
    return out


def spent(result: ProcessResult) -> float:
    """Seconds of warm-up and sampling in one process."""
    return sum(result.warmup) + sum(result.samples) * result.number


def summary(results: list[ProcessResult]) -> stats.Summary:
    return stats.summarize([r.samples for r in results], [r.number for r in results], 1)


def iqr(values: list[float]) -> float:
    q75, q25 = np.percentile(values, [75, 25])
    return float(q75 - q25)


def compare(todo: list[config.Cell], out: dict) -> bool:
    print(
        "| cell | fork ms | exec ms | fork/exec | each in the other's interval | spread fork/exec "
        "| s/run fork (beyond warm-up+sampling) | s/run exec (beyond) |"
    )
    print("|---|---:|---:|---:|---|---:|---:|---:|")
    ratios, inside, spreads, beyond = [], [], [], {"fork": [], "exec": []}
    for cell in todo:
        s = {mode: summary(out[(mode, cell.key)][0]) for mode in ("fork", "exec")}
        ratio = s["fork"].median_ms / s["exec"].median_ms
        both = (
            s["exec"].ci_low_ms <= s["fork"].median_ms <= s["exec"].ci_high_ms
            and s["fork"].ci_low_ms <= s["exec"].median_ms <= s["fork"].ci_high_ms
        )
        spread_exec = iqr(s["exec"].process_medians_ms)
        spread = iqr(s["fork"].process_medians_ms) / spread_exec if spread_exec else float("nan")
        per_run = {}
        for mode in ("fork", "exec"):
            results, walls = out[(mode, cell.key)]
            extra = [w - spent(r) for r, w in zip(results, walls)]
            beyond[mode] += extra
            per_run[mode] = f"{statistics.mean(walls):.2f} ({statistics.mean(extra):.2f})"
        ratios.append(ratio)
        inside.append(both)
        spreads.append(spread)
        print(
            f"| {cell.key} | {s['fork'].median_ms:.3f} | {s['exec'].median_ms:.3f} | {ratio:.3f} | "
            f"{'yes' if both else 'no'} | {spread:.2f} | {per_run['fork']} | {per_run['exec']} |"
        )
    median_ratio = statistics.median(ratios)
    share = sum(inside) / len(inside)
    median_spread = float(np.nanmedian(spreads))
    print()
    print(f"median cell: fork/exec {median_ratio:.3f}; each median inside the other's interval: {share:.0%} of cells;")
    print(f"spread ratio (IQR of process medians, fork/exec), median cell: {median_spread:.2f};")
    print(
        "seconds per worker run beyond warm-up and sampling, mean: "
        f"fork {statistics.mean(beyond['fork']):.2f}, exec {statistics.mean(beyond['exec']):.2f}"
    )
    ok = abs(median_ratio - 1) <= 0.02 and share >= 0.9 and 0.7 <= median_spread <= 1.5
    print("PASS" if ok else "FAIL: the criteria are medians within 2%, 90% inside, spread ratio 0.7-1.5")
    return ok


def modes(cell: config.Cell, out: dict) -> None:
    print(f"\nmalloc: glibc, {cell.key}")
    for mode in ("fork", "exec"):
        results = out[(mode, cell.key)][0]
        medians = sorted(float(np.median(r.samples)) * 1e3 for r in results)
        found = stats.find_modes([np.asarray(r.samples) * 1e3 for r in results])
        groups = ", ".join(f"{m['median_ms']:.2f} ms x{m['processes']}" for m in found) if found else "one mode"
        print(f"  {mode}: process medians {' '.join(f'{m:.2f}' for m in medians)} ms -> {groups}")


def main() -> int:
    processes = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    meta = device.collect()
    print(f"validate-launcher on {meta['device_id']}, {processes} processes per cell and launcher\n")
    todo = cells(("torch-cpu", "ort-cpu"), WORKLOADS)
    ok = compare(todo, measure(todo, processes))
    glibc = cells(("torch-cpu",), [("g1", {"c1": 13, "c2": 78})], malloc="glibc")
    modes(glibc[0], measure(glibc, 2 * processes, seed=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
