"""The latency predictor's calibration sweep, generated rather than listed by hand (``shufflebench calibrate``).

Single-op workloads (shufflebench/blocks/calibration.py) at shapes drawn, with a fixed seed, from the ranges the
registered networks run their ops at: 16 to 1024 channels at 7 to 112 pixels, large channel counts at small sizes as in
the networks (tensors of 8 K to 2 M elements). Every class of op the predictor tells apart is covered: 1x1 (also
widening and narrowing few channels), kxk, depthwise and grouped convolutions and the stem, element-wise ops,
concatenation, the shuffle, max, average and global pools, linear layers. It is an ordinary sweep (``calibrate`` in the
results folder: resumable, one row per cell, exportable as a bundle for a board). At one thread on a 2-core zen4 VM it
measured its 368 worker runs (92 workloads on two backends) in 3.3 minutes cold (each call after an L2 eviction, the
default: shufflebench/backends/cache.py); preparing them the first time takes a few minutes more (cached after that).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from shufflebench import config

CHANNELS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
SIZES = (7, 14, 28, 56, 112)
NETWORK_WIDTHS = (58, 116, 232, 464)  # ShuffleNet V2 1x's branch widths: not a multiple of 8 or 16
GROUPED_WIDTHS = (30, 60, 90, 180)  # ShuffleNet v1 0.5x-1.5x's bottlenecks, 3 groups: 10-60 channels per group
BLOCKED_GROUPED_WIDTHS = (120, 240, 480, 960)  # ShuffleNet v1's stage widths, 3 groups: 40-320 channels per group
GROUPED_KXK = 4  # 3 x 3 group convolutions beyond the two drawn with the 1x1 ones
ELEMENTS = (2**13, 2**21)  # c * hw * hw of the shapes drawn
BN_EXTRA = 4  # batch-norm cells beyond the one every element-wise op gets
STEMS = 5  # 3 x 3 stems drawn from the networks' widths and resolutions, beside ResNet's 7 x 7
POINTWISE = 6  # widening and narrowing 1x1 cells, of few channels
POINTWISE_CHANNELS = (8, 16, 24, 32, 48, 64)
EXP_EXTRA = 4  # sigmoid and SiLU cells beyond the one each gets: their class (elementwise_exp) needs a cost per op and
# one per byte
MAX_MACS = 1.5e9  # multiply-adds per cell, so that no cell takes more than a few seconds
MEASURE = {"processes": 2, "max_processes": 2, "min_time": 0.2, "warmup_time": 0.1, "seed": 0, "probe": True}
NAME = "calibrate"
CACHE = "cold"  # each op timed with the L2 evicted, as it runs inside a network (shufflebench/backends/cache.py)


def sweep_data(backends: list[str], threads: int = 1, seed: int = 0, cache: str = CACHE) -> dict[str, Any]:
    """The calibration sweep as a sweep file's mapping, for ``backends`` at ``threads`` threads, timed ``cache``."""
    rng = random.Random(seed)

    def fits(c: int, hw: int) -> bool:
        return ELEMENTS[0] <= c * hw * hw <= ELEMENTS[1]

    shapes = [(c, hw) for c in CHANNELS for hw in SIZES if fits(c, hw)]

    def draw(n: int, fits: Any = lambda c, hw: True) -> list[tuple[int, int]]:
        return rng.sample([s for s in shapes if fits(*s)], n)

    def conv_fits(k: int, groups: int) -> Any:
        return lambda c, hw: 5 * c * (c // groups) * k * k * hw * hw <= MAX_MACS

    workloads: list[dict[str, Any]] = []
    for k, groups, n in ((1, 1, 8), (3, 1, 5), (5, 1, 2)):
        workloads += [_entry("op_conv", c=c, hw=hw, k=k) for c, hw in draw(n, conv_fits(k, groups))]
    for k, n in ((3, 5), (5, 3)):  # depthwise: one group per channel
        workloads += [_entry("op_conv", c=c, hw=hw, k=k, groups=c) for c, hw in draw(n)]
    for c, hw in draw(5, conv_fits(1, 2)):
        groups = rng.choice([g for g in (2, 3, 4, 8) if c % g == 0])
        workloads.append(_entry("op_conv", c=c, hw=hw, k=1 if rng.random() < 0.6 else 3, groups=groups))
    for op in ("add", "mul", "relu", "relu6", "sigmoid", "hardswish", "silu", "bn"):
        workloads += [_entry("op_elementwise", op=op, c=c, hw=hw) for c, hw in draw(2 if op in ("add", "relu") else 1)]
    workloads += [_entry("op_concat", c=c, hw=hw) for c, hw in draw(3)]
    workloads += [_entry("op_shuffle", c=c, hw=hw, groups=2 if c % 3 else 3) for c, hw in draw(3)]
    for kind, n in (("max", 3), ("avg", 3), ("global", 3)):
        workloads += [_entry("op_pool", kind=kind, c=c, hw=hw) for c, hw in draw(n)]
    workloads += [_entry("op_linear", c=c) for c in (256, 1024, 1280)]
    for c in NETWORK_WIDTHS:  # depthwise at the networks' own widths, which ONNX Runtime cannot block (NCHWc)
        workloads.append(_entry("op_conv", c=c, hw=rng.choice([hw for hw in SIZES if fits(c, hw)]), k=3, groups=c))
    # Batch norm at more sizes: torch runs one after every convolution of every network, and one size cannot tell
    # its cost per op from its cost per byte. These and the stems are drawn last, so adding them left the draws
    # above, and so a resumed sweep's cells, unchanged.
    workloads += [_entry("op_elementwise", op="bn", c=c, hw=hw) for c, hw in draw(BN_EXTRA)]
    # Stems: the networks' first convolution on the RGB image, at their widths and resolutions.
    for c, resolution in rng.sample([(c, r) for c in (16, 24, 32, 48) for r in (128, 160, 192, 224)], STEMS):
        workloads.append(_entry("op_stem", c=c, resolution=resolution))
    workloads.append(_entry("op_stem", c=64, resolution=224, k=7))  # ResNet's
    # 1x1 convolutions that widen and narrow few channels on large images, as MobileNet v2's and EfficientNet's units
    # do: the c -> c cells above are all wide enough to be bound by their FLOPs, so they cannot fit a 1x1's cost per
    # op and per byte (in ONNX Runtime's profile of MobileNet v2 0.4x its narrow 1x1s took 1.5x what that fit said).
    pointwise = [(c, e, hw) for c in POINTWISE_CHANNELS for e in (4, 6) for hw in SIZES if fits(c * e, hw)]
    for c, expand, hw in rng.sample(pointwise, POINTWISE):
        workloads.append(_entry("op_pointwise", c=c, hw=hw, expand=expand))
    # 1x1 group convolutions at ShuffleNet v1's widths (3 groups of 10 to 60 channels), which ONNX Runtime cannot
    # block (NCHWc) either: of the five grouped cells above one has channels per group that are no multiple of 8.
    for c in GROUPED_WIDTHS:
        workloads.append(_entry("op_conv", c=c, hw=rng.choice([hw for hw in SIZES if fits(c, hw)]), groups=3))
    # Sigmoid and SiLU at more sizes: element-wise ops that evaluate an exponential per element are a class of their
    # own (shufflebench.categories.EXP_OPS), as EfficientNet runs a SiLU after most of its convolutions.
    for i, (c, hw) in enumerate(draw(EXP_EXTRA)):
        workloads.append(_entry("op_elementwise", op=("sigmoid", "silu")[i % 2], c=c, hw=hw))
    # 1x1 group convolutions that ONNX Runtime does block, at ShuffleNet v1's widths: the five grouped cells drawn
    # above, 1x1 and 3 x 3 at 8 to 256 channels per group, left the class's cost per op to four cells and it came out
    # at 63 us, three times what ShuffleNet v1 0.5x's blocked group convolutions took alone.
    for c in BLOCKED_GROUPED_WIDTHS:
        hw = rng.choice([hw for hw in SIZES if fits(c, hw) and conv_fits(1, 3)(c, hw)])
        workloads.append(_entry("op_conv", c=c, hw=hw, groups=3))
    # 3 x 3 group convolutions, a class of their own (grouped_kxk): two of the five grouped cells above are 3 x 3.
    for c, hw in draw(GROUPED_KXK, conv_fits(3, 2)):
        groups = rng.choice([g for g in (2, 4, 8, 16, 32) if c % g == 0])
        workloads.append(_entry("op_conv", c=c, hw=hw, k=3, groups=groups))
    return {
        "sweep": NAME,
        "description": f"latency predictor calibration, generated (seed {seed}) by shufflebench/calibrate.py",
        "settings": {"backend": backends, "batch": 1, "threads": threads, "opt_level": "all", "cache": cache},
        "measure": MEASURE,
        "workloads": workloads,
    }


def sweep(backends: list[str], threads: int = 1, seed: int = 0, cache: str = CACHE) -> config.Sweep:
    return config.from_data(sweep_data(backends, threads, seed, cache), Path(f"{NAME} (generated)"))


def _entry(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "grid": args}
