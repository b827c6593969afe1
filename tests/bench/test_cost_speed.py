"""Self-benchmarks (pytest-benchmark): the project's own speed targets. `make selfbench` times them;
`make test` runs each once (--benchmark-disable) as a correctness check."""

from __future__ import annotations

from shufflebench import blocks
from shufflebench import cost


def test_counting_resnet50_takes_well_under_a_second(benchmark):
    w = blocks.build("resnet50")
    counted = benchmark.pedantic(cost.count, args=(w.module, w.input_shape), rounds=5, warmup_rounds=1)
    assert counted.flops == 4_089_184_256
    if not benchmark.disabled:
        assert benchmark.stats.stats.median < 1.0
