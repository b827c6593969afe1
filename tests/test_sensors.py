"""Platform sensors on fake trees: RAPL through powercap, NVML, and the health flags."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from shufflebench import sensors


def fake_powercap(root, packages=((0, 1_000_000, 262_143_328_850),), subdomain=True):
    for index, energy, wrap in packages:
        folder = root / f"intel-rapl:{index}"
        folder.mkdir(parents=True)
        (folder / "name").write_text(f"package-{index}\n")
        (folder / "energy_uj").write_text(f"{energy}\n")
        (folder / "max_energy_range_uj").write_text(f"{wrap}\n")
        if subdomain:  # the core domain inside the package: counted by the package already
            core = root / f"intel-rapl:{index}:0"
            core.mkdir()
            (core / "name").write_text("core\n")
            (core / "energy_uj").write_text("5\n")
    return root


def test_rapl_sums_the_packages_and_survives_a_wrap(tmp_path):
    root = fake_powercap(tmp_path, packages=((0, 2_000_000, 10_000_000), (1, 3_000_000, 10_000_000)))
    meter = sensors.rapl(root)
    assert meter.read() == pytest.approx(5.0) and "package-0+package-1" in meter.method
    assert meter.used(5.0, 6.5) == pytest.approx(1.5)
    assert meter.used(19.0, 1.0) == pytest.approx(2.0)  # wrapped at 20 J (two packages of 10 J)


def test_rapl_says_why_it_has_nothing(tmp_path):
    assert sensors.rapl(tmp_path).method.startswith("not available: no RAPL package domain")
    assert sensors.rapl(tmp_path).read() is None
    root = fake_powercap(tmp_path / "p")
    (root / "intel-rapl:0" / "energy_uj").write_text("not a number")
    assert "is not readable" in sensors.rapl(root).method


class FakeNvml:
    NVML_CLOCK_SM = 0
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, energy_mj=None, sm=1980, temp=40, reasons=0):
        self.energy_mj, self.sm, self.temp, self.reasons = energy_mj, sm, temp, reasons

    def nvmlInit(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if self.energy_mj is None:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return self.energy_mj

    def nvmlDeviceGetClockInfo(self, handle, kind):
        return self.sm

    def nvmlDeviceGetTemperature(self, handle, kind):
        return self.temp

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle):
        return self.reasons


def test_nvml_energy_in_joules_or_the_reason():
    meter = sensors.nvml_energy(FakeNvml(energy_mj=123_456))
    assert meter.read() == pytest.approx(123.456) and meter.method.startswith("nvml total energy of GPU 0")
    old_gpu = sensors.nvml_energy(FakeNvml())
    assert old_gpu.read() is None and "NVML has no energy counter for GPU 0" in old_gpu.method


def test_health_reads_the_gpu_and_flags_what_moved():
    start = sensors.health(FakeNvml(sm=1980, temp=40))
    end = sensors.health(FakeNvml(sm=1410, temp=55, reasons=0x40))
    assert start["gpu_sm_mhz"] == 1980 and end["gpu_throttle"] == ["hardware thermal slowdown"]
    flags = sensors.health_flags(start, end)
    assert any("GPU clock moved from 1980 to 1410 MHz" in f for f in flags)
    assert any("GPU temperature rose from 40 to 55 C" in f for f in flags)
    assert any("the GPU throttled (hardware thermal slowdown)" in f for f in flags)
    assert sensors.health_flags(start, sensors.health(FakeNvml(sm=1970, temp=42))) == []


def test_peak_memory_counts_what_was_allocated_after_the_start_and_freed_since():
    # the garbage of the tests before this one in the worker, collected now and not while the buffer is allocated,
    # where freeing it would lower the resident set under the buffer (CI once saw a peak of 0)
    gc.collect()
    memory = sensors.Memory()
    buffer = np.ones(64 * 2**20, dtype=np.uint8)  # touched: resident
    del buffer
    assert memory.peak_rss() >= 60 * 2**20  # within a few pages of the 64 MiB
    assert memory.peak_device() is None  # no CUDA here, or torch never touched it
    later = sensors.Memory()
    assert later.peak_rss() < 64 * 2**20  # the mark starts again from the current resident set
