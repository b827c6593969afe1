"""Device fingerprint: a machine key, a device id, and the metadata stored with every results folder.

Two machines that report the same marketing name can differ 2.5x in speed (a hypervisor masks "AMD EPYC" over
different microarchitectures), so the identity is the hardware as the kernels see it:

- CPU: vendor, family / model / stepping (x86) or implementer / part / variant / revision (ARM), the microarchitecture
  name where the table below knows it, the ISA features that decide which kernels run (AVX2, AVX-512 F / BF16 / VNNI /
  FP16, AMX, NEON, SVE, dot product, fp16, i8mm, bf16), the L1d / L2 / L3 sizes, the core and memory counts, and
  whether it runs under a hypervisor;
- GPUs: name, compute capability, multiprocessors, memory and maximum clocks (torch and NVML).

The **machine key** (``<arch>-<name>-<hash>``) hashes that hardware identity alone: the same machine with newer
libraries keeps it. The **device id** (``<arch>-<name>[-<gpu>]-<hash>``) hashes the hardware identity and the versions
of the runtimes that execute the timed code (torch, onnxruntime, the CUDA/cuDNN/driver stack): results of one id are
comparable with each other. Everything is read from /proc and /sys on Linux (py-cpuinfo elsewhere, when installed),
torch and NVML for GPUs, without importing torch or onnxruntime at module import. Fields a device does not expose are
left out rather than guessed.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import platform
import re
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import psutil

LIBRARIES = ("shufflebench", "torch", "onnxruntime", "onnxruntime-gpu", "onnx", "onnxscript", "numpy")
RUNTIMES = ("torch", "onnxruntime", "onnxruntime-gpu")
# Fields that identify the machine; everything else in the metadata is context that may change between runs.
MACHINE = ("arch", "cpu_model", "cpu", "cores_physical", "cores_logical", "memory_gb", "gpus", "emulated", "label")
GPU_HARDWARE = ("name", "capability", "multiprocessors", "memory_gb", "sm_clock_max_mhz", "memory_clock_max_mhz")
# ISA features that decide which kernels a library runs: /proc/cpuinfo flag -> the name recorded.
ISA = {
    "avx2": "avx2",
    "fma": "fma",
    "avx512f": "avx512f",
    "avx512_bf16": "avx512_bf16",
    "avx512_vnni": "avx512_vnni",
    "avx512_fp16": "avx512_fp16",
    "avx_vnni": "avx_vnni",
    "amx_tile": "amx",
    "asimd": "neon",
    "sve": "sve",
    "sve2": "sve2",
    "asimddp": "dotprod",
    "asimdhp": "fp16",
    "i8mm": "i8mm",
    "bf16": "bf16",
}
# (vendor, family, first model, last model) -> microarchitecture, for x86 CPUs servers and laptops commonly have.
X86_UARCH = [
    ("AuthenticAMD", 23, 0x00, 0x2F, "zen"),
    ("AuthenticAMD", 23, 0x30, 0x7F, "zen2"),
    ("AuthenticAMD", 25, 0x00, 0x0F, "zen3"),
    ("AuthenticAMD", 25, 0x10, 0x1F, "zen4"),
    ("AuthenticAMD", 25, 0x20, 0x5F, "zen3"),
    ("AuthenticAMD", 25, 0x60, 0x7F, "zen4"),
    ("AuthenticAMD", 25, 0xA0, 0xAF, "zen4c"),
    ("AuthenticAMD", 26, 0x00, 0xFF, "zen5"),
    ("GenuineIntel", 6, 0x3F, 0x3F, "haswell"),
    ("GenuineIntel", 6, 0x4F, 0x4F, "broadwell"),
    ("GenuineIntel", 6, 0x55, 0x55, "skylake-sp"),
    ("GenuineIntel", 6, 0x6A, 0x6C, "icelake-sp"),
    ("GenuineIntel", 6, 0x8E, 0x8E, "kabylake"),
    ("GenuineIntel", 6, 0x9E, 0x9E, "coffeelake"),
    ("GenuineIntel", 6, 0x8F, 0x8F, "sapphirerapids"),
    ("GenuineIntel", 6, 0xCF, 0xCF, "emeraldrapids"),
    ("GenuineIntel", 6, 0xAD, 0xAE, "graniterapids"),
    ("GenuineIntel", 6, 0x97, 0x9A, "alderlake"),
    ("GenuineIntel", 6, 0xB7, 0xBF, "raptorlake"),
]
# (implementer, part) -> core, for the ARM cores of the boards the README names and of cloud instances.
ARM_CORES = {
    (0x41, 0xD03): "cortex-a53",
    (0x41, 0xD04): "cortex-a35",
    (0x41, 0xD05): "cortex-a55",
    (0x41, 0xD07): "cortex-a57",
    (0x41, 0xD08): "cortex-a72",
    (0x41, 0xD09): "cortex-a73",
    (0x41, 0xD0A): "cortex-a75",
    (0x41, 0xD0B): "cortex-a76",
    (0x41, 0xD0C): "neoverse-n1",
    (0x41, 0xD0D): "cortex-a77",
    (0x41, 0xD40): "neoverse-v1",
    (0x41, 0xD41): "cortex-a78",
    (0x41, 0xD42): "cortex-a78ae",
    (0x41, 0xD44): "cortex-x1",
    (0x41, 0xD46): "cortex-a510",
    (0x41, 0xD47): "cortex-a710",
    (0x41, 0xD48): "cortex-x2",
    (0x41, 0xD49): "neoverse-n2",
    (0x41, 0xD4B): "cortex-a78c",
    (0x41, 0xD4F): "neoverse-v2",
    (0x41, 0xD80): "cortex-a520",
    (0x41, 0xD81): "cortex-a720",
    (0x41, 0xD84): "neoverse-v3",
    (0x41, 0xD8E): "neoverse-n3",
    (0x4E, 0x004): "nvidia-carmel",
}


def collect() -> dict[str, Any]:
    """Metadata of this device, including its ``machine_key`` and ``device_id``."""
    meta: dict[str, Any] = {
        "arch": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu": cpu_identity(_read("/proc/cpuinfo"), Path("/sys/devices/system/cpu")),
        "cores_physical": psutil.cpu_count(logical=False) or psutil.cpu_count(),
        "cores_logical": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30),
        "os": platform.platform(),
        "python": platform.python_version(),
        "hostname": platform.node(),
        "versions": _versions(),
        "emulated": os.environ.get("SHUFFLEBENCH_EMULATED", "") == "1",
        # a name that tells identical machines apart (`shufflebench fleet worker --label`); part of the identity
        "label": os.environ.get("SHUFFLEBENCH_LABEL") or None,
        **_cpu_frequency(),
    }
    gpus, gpu_runtime = _gpus()
    meta["gpus"] = gpus
    meta["gpu_runtime"] = gpu_runtime
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        meta["ort_providers"] = onnxruntime.get_available_providers()
    meta["machine_key"] = machine_key(meta)
    meta["device_id"] = device_id(meta)
    return meta


def machine_key(meta: dict[str, Any]) -> str:
    """``<arch>-<name>-<hash>`` of the hardware identity alone: stable across library upgrades."""
    return f"{_name(meta, with_gpu=False)}-{_hash(_machine(meta))}"


def device_id(meta: dict[str, Any]) -> str:
    """``<arch>-<name>[-<gpu>]-<hash>`` of the hardware identity and the runtimes that execute the timed code."""
    identity = _machine(meta)
    identity["runtimes"] = {k: v for k, v in meta["versions"].items() if k in RUNTIMES}
    identity["gpu_runtime"] = meta.get("gpu_runtime") or {}
    return f"{_name(meta, with_gpu=True)}-{_hash(identity)}"


def _machine(meta: dict[str, Any]) -> dict[str, Any]:
    """The hardware identity; a label only where one is set, so unlabelled machines keep their keys."""
    return {k: meta.get(k) for k in MACHINE if k != "label" or meta.get("label")}


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:8]


def _name(meta: dict[str, Any], with_gpu: bool) -> str:
    uarch = (meta.get("cpu") or {}).get("microarchitecture")
    names = [meta["arch"], _slug(meta["cpu_model"])]
    if uarch and uarch not in names[-1]:
        names.append(uarch)
    if with_gpu:
        names += [_slug(g["name"]) for g in meta.get("gpus", [])[:1]]
    names.append(_slug(meta.get("label") or ""))
    return "-".join(n for n in names if n)


def cpu_identity(cpuinfo: str, sys_cpu: Path) -> dict[str, Any]:
    """What decides which kernels run and how fast, from a /proc/cpuinfo text and a /sys/devices/system/cpu tree.

    Off Linux (no /proc/cpuinfo) py-cpuinfo is asked, when installed.
    """
    fields = _first_block(cpuinfo)
    if not fields:
        return _cpuinfo_package()
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    out: dict[str, Any] = {}
    if "vendor_id" in fields:  # x86
        out["vendor"] = fields["vendor_id"]
        for key in ("cpu family", "model", "stepping"):
            if fields.get(key, "").strip().isdigit():
                out[key.removeprefix("cpu ")] = int(fields[key])
        out["microarchitecture"] = next(
            (
                name
                for vendor, family, first, last, name in X86_UARCH
                if out.get("vendor") == vendor and out.get("family") == family and first <= out.get("model", -1) <= last
            ),
            None,
        )
    elif "CPU implementer" in fields:  # ARM
        for key, name in (("CPU implementer", "implementer"), ("CPU part", "part"), ("CPU variant", "variant")):
            out[name] = int(fields[key], 16) if key in fields else None
        out["revision"] = int(fields["CPU revision"]) if fields.get("CPU revision", "").isdigit() else None
        out["microarchitecture"] = ARM_CORES.get((out["implementer"], out["part"]))
    out["isa"] = sorted({name for flag, name in ISA.items() if flag in flags})
    out["caches_kb"] = caches(sys_cpu / "cpu0" / "cache")
    out["virtualised"] = "hypervisor" in flags
    return {k: v for k, v in out.items() if v is not None}


def _first_block(cpuinfo: str) -> dict[str, str]:
    """The key: value pairs of the first processor block (the CPU model is the same on every core we support)."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def caches(cache_dir: Path) -> dict[str, int]:
    """{"l1d": 32, "l2": 1024, "l3": 32768} in KiB, from /sys/devices/system/cpu/cpu0/cache/index*."""
    out = {}
    for index in sorted(cache_dir.glob("index*")):
        level, kind, size = (_read(str(index / name)).strip() for name in ("level", "type", "size"))
        match = re.fullmatch(r"(\d+)([KMG]?)", size)
        if kind == "Instruction" or not match:
            continue
        out[f"l{level}" + ("d" if kind == "Data" else "")] = (
            int(match[1]) * {"": 1, "K": 1, "M": 1024, "G": 1024**2}[match[2]]
        )
    return out


