"""Self-benchmark (`make selfbench`): the probe's matmul roof against a direct torch.matmul on this machine."""

from __future__ import annotations

import torch

from shufflebench import backends


def test_the_probe_matmul_is_within_25_percent_of_torch_matmul(benchmark):
    torch.set_num_threads(1)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    seconds = benchmark.pedantic(torch.matmul, args=(a, b), rounds=10, warmup_rounds=2)
    assert seconds.shape == (1024, 1024)
    roofs = backends.get("torch-cpu").probe(1)
    if not benchmark.disabled:
        direct_gflops = 2 * 1024**3 / benchmark.stats.stats.median / 1e9
        assert abs(roofs.matmul_gflops - direct_gflops) / direct_gflops <= 0.25, (roofs.matmul_gflops, direct_gflops)
