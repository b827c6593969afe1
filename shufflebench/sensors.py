"""What the platform says about itself while a cell runs: clocks, temperature, throttling, and energy.

A worker reads these just before and just after it measures (shufflebench.worker). Readers take the places they read as
arguments (a sysfs root, an NVML module), so they are tested on fake trees; every value a platform does not expose is
left out, and the energy reader says why it has nothing.

- Health: the CPU clock (psutil), the hottest temperature sensor (psutil, Linux), and on NVIDIA GPUs the SM clock,
  temperature and the throttle reasons NVML reports. HEALTH_FLAGS turn a start/end pair into noise flags.
- Energy: RAPL package counters through powercap (``/sys/class/powercap/intel-rapl:N/energy_uj``; Intel and, since
  Linux 5.8, AMD), which count the whole package, so other programs' work is included; NVML's total energy counter on
  NVIDIA GPUs from Volta on, which counts the whole board.
- Memory: the worker's peak resident memory over its own before the model was built, and torch's CUDA allocator peak.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

POWERCAP = Path("/sys/class/powercap")
CLOCK_MOVE = 0.10  # a clock that moved more than this during a process is flagged
HEAT_RISE = 10.0  # degrees C; a sensor that rose more than this during a process is flagged
# NVML clock-event reasons that mean the GPU slowed itself down (not idle or an application clock setting).
THROTTLES = {
    0x8: "hardware slowdown",
    0x20: "software thermal slowdown",
    0x40: "hardware thermal slowdown",
    0x80: "power brake",
    0x4: "software power cap",
}


@dataclass
class Energy:
    """A monotonic energy counter: ``read()`` gives joules, or None; ``method`` says what it counts or why not."""

    method: str
    _read: Any = None
    _wrap: float = 0.0  # joules at which the counter wraps to 0 (RAPL), 0 when it does not

    def read(self) -> float | None:
        return None if self._read is None else self._read()

    def used(self, start: float | None, end: float | None) -> float | None:
        """Joules between two readings, across one wrap of the counter."""
        if start is None or end is None:
            return None
        return end - start if end >= start else end + self._wrap - start


def rapl(root: Path = POWERCAP) -> Energy:
    """The sum of the RAPL package domains under ``root``, when readable."""
    packages = [d for d in sorted(root.glob("intel-rapl:*")) if (d / "name").exists() and ":" not in d.name[11:]]
    packages = [d for d in packages if (d / "name").read_text().strip().startswith("package")]
    if not packages:
        return Energy(f"not available: no RAPL package domain under {root}")
    try:
        for d in packages:
            int((d / "energy_uj").read_text())
    except (OSError, ValueError) as e:
        return Energy(
            f"not available: {packages[0] / 'energy_uj'} is not readable ({e.__class__.__name__}); reading RAPL needs "
            "root on most kernels"
        )
    names = "+".join((d / "name").read_text().strip() for d in packages)
    wrap = sum(int((d / "max_energy_range_uj").read_text()) for d in packages if (d / "max_energy_range_uj").exists())
    return Energy(
        f"rapl {names}: the whole package, other programs included",
        lambda: sum(int((d / "energy_uj").read_text()) for d in packages) / 1e6,
        wrap / 1e6,
    )


def nvml_energy(nvml: Any, index: int = 0) -> Energy:
    """NVML's total energy counter of GPU ``index`` (millijoules since the driver loaded; Volta and later)."""
    try:
        nvml.nvmlInit()
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except Exception as e:  # noqa: BLE001 - NVMLError_NotSupported and friends: say so, measure on
        return Energy(f"not available: NVML has no energy counter for GPU {index} ({e})")
    return Energy(
        f"nvml total energy of GPU {index}: the whole board",
        lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1e3,
    )


def energy(on_gpu: bool) -> Energy:
    """The energy counter for a cell: the GPU's on a GPU backend, the CPU packages' otherwise."""
    if on_gpu:
        nvml = nvml_or_none()
        return nvml_energy(nvml) if nvml else Energy("not available: nvidia-ml-py or the NVIDIA driver is missing")
    return rapl()


