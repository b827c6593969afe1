"""The emulated aarch64 path end to end (`make arm-emulated`): torch-free bundle run under qemu-user."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from shufflebench.report.compare import compare
from shufflebench.results import read_rows

ROOT = Path(__file__).resolve().parents[1]


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root: it installs qemu-user-static and mounts an ARM /proc/cpuinfo in a private namespace"
    if shutil.which("qemu-aarch64-static") is None and shutil.which("apt-get") is None:
        return "qemu-user-static is not installed and there is no apt-get to install it"
    if subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True).returncode != 0:
        return "this machine does not allow private mount namespaces (unshare -m)"
    return None


@pytest.mark.arm
@pytest.mark.slow
@pytest.mark.skipif(_why_not() is not None, reason=str(_why_not()))
def test_bundle_runs_on_emulated_aarch64_and_compares_with_the_host(tmp_path):
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "arm_emulated.sh"), str(tmp_path / "results")],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if "Unable to locate package" in out.stderr or "Failed to fetch" in out.stderr:
        pytest.skip(f"the Debian arm64 packages could not be fetched: {out.stderr.strip().splitlines()[-1]}")
    assert out.returncode == 0, out.stderr[-2000:]
    (csv,) = (tmp_path / "results").glob("aarch64-*/arm-emulated.csv")
    rows = read_rows(csv)
    assert len(rows) == 5 and {r["status"] for r in rows} == {"ok"}
    assert {r["arch"] for r in rows} == {"aarch64"} and all(r["emulated"] for r in rows)
    assert all(r["flops"] > 0 and r["mac"] > 0 for r in rows)  # counted on the host, carried by the bundle

    # the committed results of the development machines: the one sharing most cells with the board's is the baseline
    cells = {r["cell"] for r in rows}
    hosts = [f for f in (ROOT / "results").glob("x86_64-*") if list(f.glob("default.csv"))]
    assert hosts, "results/ should hold the development machine's results"
    host = max(hosts, key=lambda f: len(cells & {r["cell"] for r in read_rows(f / "default.csv")}))
    text = compare([csv.parent, host], tmp_path / "compare").index.read_text()
    (board,) = [line for line in text.splitlines() if line.startswith(f"| `{csv.parent.name}` |")]
    assert "| aarch64 |" in board and "| yes |" in board  # arch, and flagged as emulated
    assert "Emulated devices are listed, not compared" in text and board.endswith("| - |")  # no speed against it
