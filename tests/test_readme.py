"""The README's network table is what scripts/zoo_table.py prints today."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_zoo_table_is_current():
    spec = importlib.util.spec_from_file_location("zoo_table", ROOT / "scripts" / "zoo_table.py")
    zoo_table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(zoo_table)
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- zoo-table")
    start = readme.index("\n", start) + 1
    end = readme.index("<!-- end zoo-table -->")
    assert readme[start:end].strip() == zoo_table.table(), "run scripts/zoo_table.py and paste its table"
