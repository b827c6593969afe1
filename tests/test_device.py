"""The device fingerprint: a stable, readable id and the metadata beside it."""

from __future__ import annotations

import json
import subprocess
import sys

from bench import device


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
        [sys.executable, "-m", "bench.cli", "device", "--json"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0
    assert json.loads(out.stdout)["device_id"] == device.collect()["device_id"]
