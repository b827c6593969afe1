"""The results store: round trip, atomic replacement, tolerant reading."""

from __future__ import annotations

import csv

import pytest

from shufflebench.errors import UserError
from shufflebench.results import SCHEMA_VERSION, ResultsStore, read_rows, read_table, write_rows


def row(cell: str, **extra):
    return {
        "schema_version": SCHEMA_VERSION,
        "cell": cell,
        "status": "ok",
        "median_ms": 1.25,
        "is_noisy": False,
        "workload_args": {"c1": 8},
        "samples_ms": [[1.0, 1.5]],
        "error": None,
        **extra,
    }


def test_round_trip_keeps_types(tmp_path):
    path = tmp_path / "s.csv"
    write_rows(path, [row("a"), row("b", median_ms=2.0)])
    rows = read_rows(path)
    assert rows[0]["median_ms"] == 1.25 and rows[0]["is_noisy"] is False
    assert rows[0]["workload_args"] == {"c1": 8} and rows[0]["samples_ms"] == [[1.0, 1.5]]
    assert rows[0]["error"] is None and rows[0]["schema_version"] == SCHEMA_VERSION


def test_a_row_with_a_field_over_the_csv_modules_default_limit_reads_back(tmp_path):
    """A 6 us cell's row held 176 KB of warm-up times; csv's 128 KiB field limit made it a 'corrupt' line."""
    path = tmp_path / "s.csv"
    warmup = [[0.006123] * 30_000]
    write_rows(path, [row("fast", warmup_ms=warmup)])
    assert len(path.read_text()) > 2 * 131_072
    (read,), bad = read_table(path)
    assert bad == [] and read["warmup_ms"] == warmup


def test_put_replaces_the_cells_row_and_leaves_no_temporary_file(tmp_path):
    store = ResultsStore(tmp_path / "s.csv")
    store.put(row("a", status="error", error="boom"))
    store.put(row("b"))
    store.put(row("a"))
    again = ResultsStore(tmp_path / "s.csv")
    assert list(again.by_cell()) == ["b", "a"]
    assert again.by_cell()["a"]["status"] == "ok"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".s.csv.lock", "s.csv"]  # no temporary file


def test_unknown_columns_are_kept_and_readers_do_not_need_them(tmp_path):
    path = tmp_path / "s.csv"
    write_rows(path, [row("a", future_column="x")])
    assert read_rows(path)[0]["future_column"] == "x"
    with open(path) as f:
        header = next(csv.reader(f))
    assert header[:3] == ["schema_version", "sweep", "cell"] and header[-1] == "future_column"


def test_newer_schema_is_refused_with_advice(tmp_path):
    path = tmp_path / "s.csv"
    write_rows(path, [row("a", schema_version=SCHEMA_VERSION + 1)])
    with pytest.raises(UserError, match="upgrade shufflebench"):
        read_rows(path)


def test_a_foreign_csv_is_refused(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="not a shufflebench results file"):
        read_rows(path)


def test_rows_from_before_a_setting_existed_keep_their_cell_with_the_value_they_ran_with(tmp_path):
    # rows as written before ORT cells had `spinning` and torch cells `malloc`: neither column, nor in the key
    path = tmp_path / "old.csv"
    ort = row("g1/c1=8/ort-cpu/batch=1,threads=1,opt_level=all", backend="ort-cpu", batch=1, threads=1)
    torch = row("g1/c1=8/torch-cpu/batch=1,threads=1", backend="torch-cpu", batch=1, threads=1)
    write_rows(path, [{**ort, "opt_level": "all"}, torch])
    by_cell = {r["cell"]: r for r in read_rows(path)}
    # ORT spun its threads by default then as now: the same cell as today's default one
    assert by_cell["g1/c1=8/ort-cpu/batch=1,threads=1,opt_level=all,spinning=true,cache=warm"]["spinning"] is True
    # torch workers ran on glibc's own heap then: today's `malloc=glibc` cell, not the steady-heap default
    assert by_cell["g1/c1=8/torch-cpu/batch=1,threads=1,malloc=glibc,cache=warm"]["malloc"] == "glibc"


def test_the_columns_reference_is_the_one_the_code_generates_and_explains_every_column():
    from pathlib import Path

    from shufflebench.results import COLUMNS, column_reference

    text = column_reference()
    written = Path(__file__).resolve().parents[1] / "docs" / "columns.md"
    assert written.read_text() == text, "docs/columns.md is stale: run `make docs`"
    rows = {line.split("|")[1].strip(" `"): line.split("|")[4].strip() for line in text.splitlines() if "| `" in line}
    assert list(rows) == COLUMNS and all(len(meaning) > 10 for meaning in rows.values())
