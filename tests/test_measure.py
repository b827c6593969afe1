"""Warm-up, calibration and sampling against a fake backend with a known cost per call."""

from __future__ import annotations

import pytest

from shufflebench import measure as measure_module
from shufflebench.measure import MeasureSettings, calibrate, measure


class FakeTimed:
    """time(n) = overhead + n * per_call, and counts the calls it was asked for."""

    def __init__(self, per_call: float, overhead: float = 1e-7) -> None:
        self.per_call, self.overhead, self.calls, self.requests = per_call, overhead, 0, []

    def time(self, n: int) -> float:
        self.calls += n
        self.requests.append(n)
        return self.overhead + n * self.per_call


def test_calibration_grows_the_block_until_it_is_long_enough():
    timed = FakeTimed(per_call=2e-6)
    number = calibrate(timed.time, min_block=1e-3)
    assert number * 2e-6 >= 1e-3
    assert number <= 2 * 1.2 * 1e-3 / 2e-6  # not wildly past the target


def test_slow_calls_are_timed_one_by_one():
    assert calibrate(FakeTimed(per_call=5e-3).time, min_block=1e-3) == 1


def test_warm_up_and_sampling_meet_their_floors():
    settings = MeasureSettings(warmup_time=0.0, warmup_calls=7, min_time=0.0, min_samples=12)
    m = measure(FakeTimed(per_call=1e-3), settings)
    assert len(m.warmup) == 7
    assert len(m.samples) == 12
    assert m.number == 1
    assert all(s == pytest.approx(1e-3, rel=1e-3) for s in m.samples)


def test_timer_overhead_is_measured_with_empty_blocks():
    m = measure(FakeTimed(per_call=1e-3, overhead=3e-6), MeasureSettings(warmup_time=0, min_time=0, min_samples=2))
    assert m.timer_overhead == pytest.approx(3e-6)


def test_target_ci_stops_once_the_median_is_known_well_enough():
    settings = MeasureSettings(warmup_time=0, min_time=0, min_samples=10, max_time=5, target_ci=0.01)
    m = measure(FakeTimed(per_call=1e-3), settings)  # identical samples: the interval is 0 wide at once
    assert len(m.samples) == 10


class FakeGpuTimed(FakeTimed):
    """A device that overlaps launches with work: back-to-back calls cost less than waited-for ones."""

    asynchronous = True

    def __init__(self, latency: float, throughput: float) -> None:
        super().__init__(per_call=latency)
        self.per_call_pipelined = throughput

    def time_pipelined(self, n: int) -> float:
        return self.overhead + n * self.per_call_pipelined


def test_an_asynchronous_timer_is_also_sampled_back_to_back():
    m = measure(FakeGpuTimed(latency=40e-6, throughput=25e-6), MeasureSettings(min_time=0.01, warmup_time=0))
    assert m.samples and m.pipelined and m.pipelined_number >= 1
    assert m.pipelined[0] == pytest.approx(25e-6, rel=0.01) and m.samples[0] == pytest.approx(40e-6, rel=0.01)


def test_a_synchronous_timer_has_no_pipelined_samples():
    m = measure(FakeTimed(per_call=40e-6), MeasureSettings(min_time=0.01, warmup_time=0))
    assert m.pipelined == [] and m.pipelined_number == 0


class SpikyTimed(FakeTimed):
    """The second call of time() is preempted: it takes 100x longer than it should."""

    def time(self, n: int) -> float:
        elapsed = super().time(n)
        return elapsed * 100 if len(self.requests) == 2 else elapsed


def test_a_spike_during_calibration_does_not_change_the_block_size():
    steady, spiky = FakeTimed(per_call=2e-6), SpikyTimed(per_call=2e-6)
    assert calibrate(spiky.time, min_block=1e-3) == calibrate(steady.time, min_block=1e-3)


class SlowFirstBlocks(FakeTimed):
    """Every block is slow until sampling starts, as when a neighbour stops: calibration picks too small a block."""

    def __init__(self) -> None:
        super().__init__(per_call=2e-6)
        self.slow = True

    def time(self, n: int) -> float:
        elapsed = super().time(n)
        return elapsed * 10 if self.slow and n > 0 else elapsed


def test_blocks_that_turn_out_too_short_are_sized_again(monkeypatch):
    timed = SlowFirstBlocks()
    real_calibrate = measure_module.calibrate

    def calibrate_then_speed_up(time_calls, min_block, start=1):
        number = real_calibrate(time_calls, min_block, start)
        timed.slow = False
        return number

    monkeypatch.setattr(measure_module, "calibrate", calibrate_then_speed_up)
    m = measure(timed, MeasureSettings(min_time=0.01, warmup_time=0))
    # blocks sized while slow hold a tenth of the calls they need; the re-check sizes them for the real speed
    assert m.number * 2e-6 >= 1000 * m.timer_overhead and m.number * 2e-6 >= 0.01 / 1000


class Clock:
    """A perf_counter that the fake timers below move on by the time they report."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class ClockedTimed(FakeTimed):
    def __init__(self, clock: Clock, per_call: float) -> None:
        super().__init__(per_call)
        self.clock = clock

    def time(self, n: int) -> float:
        elapsed = super().time(n)
        self.clock.now += elapsed
        return elapsed


def test_the_reference_is_timed_between_samples_every_reference_every_seconds(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(measure_module, "time", clock)
    cell, reference = ClockedTimed(clock, 1e-3), ClockedTimed(clock, 5e-4)
    m = measure(cell, MeasureSettings(warmup_time=0, min_time=1.0), reference)
    # a second of 1 ms samples: a block of at least REFERENCE_BLOCK after every REFERENCE_EVERY s of them
    block = reference.requests[-1] * 5e-4
    assert block >= measure_module.REFERENCE_BLOCK
    cycles = 1.0 / (measure_module.REFERENCE_EVERY + block)
    assert len(m.reference) == pytest.approx(cycles, abs=2)
    assert m.reference == pytest.approx([5e-4] * len(m.reference), rel=1e-3)
    assert len(m.samples) == pytest.approx(1.0 / 1e-3 - len(m.reference) * block / 1e-3, abs=3)


def test_sampling_shorter_than_the_reference_interval_still_times_one_reference_block():
    m = measure(FakeTimed(per_call=1e-3), MeasureSettings(warmup_time=0, min_time=0, min_samples=3), FakeTimed(5e-4))
    assert m.reference == [pytest.approx(5e-4, rel=1e-3)]
    assert measure(FakeTimed(per_call=1e-3), MeasureSettings(warmup_time=0, min_time=0, min_samples=3)).reference == []
