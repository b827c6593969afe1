"""The device's measured roofs: peak fp32 matmul throughput and memory bandwidth, per backend and thread count.

A cell's speed means little without the speed the device can reach, so every sweep probes the device at its start
and at its end, with each backend's own kernels and the thread counts the sweep uses (shufflebench.backends: torch
matmul and copy; ONNX Runtime's MatMul and Mul on the graphs in shufflebench/probes/; on CUDA synchronised):

- ``matmul_gflops``: 2 n^3 / t for an n x n fp32 matrix product (on a CPU the best of n = 256, 512 and 1024, since
  the largest is not always the fastest; 4096 on a GPU, TF32 off), the median of repeated products; note FLOP here,
  two per multiply-add, as vendors quote peaks;
- ``bandwidth_gbs``: bytes read plus bytes written per second by a copy of an array far beyond the last-level cache
  (256 MiB on a CPU, 1 GiB on a GPU).

The start probe goes into ``device.json`` and into every row of the run (``peak_gflops``, ``peak_gbs``, ``probe``);
the end probe is added to the run's rows when the run finishes, and a difference of more than PROBE_DRIFT flags them
(a neighbour, or throttling). Probes run in worker processes like cells, so the runner stays torch-free.

A backend's probe is its library's roof, not the device's: ONNX Runtime's NCHWc convolutions run faster than its own
SGEMM. A cell is judged against the device's roofs (:func:`device_roofs`): the best that any backend's probe reached on
the same processor at the same thread count.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

PROBE_DRIFT = 0.10  # end of a run against its start
PROBE_CHANGE = 0.15  # two runs, or two folders, of one device id
MIN_TIME = 0.25  # s of timed repeats per roof
CPU_MATMUL_SIZES = (256, 512, 1024)


@dataclass(frozen=True)
class ProbeJob:
    backend: str
    threads: int | None
    precision: str = "fp32"  # of the matrix product: fp32, tf32, float16 or bfloat16 (shufflebench.probe.precision)


@dataclass(frozen=True)
class Roofs:
    matmul_gflops: float
    bandwidth_gbs: float
    matmul_n: int
    bandwidth_mib: int


def key(backend: str, threads: int | None, precision: str = "fp32") -> str:
    """The probe a cell is judged by: its backend and, on a CPU, its thread count, or on a GPU the precision of its
    matrix products where it is not fp32 ("torch-cuda/float16")."""
    return "/".join(
        [backend, *([f"threads={threads}"] if threads is not None else []), *[precision] * (precision != "fp32")]
    )


def precision(settings: dict[str, Any]) -> str:
    """The precision a cell's convolutions and matrix products run in: its dtype, or tf32 for float32 with TF32 on."""
    dtype = settings.get("dtype") or "float32"
    return dtype if dtype != "float32" else "tf32" if settings.get("tf32") else "fp32"


def median_seconds(call: Callable[[], Any], sync: Callable[[], None] = lambda: None, repeats: int = 5) -> float:
    """Median seconds of one ``call``, each waited for, over at least ``repeats`` calls and MIN_TIME seconds."""
    for _ in range(2):
        call()
    sync()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - started < MIN_TIME:
        start = time.perf_counter()
        call()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fastest_matmul(seconds_for: Callable[[int], float], sizes: tuple[int, ...]) -> tuple[float, int]:
    """(seconds, n) of the n x n product that reaches the most FLOP/s among ``sizes``."""
    timed = [(seconds_for(n), n) for n in sizes]
    return max(timed, key=lambda t: t[1] ** 3 / t[0])


def device_roofs(probes: dict[str, dict[str, float]], key: str) -> dict[str, float] | None:
    """The device's roofs for cells judged by probe ``key``: the best matmul and bandwidth that any backend's probe in
    ``probes`` reached on the same processor at the same thread count (CPU) or precision (GPU), whether or not this
    backend's own probe ran (ONNX Runtime probes fp32 only); None when no probe of that kind ran."""
    kind = key.partition("/")[2]
    peers = [r for k, r in probes.items() if r and k.partition("/")[2] == kind]
    if not peers:
        return None
    return {roof: max(r[roof] for r in peers) for roof in ("matmul_gflops", "bandwidth_gbs")}


def roofs(matmul_seconds: float, n: int, copy_seconds: float, nbytes: int) -> Roofs:
    """Roofs from a timed n x n matrix product and a timed copy of ``nbytes``."""
    return Roofs(2 * n**3 / matmul_seconds / 1e9, 2 * nbytes / copy_seconds / 1e9, n, nbytes // 2**20)


def drift(start: dict[str, dict[str, float]], end: dict[str, dict[str, float]]) -> float:
    """The largest relative change of any roof between two probes of the same keys (0 when nothing compares)."""
    changes = [
        abs(end[k][roof] - start[k][roof]) / start[k][roof]
        for k in start.keys() & end.keys()
        for roof in ("matmul_gflops", "bandwidth_gbs")
        if start[k].get(roof) and end[k].get(roof)
    ]
    return max(changes, default=0.0)


def differs(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]], tolerance: float = PROBE_CHANGE) -> bool:
    """Whether two probes disagree by more than ``tolerance`` on any roof they share, or share no key at all."""
    if not a and not b:
        return False
    if not a.keys() & b.keys():
        return True
    return drift(a, b) > tolerance


def as_dict(result: Roofs) -> dict[str, float]:
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in asdict(result).items()}