def nvml_or_none() -> Any:
    """pynvml, initialised, or None where it is not installed or finds no driver."""
    if importlib.util.find_spec("pynvml") is None:
        return None
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    return pynvml


def health(nvml: Any = None) -> dict[str, Any]:
    """Clock and temperature now, and on an NVIDIA GPU its clock, temperature and throttle reasons."""
    out: dict[str, Any] = {}
    freq = psutil.cpu_freq() if hasattr(psutil, "cpu_freq") else None
    if freq and freq.current:
        out["cpu_mhz"] = round(freq.current)
    temps = psutil.sensors_temperatures() if hasattr(psutil, "sensors_temperatures") else {}
    readings = [t.current for sensors in temps.values() for t in sensors if t.current]
    if readings:
        out["temp_c"] = max(readings)
    if nvml is not None:
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(0)
            out["gpu_sm_mhz"] = nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM)
            out["gpu_temp_c"] = nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
            reasons = nvml.nvmlDeviceGetCurrentClocksEventReasons(handle)
            out["gpu_throttle"] = [name for bit, name in THROTTLES.items() if reasons & bit]
        except Exception:  # noqa: BLE001 - a GPU or driver without these queries: report what there is
            pass
    return out


def health_flags(start: dict[str, Any], end: dict[str, Any]) -> list[str]:
    """What moved during one process, as noise flags that say what to do."""
    flags = []
    for key, what in (("cpu_mhz", "CPU clock"), ("gpu_sm_mhz", "GPU clock")):
        if start.get(key) and end.get(key) and abs(end[key] - start[key]) / start[key] > CLOCK_MOVE:
            flags.append(
                f"{what} moved from {start[key]} to {end[key]} MHz during a process: fix the clock (performance "
                "governor, jetson_clocks, nvidia-smi -lgc) or let the device cool and run again"
            )
    for key, what in (("temp_c", "CPU temperature"), ("gpu_temp_c", "GPU temperature")):
        if start.get(key) is not None and end.get(key) is not None and end[key] - start[key] > HEAT_RISE:
            flags.append(f"{what} rose from {start[key]:.0f} to {end[key]:.0f} C during a process: cool the device")
    throttled = sorted(set(end.get("gpu_throttle") or []) | set(start.get("gpu_throttle") or []))
    if throttled:
        flags.append(f"the GPU throttled ({', '.join(throttled)}): cool it or lower its power limit and run again")
    return flags


class Memory:
    """Peak memory of this process from now on: the high-water resident set over the resident set at the start (the
    model's weights, activations and the runtime's buffers, not the interpreter and its imports), and on CUDA the most
    torch's allocator held at once. Linux resets the high-water mark through ``/proc/self/clear_refs``; where that
    cannot be done, ``peak_rss`` is the process's lifetime peak over the start."""

    def __init__(self) -> None:
        self.start = psutil.Process().memory_info().rss
        try:
            Path("/proc/self/clear_refs").write_text("5")  # 5: reset the peak resident set size to the current one
        except OSError:
            pass
        if _torch_cuda_ready():
            import torch

            torch.cuda.reset_peak_memory_stats()

    def peak_rss(self) -> int | None:
        status = _read_status()
        if "VmHWM" in status:
            return max(0, status["VmHWM"] - self.start)
        import resource  # no /proc: the lifetime peak (bytes on macOS, KiB elsewhere)

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return max(0, peak * (1 if sys.platform == "darwin" else 1024) - self.start)

    def peak_device(self) -> int | None:
        if not _torch_cuda_ready():
            return None  # ONNX Runtime's CUDA arena is not visible from here
        import torch

        return int(torch.cuda.max_memory_allocated())


def _torch_cuda_ready() -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized()


def _read_status() -> dict[str, int]:
    """/proc/self/status's memory lines in bytes ({} off Linux)."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            out[key] = int(parts[0]) * 1024
    return out