def _cpuinfo_package() -> dict[str, Any]:
    """py-cpuinfo's view where /proc/cpuinfo does not exist (macOS, Windows); {} without it."""
    if importlib.util.find_spec("cpuinfo") is None:
        return {}
    import cpuinfo

    info = cpuinfo.get_cpu_info()
    flags = set(info.get("flags", []))
    out = {
        "vendor": info.get("vendor_id_raw"),
        "family": info.get("family"),
        "model": info.get("model"),
        "stepping": info.get("stepping"),
        "isa": sorted({name for flag, name in ISA.items() if flag in flags}),
    }
    return {k: v for k, v in out.items() if v is not None}


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


def cpu_times() -> tuple[int, int] | None:
    """(stolen, total) CPU time since boot in clock ticks, from Linux's /proc/stat: the time the hypervisor ran other
    guests while this one had work (steal), and all time. None where the kernel reports no steal column."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if fields[0] != "cpu" or len(fields) < 9:
        return None
    ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal (guest is inside user)
    return ticks[7], sum(ticks)


def steal_between(start: tuple[int, int] | None, end: tuple[int, int] | None) -> float | None:
    """The share of CPU time stolen between two :func:`cpu_times` readings; None where either is missing."""
    if start is None or end is None or end[1] <= start[1]:
        return None
    return (end[0] - start[0]) / (end[1] - start[1])


def write_if_changed(path: Path, meta: dict[str, Any]) -> bool:
    """Write ``meta`` to ``path`` unless the file already describes this device (same id, same machine) and holds a
    probe no more than PROBE_CHANGE away from ``meta``'s, with every field it measures: a new kernel version, a host
    name or another noise floor alone does not rewrite a committed file. Returns whether it wrote."""
    from shufflebench.probe import differs

    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            old = {}
        same = all(old.get(k) == meta.get(k) for k in (*MACHINE, "machine_key", "device_id"))
        before, now = old.get("probe") or {}, meta.get("probe") or {}
        measured_before = all(r.keys() <= before.get(k, {}).keys() for k, r in now.items())
        if same and measured_before and not differs(before, now):
            return False
    path.write_text(json.dumps(meta, indent=2) + "\n")
    return True


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


def _gpus() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The GPUs' hardware identity, and the software stack that drives them (part of the device id, not the key)."""
    gpus: list[dict[str, Any]] = []
    runtime: dict[str, Any] = {}
    torch = _import_or_none("torch") if _may_have_gpu() else None  # importing torch takes seconds; ask it only then
    if torch is not None and torch.cuda.is_available():
        runtime.update(cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            gpus.append(
                {
                    "name": p.name,
                    "memory_gb": round(p.total_memory / 2**30),
                    "capability": f"{p.major}.{p.minor}",
                    "multiprocessors": p.multi_processor_count,
                }
            )
    nvml = _import_or_none("pynvml")
    if nvml is not None:
        try:
            nvml.nvmlInit()
        except nvml.NVMLError:
            return gpus, runtime
        try:
            runtime["driver"] = nvml.nvmlSystemGetDriverVersion()
            for i in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
                if i >= len(gpus):
                    gpus.append({"name": nvml.nvmlDeviceGetName(handle)})
                gpus[i].update(
                    sm_clock_max_mhz=nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_SM),
                    memory_clock_max_mhz=nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_MEM),
                )
        finally:
            nvml.nvmlShutdown()
    return [{k: g[k] for k in GPU_HARDWARE if k in g} for g in gpus], runtime


