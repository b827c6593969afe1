"""Sweep files: expansion into cells, inheritance, and one-line errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from shufflebench import config

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_zip_pairs_grid_combines_and_backends_multiply(tmp_path):
    sweep = config.load(
        write(
            tmp_path,
            """
settings: {backend: [torch-cpu, ort-cpu], threads: [1, 2]}
workloads:
  - name: g1
    zip: {c1: [8, 16], c2: [16, 32]}
    grid: {hw: [7, 14]}
""",
        )
    )
    assert sweep.name == "sweep"
    assert len(sweep.cells) == 2 * 2 * 2 * 2  # pairs x hw x backends x threads
    first = sweep.cells[0]
    assert first.key == "g1/c1=8,c2=16,hw=7/torch-cpu/batch=1,threads=1,malloc=steady,cache=warm"
    assert {(c.args["c1"], c.args["c2"]) for c in sweep.cells} == {(8, 16), (16, 32)}


def test_settings_that_do_not_apply_to_a_backend_are_dropped(tmp_path):
    sweep = config.load(
        write(
            tmp_path,
            """
settings: {backend: [torch-cpu, torch-cuda, ort-cpu, ort-cuda], threads: [1, 2], opt_level: [basic, all]}
workloads: [{name: g4, grid: {c: 32}}]
""",
        )
    )
    by_backend = {}
    for cell in sweep.cells:
        by_backend.setdefault(cell.backend, []).append(cell)
    assert len(by_backend["torch-cpu"]) == 2 and "opt_level" not in by_backend["torch-cpu"][0].settings
    assert len(by_backend["torch-cuda"]) == 1
    assert by_backend["torch-cuda"][0].batch == 1
    assert by_backend["torch-cuda"][0].settings == {
        "cudnn_benchmark": True,
        "tf32": False,
        "dtype": "float32",
        "channels_last": False,
        "cuda_graph": False,
    }
    assert len(by_backend["ort-cpu"]) == 4 and len(by_backend["ort-cuda"]) == 2
    assert "threads" not in by_backend["ort-cuda"][0].settings and "tf32" in by_backend["ort-cuda"][0].settings


def test_gpu_settings_expand_and_are_recorded_in_the_key(tmp_path):
    sweep = config.load(
        write(
            tmp_path,
            """
settings: {backend: [torch-cuda, ort-cuda], dtype: [float32, float16], cuda_graph: [false, true]}
workloads: [{name: g4, grid: {c: 32}}]
""",
        )
    )
    assert len(sweep.cells) == 2 * 2 * 2
    keys = {c.key.rsplit("/", 1)[-1] for c in sweep.cells if c.backend == "ort-cuda"}
    assert "batch=1,opt_level=all,cudnn_benchmark=true,tf32=false,dtype=float16,cuda_graph=true" in keys


def test_threads_physical_resolves_to_the_core_count(tmp_path):
    sweep = config.load(write(tmp_path, "settings: {backend: torch-cpu}\nworkloads: [{name: g4, grid: {c: 32}}]\n"))
    assert sweep.cells[0].settings["threads"] == psutil.cpu_count(logical=False)


def test_base_inheritance_merges_mappings_and_takes_the_childs_name(tmp_path):
    write(
        tmp_path,
        "sweep: parent\nsettings: {backend: torch-cpu, batch: 2}\nmeasure: {processes: 7, min_time: 0.3}\n"
        "workloads: [{name: g4, grid: {c: 32}}]\n",
        "base.yaml",
    )
    child = write(tmp_path, "base: base.yaml\nsettings: {batch: 4}\nmeasure: {min_time: 0.1}\n", "child.yaml")
    sweep = config.load(child)
    assert sweep.name == "child"
    assert sweep.run.processes == 7 and sweep.run.measure.min_time == 0.1
    assert sweep.cells[0].batch == 4


def test_same_cell_from_two_entries_is_kept_once(tmp_path):
    sweep = config.load(
        write(
            tmp_path,
            """
