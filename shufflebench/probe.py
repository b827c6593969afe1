"""The device's measured roofs: peak fp32 compute throughput and memory bandwidth, per backend and thread count.

A cell's speed means little without the speed the device can reach, so every sweep probes the device at its start
and at its end, with each backend's own kernels and the thread counts the sweep uses (shufflebench.backends: torch
matmul, conv2d and copy; ONNX Runtime's MatMul, Conv and Mul on the graphs in shufflebench/probes/; on CUDA
synchronised). Each roof is the best the device reached: the fastest of repeated calls, as the Empirical Roofline
Toolkit takes a peak, so a cell's median does not sit above it by the luck of a quick moment.

- ``matmul_gflops``: 2 n^3 / t for an n x n fp32 matrix product (on a CPU the best of n = 256, 512 and 1024, since
  the largest is not always the fastest; 4096 on a GPU, TF32 off); note FLOP here, two per multiply-add, as vendors
  quote peaks;
- ``conv_gflops`` (CPU only): 2 x multiply-adds / t for a chain of CONV_CHAIN 1x1 fp32 convolutions, the best of
  CONV_SHAPES. A library's convolutions are its own kernels, not its matrix product: ONNX Runtime's blocked (NCHWc)
  convolutions run faster than its SGEMM, and on one zen4 with AVX-512 the cells ran at 113% of the best matrix
  product any library reached;
- ``bandwidth_gbs``: bytes read plus bytes written per second by a copy of an array far beyond the last-level cache
  (256 MiB on a CPU, 1 GiB on a GPU).

- ``noise_floor``: how noisy the machine itself is. A fixed small kernel (a 256 x 256 fp32 product) is timed in
  NOISE_BLOCK-second blocks for NOISE_SECONDS; the noise floor is the p90/p10 ratio of the blocks' per-call times, less
  one (0.05: the slow blocks run 5% slower than the fast ones), with ``noise_cv`` their coefficient of variation. On
  a quiet dedicated machine it is a few percent; on a VM whose hardware other tenants share it can be tens of percent,
  and no cell measured there is known better than that (shufflebench.stats, shufflebench.report.paper). The runner
  adds ``steal``: the share of CPU time the hypervisor gave to other guests while the probes ran (Linux /proc/stat).

The start probe goes into ``device.json`` and into every row of the run (``peak_gflops``, ``peak_gbs``, ``probe``);
the end probe is added to the run's rows when the run finishes, and a difference of more than PROBE_DRIFT flags them
(a neighbour, or throttling). Probes run in worker processes like cells, so the runner stays torch-free.

A backend's probe is its library's roof, not the device's. A cell is judged against the device's roofs
(:func:`device_roofs`): the compute roof is the best matrix product or convolution chain (:func:`compute_gflops`) that
any backend's probe reached on the same processor at the same thread count, the memory roof the best copy.
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
CONV_SHAPES = ((64, 56), (128, 56), (256, 28), (512, 14))  # (channels, height = width): a ShuffleNet's 1x1 convs
CONV_CHAIN = 8  # 1x1 convolutions in a row, so a blocked layout's reorders at the ends weigh little
ROOFS = ("matmul_gflops", "conv_gflops", "bandwidth_gbs")
NOISE_N = 256  # the noise floor's kernel: an n x n fp32 matrix product
NOISE_SECONDS = 2.0  # s the noise floor is timed for
NOISE_BLOCK = 0.1  # s per block of calls: a few of a cell's samples, long enough to average single interruptions


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
    noise_floor: float  # p90/p10 - 1 of the per-call times of NOISE_BLOCK-second blocks of a fixed small kernel
    noise_cv: float  # their coefficient of variation
    conv_gflops: float | None = None  # the best chain of 1x1 convolutions (CONV_SHAPES), on a CPU


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


def best_seconds(call: Callable[[], Any], sync: Callable[[], None] = lambda: None, repeats: int = 5) -> float:
    """Seconds of the fastest ``call``, each waited for, of at least ``repeats`` calls and MIN_TIME seconds."""
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
    return min(times)


class Reference:
    """The noise floor's kernel as a timer (shufflebench.measure's Timed), timed between a CPU cell's samples: the
    speed the machine ran at while the cell was measured. ``call`` runs one product."""

    asynchronous = False

    def __init__(self, call: Callable[[], Any]) -> None:
        self.call = call

    def time(self, n: int) -> float:
        call = self.call
        start = time.perf_counter()
        for _ in range(n):
            call()
        return time.perf_counter() - start


def noise(call: Callable[[], Any], sync: Callable[[], None] = lambda: None) -> tuple[float, float]:
    """(noise floor, coefficient of variation) of ``call`` timed in NOISE_BLOCK-second blocks for NOISE_SECONDS: the
    p90/p10 ratio of the blocks' per-call times less one, and their standard deviation over their mean."""
    call()
    sync()
    blocks: list[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < NOISE_SECONDS or len(blocks) < 10:
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < NOISE_BLOCK:
            call()
            calls += 1
        sync()
        blocks.append((time.perf_counter() - start) / calls)
    deciles = statistics.quantiles(blocks, n=10)
    return deciles[-1] / deciles[0] - 1, statistics.stdev(blocks) / statistics.mean(blocks)


def fastest_matmul(seconds_for: Callable[[int], float], sizes: tuple[int, ...]) -> tuple[float, int]:
    """(seconds, n) of the n x n product that reaches the most FLOP/s among ``sizes``."""
    timed = [(seconds_for(n), n) for n in sizes]
    return max(timed, key=lambda t: t[1] ** 3 / t[0])


def fastest_conv(seconds_for: Callable[[int, int], float]) -> float:
    """GFLOP/s of the fastest chain of CONV_CHAIN 1x1 convolutions among CONV_SHAPES; ``seconds_for(c, hw)`` times
    one chain of c channels on an hw x hw image."""
    return max(2 * CONV_CHAIN * c * c * hw * hw / seconds_for(c, hw) / 1e9 for c, hw in CONV_SHAPES)


def compute_gflops(roofs: dict[str, float]) -> float:
    """A probe's compute roof: its matrix product or its convolution chain, whichever ran faster (probes written
    before the chain have the product only)."""
    return max(roofs["matmul_gflops"], roofs.get("conv_gflops") or 0.0)


def roof_kind(key: str) -> str:
    """What probe ``key`` shares with the probes whose roofs its cells may be held against: on a CPU its thread count
    ("threads=1"), on a GPU its precision ("float16"; "" for fp32)."""
    return key.partition("/")[2]


def device_roofs(probes: dict[str, dict[str, float]], key: str) -> dict[str, float] | None:
    """The device's roofs for cells judged by probe ``key``: ``compute_gflops`` and ``bandwidth_gbs``, the best that
    any backend's probe in ``probes`` reached on the same processor at the same thread count (CPU) or precision (GPU),
    whether or not this backend's own probe ran (ONNX Runtime probes fp32 only); None when no probe of that kind ran."""
    peers = [r for k, r in probes.items() if r and roof_kind(k) == roof_kind(key)]
    if not peers:
        return None
    return {"compute_gflops": max(map(compute_gflops, peers)), "bandwidth_gbs": max(r["bandwidth_gbs"] for r in peers)}


def roofs(
    matmul_seconds: float,
    n: int,
    copy_seconds: float,
    nbytes: int,
    noise: tuple[float, float],
    conv_gflops: float | None = None,
) -> Roofs:
    """Roofs from a timed n x n matrix product and a timed copy of ``nbytes``, with the noise floor (:func:`noise`)
    and, on a CPU, the convolution chain's (:func:`fastest_conv`)."""
    return Roofs(
        2 * n**3 / matmul_seconds / 1e9, 2 * nbytes / copy_seconds / 1e9, n, nbytes // 2**20, *noise, conv_gflops
    )


def drift(start: dict[str, dict[str, float]], end: dict[str, dict[str, float]]) -> float:
    """The largest relative change of any roof between two probes of the same keys (0 when nothing compares)."""
    changes = [
        abs(end[k][roof] - start[k][roof]) / start[k][roof]
        for k in start.keys() & end.keys()
        for roof in ROOFS
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
    """The probe as device.json and the rows keep it: roofs to 0.01, the noise floor's fractions to 0.001."""
    return {
        k: round(v, 3 if k.startswith("noise") else 2) if isinstance(v, float) else v for k, v in asdict(result).items()
    }
