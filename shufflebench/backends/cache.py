"""The cache state a CPU cell is timed in: the ``cache`` setting of torch-cpu and ort-cpu.

``warm`` (the default) times calls back to back, as every benchmark harness does: an op's weights and input stay in
the core's caches from one call to the next. Inside a network they do not: the ops before it have run through the
L2 since its last call. ``cold`` writes a buffer of EVICT_FACTOR x the core's L2 before every call, outside the timed
interval, so that each call starts with its weights and input in the last-level cache but not in the L2 (the
predictor's calibration runs so: docs/design-notes.md, "What a whole network adds"). Evicting the last-level cache as
well was tried and is far from what a network sees (a buffer of 4x the L3 made ShuffleNet V2's ops 7x slower).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

CACHES = ("warm", "cold")
EVICT_FACTOR = 4
L2_FALLBACK_KIB = 2048  # where the OS does not say (not Linux): at least the L2 of current cores


def l2_bytes() -> int:
    """This core's L2 size in bytes, from sysfs."""
    from shufflebench.device import caches

    return caches(Path("/sys/devices/system/cpu/cpu0/cache")).get("l2", L2_FALLBACK_KIB) * 1024


class Evictor:
    """Writes a buffer of EVICT_FACTOR x the L2 when called: what was in the L2 before is gone after."""

    def __init__(self, nbytes: int | None = None) -> None:
        self.buffer = np.zeros((nbytes or EVICT_FACTOR * l2_bytes()) // 8)

    def __call__(self) -> None:
        self.buffer += 1.0


def time_cold(call: Callable[[], object], n: int, evict: Evictor) -> float:
    """Seconds for ``n`` calls, the L2 evicted before each one and the eviction not timed."""
    total = 0.0
    for _ in range(n):
        evict()
        start = time.perf_counter()
        call()
        total += time.perf_counter() - start
    return total
