"""Device fingerprint: a stable id and the metadata stored with every results folder.

The id names the hardware and the software that runs it, because both change latency:
``<arch>-<cpu model>[-<gpu model>]-<hash>``, where the hash covers the CPU model, core and memory counts, GPU models
and the torch / onnxruntime / numpy versions. Everything is read without importing torch or onnxruntime at module
import; GPU details come from torch (when installed) and NVML (nvidia-ml-py, when installed). Fields a device does
not expose are left out rather than guessed.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import platform
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import psutil

LIBRARIES = ("shufflebench", "torch", "onnxruntime", "onnxruntime-gpu", "onnx", "onnxscript", "numpy")
# Fields that identify the device; everything else in the metadata is context that may change between runs.
# Library versions are part of the identity only for the runtimes that execute the timed code.
IDENTITY = ("arch", "cpu_model", "cores_physical", "cores_logical", "memory_gb", "gpus", "emulated")
RUNTIMES = ("torch", "onnxruntime", "onnxruntime-gpu")


def collect() -> dict[str, Any]:
    """Metadata of this device, including its ``device_id``."""
    meta: dict[str, Any] = {
        "arch": platform.machine(),
        "cpu_model": cpu_model(),
        "cores_physical": psutil.cpu_count(logical=False) or psutil.cpu_count(),
        "cores_logical": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30),
        "os": platform.platform(),
        "python": platform.python_version(),
        "hostname": platform.node(),
        "versions": _versions(),
        "emulated": os.environ.get("SHUFFLEBENCH_EMULATED", "") == "1",
        **_cpu_frequency(),
    }
    meta["gpus"] = _gpus()
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        meta["ort_providers"] = onnxruntime.get_available_providers()
    meta["device_id"] = device_id(meta)
    return meta


def write_if_changed(path: Path, meta: dict[str, Any]) -> None:
    """Write ``meta`` to ``path`` unless the file already describes this device (same id and identity fields): a new
    kernel version or host name alone does not rewrite a committed file."""
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            old = {}
        if all(old.get(k) == meta.get(k) for k in (*IDENTITY, "device_id")):
            return
    path.write_text(json.dumps(meta, indent=2) + "\n")


def read_meta(path: Path) -> tuple[dict[str, Any], str | None]:
    """A results folder's device.json, or ``{}`` with a warning when it is missing or unreadable."""
    if not path.exists():
        return {}, None
    try:
        meta = json.loads(path.read_text())
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
        return meta, None
    except (ValueError, UnicodeDecodeError) as e:
        return {}, f"{path}: unreadable ({e}); the folder name stands for the device id"


def device_id(meta: dict[str, Any]) -> str:
    identity = {k: meta.get(k) for k in IDENTITY}
    identity["runtimes"] = {k: v for k, v in meta["versions"].items() if k in RUNTIMES}
    identity = json.dumps(identity, sort_keys=True)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:8]
    names = [meta["arch"], _slug(meta["cpu_model"])] + [_slug(g["name"]) for g in meta.get("gpus", [])[:1]]
    return "-".join([*(n for n in names if n), digest])


def cpu_model() -> str:
    """The CPU's marketing name; ARM boards often only name the board (device tree) or the core (lscpu)."""
    text = _read("/proc/cpuinfo")
    for key in ("model name", "Hardware", "Processor"):
        match = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if match:
            return match.group(1).strip()
    board = _read("/proc/device-tree/model").strip("\x00\n ")
    return board or platform.processor() or platform.machine()


def load_average() -> float | None:
    """The 1-minute load average, or None where the OS has none."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _cpu_frequency() -> dict[str, Any]:
    out: dict[str, Any] = {}
    freq = psutil.cpu_freq() if hasattr(psutil, "cpu_freq") else None
    if freq:
        out["cpu_mhz_max"] = round(freq.max) if freq.max else None
        out["cpu_mhz_current"] = round(freq.current)
    cpufreq = Path("/sys/devices/system/cpu/cpu0/cpufreq")
    for name, file in (
        ("governor", cpufreq / "scaling_governor"),
        ("scaling_driver", cpufreq / "scaling_driver"),
        ("no_turbo", Path("/sys/devices/system/cpu/intel_pstate/no_turbo")),
        ("boost", Path("/sys/devices/system/cpu/cpufreq/boost")),
        ("isolated_cpus", Path("/sys/devices/system/cpu/isolated")),
    ):
        value = _read(str(file)).strip()
        if value:
            out[name] = value
    return out


def _gpus() -> list[dict[str, Any]]:
    gpus: list[dict[str, Any]] = []
    torch = _import_or_none("torch")
    if torch is not None:
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                p = torch.cuda.get_device_properties(i)
                gpus.append(
                    {
                        "name": p.name,
                        "memory_gb": round(p.total_memory / 2**30),
                        "capability": f"{p.major}.{p.minor}",
                        "multiprocessors": p.multi_processor_count,
                        "cuda": torch.version.cuda,
                        "cudnn": torch.backends.cudnn.version(),
                    }
                )
    if importlib.util.find_spec("pynvml") is not None:
        import pynvml

        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError:
            return gpus
        driver = pynvml.nvmlSystemGetDriverVersion()
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            if i >= len(gpus):
                gpus.append({"name": pynvml.nvmlDeviceGetName(handle)})
            gpus[i].update(
                driver=driver, sm_clock_max_mhz=pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM)
            )
        pynvml.nvmlShutdown()
    return gpus


def _import_or_none(name: str) -> Any:
    """The module, or None when it is not installed or fails to import (a broken install is not our crash)."""
    if importlib.util.find_spec(name) is None:
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _slug(text: str) -> str:
    text = re.sub(r"\((R|TM|C)\)|\bCPU\b|@.*$|\bProcessor\b", " ", text, flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40].strip("-")


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def describe(meta: dict[str, Any]) -> str:
    """A readable multi-line description for ``shufflebench device``."""
    lines = [
        f"device id   {meta['device_id']}",
        f"cpu         {meta['cpu_model']} ({meta['arch']}, "
        f"{meta['cores_physical']} cores / {meta['cores_logical']} threads, {meta['memory_gb']} GiB)",
    ]
    if meta.get("cpu_mhz_max") or "governor" in meta:
        lines.append(f"frequency   max {meta.get('cpu_mhz_max') or '?'} MHz, governor {meta.get('governor', '?')}")
    for gpu in meta.get("gpus", []):
        lines.append(
            f"gpu         {gpu['name']} ({gpu.get('memory_gb', '?')} GiB, CUDA {gpu.get('cuda')}, "
            f"cuDNN {gpu.get('cudnn')}, driver {gpu.get('driver', '?')})"
        )
    lines.append(f"os          {meta['os']}, Python {meta['python']}")
    lines.append("libraries   " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    if "ort_providers" in meta:
        lines.append("ORT EPs     " + ", ".join(meta["ort_providers"]))
    if meta["emulated"]:
        lines.append("emulated    yes: timings are not meaningful")
    return "\n".join(lines)
