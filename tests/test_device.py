"""The device fingerprint: a stable, readable id and the metadata beside it."""

from __future__ import annotations

import json
import subprocess
import sys

from shufflebench import device


def test_id_is_stable_and_names_the_hardware():
    a, b = device.collect(), device.collect()
    assert a["device_id"] == b["device_id"]
    assert a["device_id"].startswith(a["arch"] + "-")
    assert len(a["device_id"].rsplit("-", 1)[1]) == 8


def test_id_changes_with_the_runtime_version_but_not_with_context():
    meta = device.collect()
    other_runtime = {**meta, "versions": {**meta["versions"], "onnxruntime": "0.0.1"}}
    other_context = {
        **meta,
        "hostname": "elsewhere",
        "cpu_mhz_current": 1,
        "versions": {**meta["versions"], "shufflebench": "9"},
    }
    assert device.device_id(other_runtime) != meta["device_id"]
    assert device.device_id(other_context) == meta["device_id"]


def test_metadata_has_what_a_reviewer_asks_for():
    meta = device.collect()
    for key in (
        "cpu_model",
        "arch",
        "cores_physical",
        "cores_logical",
        "memory_gb",
        "os",
        "python",
        "versions",
        "gpus",
        "ort_providers",
        "emulated",
    ):
        assert key in meta
    assert "torch" in meta["versions"] and "onnxruntime" in meta["versions"]


def test_cli_device_json():
    out = subprocess.run(
        [sys.executable, "-m", "shufflebench.cli", "device", "--json"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0
    assert json.loads(out.stdout)["device_id"] == device.collect()["device_id"]


ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
stepping\t: 1
flags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 avx512_vnni hypervisor

processor\t: 1
vendor_id\t: AuthenticAMD
"""
NEOVERSE_N1 = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x3
CPU part\t: 0xd0c
CPU revision\t: 1
"""


def fake_sys(tmp_path):
    """A /sys/devices/system/cpu tree with cpu0's caches: L1d 32K, L1i 32K, L2 1024K, L3 32768K."""
    cache = tmp_path / "cpu" / "cpu0" / "cache"
    for index, (level, kind, size) in enumerate(
        [(1, "Data", "32K"), (1, "Instruction", "32K"), (2, "Unified", "1024K"), (3, "Unified", "32768K")]
    ):
        folder = cache / f"index{index}"
        folder.mkdir(parents=True)
        for name, value in (("level", level), ("type", kind), ("size", size)):
            (folder / name).write_text(f"{value}\n")
    return tmp_path / "cpu"


def test_the_fingerprint_reads_family_model_isa_and_caches(tmp_path):
    cpu = device.cpu_identity(ZEN4, fake_sys(tmp_path))
    assert cpu == {
        "vendor": "AuthenticAMD",
        "family": 25,
        "model": 17,
        "stepping": 1,
        "microarchitecture": "zen4",
        "isa": ["avx2", "avx512_bf16", "avx512_vnni", "avx512f", "fma"],
        "caches_kb": {"l1d": 32, "l2": 1024, "l3": 32768},
        "virtualised": True,
    }


def test_an_arm_core_is_named_from_its_implementer_and_part(tmp_path):
    cpu = device.cpu_identity(NEOVERSE_N1, tmp_path / "nothing")
    assert cpu["microarchitecture"] == "neoverse-n1" and (cpu["implementer"], cpu["part"]) == (0x41, 0xD0C)
    assert cpu["isa"] == ["dotprod", "fp16", "neon"] and cpu["virtualised"] is False


def _meta(cpuinfo: str, tmp_path, **versions) -> dict:
    meta = {
        "arch": "x86_64",
        "cpu_model": "AMD EPYC",
        "cpu": device.cpu_identity(cpuinfo, fake_sys(tmp_path)),
        "cores_physical": 2,
        "cores_logical": 2,
        "memory_gb": 24,
        "gpus": [],
        "emulated": False,
        "versions": {"torch": "2.13.0", "onnxruntime": "1.32.0", "numpy": "2.4.6", **versions},
    }
    return {**meta, "machine_key": device.machine_key(meta), "device_id": device.device_id(meta)}


def test_two_cpus_that_differ_only_in_family_and_model_get_different_ids(tmp_path):
    zen4 = _meta(ZEN4, tmp_path / "a")
    zen3 = _meta(ZEN4.replace("model\t\t: 17", "model\t\t: 1"), tmp_path / "b")  # family 25 model 1: a Zen 3
    assert zen3["cpu"]["microarchitecture"] == "zen3"
    assert zen4["device_id"] != zen3["device_id"] and zen4["machine_key"] != zen3["machine_key"]
    assert zen4["device_id"].startswith("x86_64-amd-epyc-zen4-")


def test_new_libraries_keep_the_machine_key(tmp_path):
    before = _meta(ZEN4, tmp_path / "a")
    newer_numpy = _meta(ZEN4, tmp_path / "b", numpy="3.0.0")
    newer_ort = _meta(ZEN4, tmp_path / "c", onnxruntime="1.40.0")
    assert before["machine_key"] == newer_numpy["machine_key"] == newer_ort["machine_key"]
    assert before["device_id"] == newer_numpy["device_id"]  # numpy does not run the timed code
    assert before["device_id"] != newer_ort["device_id"]  # onnxruntime does


def test_device_describes_the_core_and_the_probe():
    meta = device.collect()
    meta["probe"] = {
        "torch-cpu/threads=1": {"matmul_gflops": 90.0, "bandwidth_gbs": 25.0},  # probed before the convolutions
        "ort-cpu/threads=1": {"matmul_gflops": 60.0, "conv_gflops": 95.0, "bandwidth_gbs": 26.0},
    }
    text = device.describe(meta)
    assert f"machine     {meta['machine_key']}" in text
    assert "probe       torch-cpu/threads=1: matmul 90.0 GFLOP/s, memory 25.0 GB/s" in text
    assert "probe       ort-cpu/threads=1: matmul 60.0 GFLOP/s, 1x1 conv 95.0 GFLOP/s, memory 26.0 GB/s" in text
