"""The roofline of a cell: how close it came to the device's measured roofs, and which roof bounds it.

With the cell's FLOPs (multiply-adds, so 2 FLOP each), its bytes moved (``mac_bytes``, or for ONNX Runtime the graph it
really ran, ``mac_runtime_bytes``) and the device's roofs from the probe (``peak_gflops``, ``peak_gbs``):

- ``arithmetic_intensity``: FLOP per byte moved;
- ``attained_gflops`` and ``attained_gbs``: what the cell achieved at its median latency, and their fractions of the
  roofs (``compute_fraction``, ``bandwidth_fraction``);
- ``roof_efficiency``: the time the roofline allows, max(FLOP / peak, bytes / bandwidth), over the time measured;
- ``bound``: ``compute`` or ``memory`` (the larger of the two terms) when the roofline explains at least EXPLAINED of
  the time, ``overhead`` when it does not: launches, framework dispatch, cache misses the MAC model does not see.
"""

from __future__ import annotations

from dataclasses import dataclass

EXPLAINED = 0.5  # roof_efficiency at or above which a roof explains the time


@dataclass(frozen=True)
class Roofline:
    arithmetic_intensity: float | None = None  # FLOP per byte, on the model's MAC
    arithmetic_intensity_runtime: float | None = None  # FLOP per byte, on the MAC of the graph the runtime ran
    attained_gflops: float | None = None  # FLOP (2 x multiply-adds) per second the cell reached
    attained_gbs: float | None = None  # bytes of MAC per second the cell reached
    compute_fraction: float | None = None  # attained GFLOP/s over the device's compute roof
    bandwidth_fraction: float | None = None  # attained GB/s over the device's memory roof
    roof_efficiency: float | None = None  # the larger of the two fractions: how close the cell came to a roof
    bound: str | None = None  # compute, memory or overhead


def analyse(
    flops: float | None,
    mac_bytes: float | None,
    median_ms: float | None,
    peak_gflops: float | None,
    peak_gbs: float | None,
    mac_runtime_bytes: float | None = None,
) -> Roofline:
    """The roofline columns of one cell; empty where a number it needs is missing."""
    if not (flops and mac_bytes and median_ms):
        return Roofline()
    seconds = median_ms / 1e3
    flop = 2 * flops
    moved = mac_runtime_bytes or mac_bytes  # the bytes the runtime really moved, where known
    out = {
        "arithmetic_intensity": flop / mac_bytes,
        "arithmetic_intensity_runtime": flop / mac_runtime_bytes if mac_runtime_bytes else None,
        "attained_gflops": flop / seconds / 1e9,
        "attained_gbs": moved / seconds / 1e9,
    }
    if peak_gflops and peak_gbs:
        compute_s, memory_s = flop / (peak_gflops * 1e9), moved / (peak_gbs * 1e9)
        efficiency = max(compute_s, memory_s) / seconds
        out.update(
            compute_fraction=out["attained_gflops"] / peak_gflops,
            bandwidth_fraction=out["attained_gbs"] / peak_gbs,
            roof_efficiency=efficiency,
            bound=("compute" if compute_s >= memory_s else "memory") if efficiency >= EXPLAINED else "overhead",
        )
    return Roofline(**{k: round(v, 6) if isinstance(v, float) else v for k, v in out.items()})
