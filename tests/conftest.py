"""Shared test helpers: example parameters for every registered workload, and the tests' own cache and lock."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

import pytest

# The tests (each pytest-xdist worker) prepare workloads into a cache of their own, never the user's
# (shufflebench.preparation, and the registry's index, shufflebench.catalog, written when a test module imports the
# registry), and take a sweep lock of their own: a sweep running on the machine cannot fail them, they cannot disturb
# it, and two test workers do not refuse each other's sweeps. Set at import, before any test module is collected.
OWN_FOLDERS = {
    "SHUFFLEBENCH_CACHE": tempfile.mkdtemp(prefix="shufflebench-tests-cache-"),
    "SHUFFLEBENCH_LOCK_DIR": tempfile.mkdtemp(prefix="shufflebench-tests-locks-"),
}
os.environ.update(OWN_FOLDERS)

# Parameters for the workloads whose builders have required parameters; every other workload is built with its
# defaults. A new workload with required parameters must be added here, or the registry-wide tests fail.
EXAMPLE_PARAMS: dict[str, dict[str, Any]] = {
    "g1": {"c1": 32, "c2": 64, "hw": 28},
    "g2": {"g": 4, "c": 64, "hw": 28},
    "g3": {"structure": "4-fragment-parallel", "c": 64, "hw": 28},
    "g4": {"c": 64, "hw": 28},
    "op_conv": {"c": 16, "hw": 14, "k": 3, "groups": 4},
    "op_pointwise": {"c": 8, "hw": 14, "expand": 4},
    "op_elementwise": {"op": "hardswish", "c": 16, "hw": 14},
    "op_concat": {"c": 16, "hw": 14},
    "op_shuffle": {"c": 16, "hw": 14},
    "op_pool": {"kind": "max", "c": 16, "hw": 14},
    "op_stem": {"c": 16, "resolution": 64},
    "op_linear": {"c": 64},
}


def example_params(name: str) -> dict[str, Any]:
    return EXAMPLE_PARAMS.get(name, {})


@pytest.fixture
def tmp_results(tmp_path):
    return tmp_path / "results"


@pytest.fixture(autouse=True, scope="session")
def _remove_own_folders():
    yield
    for folder in OWN_FOLDERS.values():
        shutil.rmtree(folder, ignore_errors=True)
