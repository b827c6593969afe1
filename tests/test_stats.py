"""Statistics on synthetic samples: known values give known numbers and flags."""

from __future__ import annotations

import re

import numpy as np
import pytest

from shufflebench import stats


def quiet(median_s: float, n: int = 200, spread: float = 0.01, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(median_s * (1 + spread * rng.uniform(-1, 1, n)))


def summarize(processes, batch=1, numbers=None, **kwargs):
    return stats.summarize(processes, numbers or [1] * len(processes), batch, **kwargs)


def test_percentiles_throughput_and_units():
    samples = [[i * 1e-3 for i in range(1, 101)]]  # 1..100 ms
    s = summarize(samples, batch=8)
    assert s.median_ms == pytest.approx(50.5)
    assert 10 <= s.p10_ms <= 11 and 90 <= s.p90_ms <= 91  # inverted CDF: an observed sample
    assert 49 <= s.iqr_ms <= 51
    assert s.min_ms == pytest.approx(1) and s.max_ms == pytest.approx(100)
    assert s.batches_per_s == pytest.approx(1000 / 50.5)
    assert s.images_per_s == pytest.approx(8 * 1000 / 50.5)
    assert s.samples == 100 and s.processes == 1 and s.percentiles_of == "calls"


def test_every_process_weighs_the_same_however_many_samples_it_has():
    # The review's example: four processes at 1.0 ms with 30 samples, one at 1.5 ms with 2000 (calibration picked
    # number=1 there). Pooling samples would say 1.498 ms.
    processes = [quiet(1.0e-3, n=30, spread=0.001, seed=i) for i in range(4)] + [quiet(1.5e-3, n=2000, seed=9)]
    s = summarize(processes, numbers=[67, 67, 67, 67, 1])
    assert s.median_ms == pytest.approx(1.0, abs=0.002)
    assert s.process_medians_ms[-1] == pytest.approx(1.5, abs=0.002) and s.numbers == [67, 67, 67, 67, 1]
    assert s.percentiles_of == "blocks of 1-67 calls"
    assert s.p25_ms == pytest.approx(1.0, abs=0.002)  # weighted: four fifths of the weight sits at 1.0 ms


def test_the_interval_is_the_order_statistic_one_with_its_level():
    assert stats.median_interval([3.0, 1.0, 2.0]) == (1.0, 3.0, 0.75)
    low, high, level = stats.median_interval([5.0, 1.0, 4.0, 2.0, 3.0])
    assert (low, high) == (1.0, 5.0) and level == pytest.approx(1 - 2 / 32)  # 93.75%: five cannot reach 95%
    low, high, level = stats.median_interval(list(range(1, 7)))
    assert (low, high) == (1, 6) and level == pytest.approx(1 - 2 / 64) and level >= 0.95
    low, high, level = stats.median_interval(list(range(1, 11)))
    assert (low, high) == (2, 9) and level == pytest.approx(1 - 2 * 11 / 1024)
    assert stats.median_interval([1.0, 2.0]) == (None, None, None)


@pytest.mark.parametrize("n", [3, 5, 6, 10])
def test_the_interval_covers_the_true_median_at_least_as_often_as_it_claims(n):
    rng = np.random.default_rng(n)
    true_median = 1.0  # of a lognormal with mu = 0: skewed, as latencies are
    trials, covered, level = 4000, 0, None
    for _ in range(trials):
        low, high, level = stats.median_interval(rng.lognormal(0.0, 0.3, n))
        covered += low <= true_median <= high
    # the interval is exact for continuous data: its coverage is the level, up to the simulation's own error
    assert covered / trials >= level - 3 * np.sqrt(level * (1 - level) / trials)


def test_quiet_measurement_is_not_flagged_and_its_interval_holds_the_median():
    processes = [quiet(0.010, seed=i) for i in range(6)]
    s = summarize(processes)
    assert not s.is_noisy, s.noise
    assert s.ci_low_ms <= s.median_ms <= s.ci_high_ms and s.ci_level >= 0.95


def test_one_or_two_processes_give_no_interval_and_say_so():
    s = summarize([quiet(0.01), quiet(0.01, seed=1)])
    assert s.ci_low_ms is None and s.ci_level is None
    assert "no interval for the median from 2 process(es): raise processes to 6" in s.noise
    assert not s.is_noisy  # a note on how it was measured, not noise of the machine


def test_percentiles_the_samples_cannot_resolve_are_left_empty_with_the_reason():
    s = summarize([quiet(0.01, n=20) for _ in range(3)])  # 60 samples: p99 needs 100
    assert s.p99_ms is None and s.p90_ms is not None
    assert "p99 left empty: 60 samples, 100 needed" in s.noise and not s.is_noisy


def test_wide_iqr_is_flagged_with_a_remedy():
    rng = np.random.default_rng(1)
    s = summarize([list(0.010 * (1 + 0.4 * rng.uniform(0, 1, 300))) for _ in range(3)])
    assert s.is_noisy
    assert "IQR is" in s.noise and "close other programs" in s.noise


def test_processes_that_disagree_are_flagged():
    processes = [quiet(0.010 * f, seed=i) for i, f in enumerate([1.0, 1.12, 0.9, 1.1, 0.92, 1.06])]
    s = summarize(processes)
    assert "the median is only known to" in s.noise
    needed = int(re.search(r"raise processes to (\d+) for ±5%", s.noise).group(1))
    assert 6 < needed <= stats.MAX_ADVISED_PROCESSES  # a number one can run, not thousands
    wild = summarize([quiet(0.010 * f, seed=i) for i, f in enumerate([1.0, 2.0, 0.5, 1.6, 0.7, 1.3])])
    assert "the processes differ too much for more of them to help" in wild.noise and "quiet the machine" in wild.noise
    assert s.required_processes > 6 and s.modes is None  # spread out, not in separate groups


def test_bimodal_processes_are_reported_as_modes_with_their_shares():
    # process medians of g1(c1=13, c2=78) on torch-cpu, one thread, from the review: 2.25, 2.29 | 4.28, 4.33, 4.58
    processes = [quiet(m * 1e-3, spread=0.02, seed=i) for i, m in enumerate([2.25, 4.28, 2.29, 4.33, 4.58])]
    s = summarize(processes)
    assert s.modes == [
        {"median_ms": pytest.approx(2.27, abs=0.01), "processes": 2},
        {"median_ms": pytest.approx(4.33, abs=0.01), "processes": 3},
    ]
    assert s.is_noisy and "processes fall into 2 modes" in s.noise and "2 of 5" not in s.noise


def test_heavy_tail_and_busy_machine_are_flagged():
    samples = quiet(0.010, n=100)
    samples[-5:] = [0.030] * 5
    s = summarize([samples] * 3, load_avg=5.0, cores=2, threads=2)
    assert "p99 is" in s.noise and "load average 5.0 on 2 cores" in s.noise
    assert "this cell ran 2 threads: measure with --threads 1" in s.noise
    assert "--threads 1" not in summarize([samples] * 3, load_avg=5.0, cores=2, threads=1).noise


def test_noise_on_shared_hardware_says_so_instead_of_close_other_programs():
    rng = np.random.default_rng(1)
    spread = [list(0.010 * (1 + 0.4 * rng.uniform(0, 1, 300))) for _ in range(3)]  # IQR ~20% of the median
    floor = {"noise_floor": 0.24, "noise_cv": 0.09, "steal": 0.03}
    shared = summarize(spread, load_avg=1.1, cores=2, threads=1, floor=floor)  # the load is the cell's own
    assert shared.is_noisy and "close other programs" not in shared.noise
    (reason,) = stats.reasons_of(shared.noise)
    assert stats.cause_of(reason) == "shared" and reason.startswith("IQR is")
    assert "on shared hardware: the device's noise floor is 24% (a fixed kernel's p90/p10), 3% of CPU time stolen" in (
        reason
    )
    assert (
        "load 1.1 on 2 cores" in reason and "a dedicated machine" in reason and "4x longer measure.min_time" in reason
    )
    assert re.search(r"more processes \(\d+ for ±5%", reason)
    # a busy machine (load beyond the cell's own threads), a quiet floor, or no probe: the usual advice stays
    for kwargs in (
        {"load_avg": 1.8, "floor": floor},
        {"load_avg": 1.1, "floor": {**floor, "noise_floor": 0.04}},
        {"load_avg": 1.1, "floor": None},
    ):
        usual = summarize(spread, cores=2, threads=1, **kwargs)
        assert "close other programs" in usual.noise and "shared hardware" not in usual.noise
    unstolen = summarize(spread, load_avg=1.1, cores=2, threads=1, floor={**floor, "steal": 0.003})
    assert "on shared hardware" in unstolen.noise and "stolen" not in unstolen.noise  # 0.3% is not worth a word
    quiet_cell = summarize([quiet(0.010, seed=i) for i in range(6)], load_avg=1.0, cores=2, threads=1, floor=floor)
    assert not quiet_cell.is_noisy  # a cell the noise did not reach is not flagged for it


@pytest.mark.parametrize(
    "reason,cause",
    [
        ("the torch-cpu/threads=1 roofs moved 23% between the start and the end of the run (throttling)", "drift"),
        ("std is 12% of the mean (spikes): close other programs or raise processes", "spread"),
        ("IQR is 53% of the median, a strong outside influence: stop other programs and run again", "spread"),
        ("p99 is 92% above the median: frequent interruptions", "interruptions"),
        ("the median is only known to ±34% (88% interval): raise processes (13960 needed, 4 ran)", "interval"),
        ("processes fall into 2 modes (2.27 ms in 2, 4.33 ms in 3 of 5 processes): the median depends", "modes"),
        ("no interval for the median from 2 process(es): raise processes to 6", "few processes"),
        ("p99 left empty: 60 samples, 100 needed", "few samples"),
        ("GPU clock moved from 1980 to 1500 MHz during a process: fix the clock", "drift"),
        ("something new", "other"),
    ],
)
def test_every_reason_old_or_new_has_a_cause_with_advice(reason, cause):
    assert stats.cause_of(reason) == cause


def test_required_processes_follows_pyperf():
    # relative std 1% -> n = 4 * 1.96^2 * 0.01^2 / 0.01^2 = 15.4 -> 16
    medians = [1.0 - 0.01 * np.sqrt(2) / np.sqrt(2), 1.0, 1.0 + 0.01]
    rel = np.std(medians, ddof=1) / np.mean(medians)
    assert stats.required_processes(medians) == int(np.ceil(4 * 1.96**2 * rel**2 / 0.01**2))
    assert stats.required_processes([1.0]) == 0


def test_no_samples_is_an_error():
    with pytest.raises(ValueError):
        summarize([[]])


def test_pipelined_columns_are_the_median_of_process_medians():
    s = summarize([[1e-3] * 20] * 3, batch=8, pipelined=[[1e-3, 1e-3, 9e-3], [2e-3, 2e-3], [3e-3]])
    assert s.pipelined_ms == pytest.approx(2.0)
    assert s.pipelined_images_per_s == pytest.approx(4000) and s.pipelined_batches_per_s == pytest.approx(500)
    assert summarize([[1e-3] * 20] * 3).pipelined_ms is None


def test_backend_warnings_become_noise_flags():
    s = summarize([[1e-3] * 20] * 3, warnings=["nodes not on CUDAExecutionProvider: 1 Add"])
    assert s.is_noisy and "1 Add" in s.noise
