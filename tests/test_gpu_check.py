"""`make gpu-check` on a machine without a GPU, and its two sweeps: the cells a GPU session must come back with."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from shufflebench import config, papers
from shufflebench.report import paper

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = ROOT / "configs" / "gpu-check"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the check would run in full")
def test_without_a_gpu_the_check_says_so_and_exits_0(tmp_path):
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh")],
        env={**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "no CUDA GPU is visible" in done.stdout
    assert "no CUDA GPU is visible" in (tmp_path / "gpu-check.log").read_text()
    assert not (tmp_path / "gpu-check.tar.gz").exists()


def test_the_tables_sweep_has_every_gpu_cell_of_tables_1_to_4_and_two_graph_cells():
    cells = [c for c in config.load(SWEEPS / "tables.yaml").cells if c.backend == "torch-cuda"]
    eager = [c for c in cells if not c.settings["cuda_graph"]]
    for table in papers.TABLES:
        wanted = [args for _, _, args, _ in table.cells("gpu")]
        mine = [c for c in eager if c.workload == table.workload]
        assert len(mine) == len(wanted), table.workload
        for args in wanted:
            assert any(all(c.args[k] == v for k, v in args.items()) for c in mine), (table.workload, args)
    assert {(c.workload, c.batch) for c in cells} <= {(t.workload, 8) for t in papers.TABLES}
    graphs = [c for c in cells if c.settings["cuda_graph"]]
    assert [c.args["structure"] for c in graphs] == ["1-fragment", "4-fragment-series"]
    # each graph cell has its eager twin, so the report's "Settings compared" section pairs them
    twins = {c.key.replace("cuda_graph=true", "cuda_graph=false") for c in graphs}
    assert twins <= {c.key for c in eager}


def test_the_networks_sweep_has_paper_gpu_speeds_and_float16_twins():
    cells = [c for c in config.load(SWEEPS / "networks.yaml").cells if c.backend == "torch-cuda"]
    fp32 = [c for c in cells if c.settings["dtype"] == "float32"]
    fp16 = [c for c in cells if c.settings["dtype"] == "float16"]
    assert len(fp32) == 4 and len(fp16) == 2
    for c in fp32:
        assert papers.table8_speed(c.workload, c.args, paper.platform_of(c.backend)) is not None, c.key
    assert {c.key.replace("dtype=float16", "dtype=float32") for c in fp16} <= {c.key for c in fp32}
