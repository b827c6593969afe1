"""Statistics on synthetic samples: known values give known numbers and flags."""

from __future__ import annotations

import numpy as np
import pytest

from bench import stats


def quiet(median_s: float, n: int = 200, spread: float = 0.01, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(median_s * (1 + spread * rng.uniform(-1, 1, n)))


def test_percentiles_throughput_and_units():
    samples = [[i * 1e-3 for i in range(1, 101)]]  # 1..100 ms
    s = stats.summarize(samples, batch=8)
    assert s["median_ms"] == pytest.approx(50.5)
    assert s["p10_ms"] == pytest.approx(10.9)
    assert s["p90_ms"] == pytest.approx(90.1)
    assert s["iqr_ms"] == pytest.approx(49.5)
    assert s["min_ms"] == pytest.approx(1) and s["max_ms"] == pytest.approx(100)
    assert s["batches_per_s"] == pytest.approx(1000 / 50.5)
    assert s["images_per_s"] == pytest.approx(8 * 1000 / 50.5)
    assert s["samples"] == 100 and s["processes"] == 1


def test_quiet_measurement_is_not_flagged_and_its_ci_holds_the_median():
    processes = [quiet(0.010, seed=i) for i in range(5)]
    s = stats.summarize(processes, batch=1)
    assert not s["is_noisy"], s["noise"]
    assert s["ci95_low_ms"] <= s["median_ms"] <= s["ci95_high_ms"]
    assert s["ci_method"] == "bootstrap over process medians"


def test_wide_iqr_is_flagged_with_a_remedy():
    rng = np.random.default_rng(1)
    s = stats.summarize([list(0.010 * (1 + 0.4 * rng.uniform(0, 1, 300)))], batch=1)
    assert s["is_noisy"]
    assert "IQR is" in s["noise"] and "close other programs" in s["noise"]


def test_processes_that_disagree_are_flagged():
    processes = [quiet(0.010 * f, seed=i) for i, f in enumerate([1.0, 1.3, 0.8, 1.25, 0.85])]
    s = stats.summarize(processes, batch=1)
    assert "the median is only known to" in s["noise"] and "raise processes" in s["noise"]
    assert s["required_processes"] > 5


def test_heavy_tail_and_busy_machine_are_flagged():
    samples = quiet(0.010, n=100)
    samples[-5:] = [0.030] * 5
    s = stats.summarize([samples], batch=1, load_avg=5.0, cores=2)
    assert "p99 is" in s["noise"] and "load average 5.0 on 2 cores" in s["noise"]


def test_one_process_ci_says_it_is_too_narrow():
    s = stats.summarize([quiet(0.01)], batch=1)
    assert "too narrow" in s["ci_method"]


def test_required_processes_follows_pyperf():
    # relative std 1% -> n = 4 * 1.96^2 * 0.01^2 / 0.01^2 = 15.4 -> 16
    medians = [1.0 - 0.01 * np.sqrt(2) / np.sqrt(2), 1.0, 1.0 + 0.01]
    rel = np.std(medians, ddof=1) / np.mean(medians)
    assert stats.required_processes(medians) == int(np.ceil(4 * 1.96**2 * rel**2 / 0.01**2))
    assert stats.required_processes([1.0]) == 0


def test_no_samples_is_an_error():
    with pytest.raises(ValueError):
        stats.summarize([[]], batch=1)


def test_pipelined_columns_are_the_median_of_process_medians():
    out = stats.pipelined([[1e-3, 1e-3, 9e-3], [2e-3, 2e-3], [3e-3]], batch=8)
    assert out["pipelined_ms"] == pytest.approx(2.0)
    assert out["pipelined_images_per_s"] == pytest.approx(4000) and out["pipelined_batches_per_s"] == pytest.approx(500)


def test_backend_warnings_become_noise_flags():
    out = stats.summarize([[1e-3] * 20] * 3, batch=1, warnings=["nodes not on CUDAExecutionProvider: 1 Add"])
    assert out["is_noisy"] and "1 Add" in out["noise"]