settings: {backend: torch-cpu}
workloads: [{name: g4, grid: {c: 32}}, {name: g4, grid: {c: 32, hw: 56}}]
""",
        )
    )
    assert len(sweep.cells) == 1


SHIPPED = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if p.name != "base.yaml")  # base.yaml: a fragment


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_load(path):
    sweep = config.load(path)
    assert sweep.cells


@pytest.mark.parametrize(
    "text,message",
    [
        ("workloads: [{name: g1\n", "not valid YAML at line"),
        ("- just\n- a list\n", "must be a mapping"),
        ("settings: {backend: torch-cpu}\nworkload: []\n", "unknown key 'workload'; allowed: sweep, description"),
        ("settings: {backend: torch-cpu}\nworkloads: [{name: g9}]\n", "workloads[0]: unknown workload 'g9'"),
        (
            "settings: {backend: torch-cpu}\nworkloads: [{name: g1, grid: {c1: abc, c2: 8}}]\n",
            "workloads[0]: g1: parameter 'c1' must be an integer, got 'abc'",
        ),
        (
            "settings: {backend: tensorrt}\nworkloads: [{name: g4, grid: {c: 32}}]\n",
            "settings.backend: unknown backend 'tensorrt'; allowed: torch-cpu",
        ),
        (
            "settings: {backend: torch-cpu, threads: many}\nworkloads: [{name: g4, grid: {c: 32}}]\n",
            'settings.threads: must be a positive integer, "physical" or "logical", got \'many\'',
        ),
        (
            "settings: {backend: ort-cpu, opt_level: max}\nworkloads: [{name: g4, grid: {c: 32}}]\n",
            "settings.opt_level: must be one of disable, basic, extended, all, got 'max'",
        ),
        (
            "settings: {backend: torch-cpu}\nworkloads: [{name: g1, zip: {c1: [8, 16], c2: [8]}}]\n",
            "zip: lists must have the same length (c1: 2, c2: 1)",
        ),
        (
            "settings: {backend: torch-cpu}\nmeasure: {processes: 0}\nworkloads: [{name: g4, grid: {c: 32}}]\n",
            "measure.processes: must be a positive integer, got 0",
        ),
        (
            "settings: {backend: torch-cpu}\nmeasure: {min_time: fast}\nworkloads: [{name: g4, grid: {c: 32}}]\n",
            "measure.min_time: must be a finite number > 0, got 'fast'",
        ),
        (
            "settings: {backend: torch-cpu}\nmeasure: {min_time: .nan}\nworkloads: [{name: g4, grid: {c: 32}}]\n",
            "measure.min_time: must be a finite number > 0, got nan",
        ),
        (
            "settings: {backend: torch-cpu}\nmeasure: {timeout: .inf}\nworkloads: [{name: g4, grid: {c: 32}}]\n",
            "measure.timeout: must be a finite number > 0, got inf",
        ),
        (
            "settings: {backend: torch-cpu}\nmeasure: {timeout: 0}\nworkloads: [{name: g4, grid: {c: 32}}]\n",
            "measure.timeout: must be a finite number > 0, got 0",
        ),
        (
            "settings: {backend: torch-cpu}\nmeasure: {processes: 6, max_processes: 3}\nworkloads: [{name: g4}]\n",
            "measure.max_processes: must be at least processes (6), got 3",
        ),
        (
            "sweep: ../escape\nsettings: {backend: torch-cpu}\nworkloads: [{name: g4, grid: {c: 32}}]\n",
            "sweep: must be a name of letters, digits",
        ),
        (
            "settings: {backend: torch-cuda, dtype: float64}\nworkloads: [{name: g4, grid: {c: 32}}]\n",
            "settings.dtype: must be one of float32, float16, bfloat16, got 'float64' (for torch-cuda)",
        ),
        (
            "settings: {backend: ort-cuda, dtype: bfloat16}\nworkloads: [{name: g4, grid: {c: 32}}]\n",
            "settings.dtype: must be one of float32, float16, got 'bfloat16' (for ort-cuda)",
        ),
        (
            "settings: {backend: torch-cuda, cuda_graph: yes please}\nworkloads: [{name: g4, grid: {c: 32}}]\n",
            "settings.cuda_graph: must be true or false, got 'yes please'",
        ),
        (
            "settings: {backend: torch-cuda, channels_last: 1}\nworkloads: [{name: g4, grid: {c: 32}}]\n",
            "settings.channels_last: must be true or false, got 1",
        ),
        ("workloads: [{name: g4, grid: {c: 32}}]\n", "settings.backend: required"),
        ("settings: {backend: torch-cpu}\nworkloads: []\n", "workloads: must be a non-empty list"),
        ("base: missing.yaml\n", "missing.yaml: cannot read the sweep file"),
        (
            "settings: {backend: torch-cpu}\nworkloads: [{name: g4, grid: {c: [], hw: 8}}]\n",
            "workloads[0].grid.c: an empty list expands to no cells; give at least one value",
        ),
        (
            "settings: {backend: []}\nworkloads: [{name: g4, grid: {c: 8}}]\n",
            "workloads[0].settings.backend: an empty list expands to no cells",
        ),
        (
            "settings: {backend: ort-cpu, threads: []}\nworkloads: [{name: g4, grid: {c: 8}}]\n",
            "workloads[0].settings.threads: an empty list expands to no cells",
        ),
    ],
)
def test_bad_files_give_one_line_naming_the_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(config.ConfigError) as info:
        config.load(path)
    text = str(info.value)
    assert message in text
    assert str(tmp_path) in text and "\n" not in text


def test_single_cell_from_the_command_line():
    cell = config.single_cell("g1", {"c1": "8", "c2": "16"}, "ort-cpu", {"batch": 2, "threads": 1})
    assert cell.key == "g1/c1=8,c2=16,hw=56/ort-cpu/batch=2,threads=1,opt_level=all,spinning=true,cache=warm"
    assert cell.batch == 2 and "batch" not in cell.settings


def test_a_list_of_setting_groups_expands_each_group_on_its_own(tmp_path):
    sweep = config.load(
        write(
            tmp_path,
            """
settings:
  - {backend: torch-cpu, batch: 1, threads: 1}
  - {backend: torch-cuda, batch: 8}
workloads: [{name: g4, grid: {c: 32}}]
""",
        )
    )
    assert [c.key for c in sweep.cells] == [
        "g4/c=32,relu=true,shortcut=true,hw=56/torch-cpu/batch=1,threads=1,malloc=steady,cache=warm",
        "g4/c=32,relu=true,shortcut=true,hw=56/torch-cuda/batch=8,cudnn_benchmark=true,tf32=false,dtype=float32,"
        "channels_last=false,cuda_graph=false",
    ]
