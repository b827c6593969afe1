"""Preparation once per cell, cached by content: a second run prepares nothing, a stale entry is never used."""

from __future__ import annotations

from shufflebench import config, preparation
from shufflebench.launcher import Launcher


def _cells() -> list[config.Cell]:
    return [
        config.single_cell("g4", {"c": 8, "hw": 8}, backend, {"batch": 1, "threads": 1})
        for backend in ("torch-cpu", "ort-cpu")
    ]


def _prepare(cells: list[config.Cell]) -> tuple[dict, int]:
    """What preparation gives the cells, and how many worker runs it took (costs of the ORT graph included)."""
    with Launcher() as launcher:
        prepared, errors = preparation.prepare_cells(cells, 120, launcher)
        assert not errors
        costs = preparation.runtime_costs(cells, prepared, "machine-a", 120, launcher)
        return {"prepared": prepared, "costs": costs}, launcher.runs


def test_a_prepared_workload_is_reused_and_its_onnx_file_with_it(tmp_path, monkeypatch):
    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path / "cache"))
    cells = _cells()
    first, runs = _prepare(cells)
    assert runs == 2  # one prepare (build, count, export) for both cells, one runtime cost for the ORT cell
    onnx = first["prepared"][cells[1].key].onnx
    assert onnx.startswith(str(tmp_path / "cache")) and onnx.endswith(".onnx")
    assert first["costs"][cells[1].key]["mac"] > 0 and cells[0].key not in first["costs"]
    again, runs = _prepare(cells)
    assert runs == 0 and again == first


def test_a_stale_entry_is_never_used(tmp_path, monkeypatch):
    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path / "cache"))
    cells = _cells()
    first, _ = _prepare(cells)
    onnx = first["prepared"][cells[1].key].onnx

    # the exported file went away (or was cut short): prepared again
    (tmp_path / "cache" / "prepared" / onnx.rsplit("/", 1)[1]).write_bytes(b"cut")
    _, runs = _prepare(cells)
    assert runs == 2  # the file is new, so its runtime cost is counted again too

    # the code that builds or counts changed: a new key
    monkeypatch.setattr(preparation, "code_digest", lambda: "other code")
    _, runs = _prepare(cells)
    assert runs == 2


def test_runtime_costs_are_the_machines_own(tmp_path, monkeypatch):
    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path / "cache"))
    cells = _cells()
    first, _ = _prepare(cells)
    with Launcher() as launcher:
        preparation.runtime_costs(cells, first["prepared"], "machine-b", 120, launcher)
        assert launcher.runs == 1  # ORT's optimised graph depends on the ISA: another machine counts it again