def _may_have_gpu() -> bool:
    """False only where a GPU torch could use is surely absent: Linux without an NVIDIA or AMD (ROCm) driver."""
    if not sys.platform.startswith("linux"):
        return True
    return any(Path(p).exists() for p in ("/proc/driver/nvidia/gpus", "/dev/nvidia0", "/dev/kfd"))


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
    """A readable multi-line description for ``shufflebench device`` and the reports."""
    cpu = meta.get("cpu") or {}
    lines = [
        f"device id   {meta['device_id']}",
        f"machine     {meta.get('machine_key', '- (recorded before machine keys)')}",
        f"cpu         {meta['cpu_model']} ({meta['arch']}, "
        f"{meta['cores_physical']} cores / {meta['cores_logical']} threads, {meta['memory_gb']} GiB)",
    ]
    if cpu:
        where = (
            f"family {cpu.get('family')} model {cpu.get('model')} stepping {cpu.get('stepping')}"
            if "family" in cpu
            else f"implementer 0x{cpu.get('implementer', 0):x} part 0x{cpu.get('part', 0):x}"
            if "part" in cpu
            else ""
        )
        caches = ", ".join(f"{k} {v} KiB" for k, v in (cpu.get("caches_kb") or {}).items())
        lines.append(
            f"core        {cpu.get('microarchitecture') or 'unknown microarchitecture'} ({where}); "
            f"{' '.join(cpu.get('isa') or []) or 'no listed ISA extensions'}"
            + (f"; {caches}" if caches else "")
            + ("; virtualised" if cpu.get("virtualised") else "")
        )
    if meta.get("cpu_mhz_max") or "governor" in meta:
        lines.append(f"frequency   max {meta.get('cpu_mhz_max') or '?'} MHz, governor {meta.get('governor', '?')}")
    runtime = meta.get("gpu_runtime") or {}
    for gpu in meta.get("gpus", []):
        lines.append(
            f"gpu         {gpu['name']} (sm {gpu.get('capability', '?')}, {gpu.get('multiprocessors', '?')} SMs, "
            f"{gpu.get('memory_gb', '?')} GiB, max {gpu.get('sm_clock_max_mhz', '?')} MHz; CUDA "
            f"{runtime.get('cuda', gpu.get('cuda'))}, cuDNN {runtime.get('cudnn', gpu.get('cudnn'))}, driver "
            f"{runtime.get('driver', gpu.get('driver', '?'))})"
        )
    lines.append(f"os          {meta['os']}, Python {meta['python']}")
    lines.append("libraries   " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    if "ort_providers" in meta:
        lines.append("ORT EPs     " + ", ".join(meta["ort_providers"]))
    for key, roofs in (meta.get("probe") or {}).items():
        lines.append(f"probe       {key}: {'; '.join(t for t in (roofs_text(roofs), noise_text(roofs)) if t)}")
    if meta["emulated"]:
        lines.append("emulated    yes: timings are not meaningful")
    return "\n".join(lines)


def roofs_text(roofs: dict[str, Any]) -> str:
    conv = f", 1x1 conv {roofs['conv_gflops']:,.1f} GFLOP/s" if roofs.get("conv_gflops") else ""
    return (
        f"matmul {roofs.get('matmul_gflops', 0):,.1f} GFLOP/s{conv}, memory {roofs.get('bandwidth_gbs', 0):,.1f} GB/s"
    )


def noise_text(roofs: dict[str, Any]) -> str:
    """A probe's noise floor, its CV and the CPU time stolen while it ran; "" for a probe from before noise floors."""
    if roofs.get("noise_floor") is None:
        return ""
    steal = f", steal {roofs['steal']:.1%}" if roofs.get("steal") is not None else ""
    return f"noise floor {roofs['noise_floor']:.1%} (p90/p10), CV {roofs['noise_cv']:.1%}{steal}"
