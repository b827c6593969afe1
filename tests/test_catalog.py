"""The registry's index: a wrong registered name or value is told without torch, and as the registry tells it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shufflebench import blocks, catalog
from shufflebench.errors import UserError

BAD = [
    ("g9", {}),
    ("g1", {"c1": "abc", "c2": 8}),
    ("g1", {"c1": 8}),
    ("g1", {"c1": 8, "c2": 8, "width": 2}),
    ("g3", {"structure": "3-fragment", "c": 8}),
    ("shufflenet_v2", {"width": "0.7"}),
    ("g4", {"c": -1}),
]


@pytest.mark.parametrize("name,params", BAD)
def test_the_index_answers_a_bad_name_or_value_as_the_registry_does(name, params):
    with pytest.raises(blocks.WorkloadError) as registry:
        blocks.resolve(name, **params)
    with pytest.raises(UserError) as index:
        catalog.precheck(name, params)
    assert str(index.value) == str(registry.value)


def test_the_index_holds_every_registered_workload_and_its_parameters():
    known = catalog.index()  # written when the registry loaded, in this test worker's own cache
    assert known is not None and sorted(known) == blocks.list_workloads()
    for name in known:
        assert [p.describe() for p in known[name].values()] == [p.describe() for p in blocks.params(name)]


def test_a_changed_block_makes_the_index_stale(monkeypatch):
    assert catalog.index() is not None
    monkeypatch.setattr(catalog, "_digest", lambda: "another-version")
    assert catalog.index() is None and catalog.names("g*") is None
    catalog.precheck("g9", {})  # nothing to say without an index: the registry will


def test_bad_input_is_told_without_importing_torch():
    code = (
        "import sys; from shufflebench.cli import main; status = main(sys.argv[1:]); "
        "print(status, 'torch' in sys.modules)"
    )
    for args in (["cost", "g1", "c1=abc"], ["list", "zzz*"], ["time", "g9"], ["predict", "g1", "c1=x"]):
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
        assert out.stdout.strip() == "2 False", (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1
