"""The Python API: a module object with example inputs, in worker processes where they can rebuild it, in this
process otherwise; names and ONNX files as `shufflebench time` takes them."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import types

import pytest
import torch
from torch import nn

from shufflebench import api
from shufflebench.errors import UserError

NOTEBOOK = """
import json
import statistics
import torch
from torch import nn
from shufflebench import api


class Fuse(nn.Module):  # defined here, in __main__: no worker can import it
    def __init__(self):
        super().__init__()
        self.image = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.meta = nn.Linear(8, 16)

    def forward(self, image, meta):
        return self.image(image) * self.meta(meta)


row = api.measure(Fuse(), torch.randn(2, 3, 16, 16), torch.randn(2, 8), threads=1, processes=3, min_time=0.05)
print(json.dumps(row))
"""


def test_a_module_defined_in_the_calling_script_with_two_inputs_is_measured_in_process(tmp_path):
    script = tmp_path / "notebook.py"
    script.write_text(NOTEBOOK)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)
    assert row["status"] == "ok" and row["launcher"] == "in-process" and row["processes"] == 3
    assert row["cell"] == "__main__.Fuse/inputs=2x3x16x16,2x8/torch-cpu/batch=2,threads=1,malloc=glibc,cache=warm"
    conv = 16 * 3 * 9 * 16 * 16 * 2  # multiply-adds of the convolution on both samples
    assert row["flops"] >= conv and row["median_ms"] > 0 and row["ci_low_ms"] <= row["median_ms"]


def test_a_module_of_importable_classes_is_measured_in_worker_processes():
    module = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    assert api.rebuildable(module)
    row = api.measure(module, torch.randn(1, 3, 16, 16), threads=1, processes=2, min_time=0.05)
    assert row["status"] == "ok" and row["launcher"] in ("fork", "exec") and row["flops"] == 8 * 3 * 9 * 16 * 16
    # each process timed the reference kernel between its samples: the cell's median in its calls comes from them (the
    # raw columns keep times to the nanosecond, so recomputed from them it agrees to 1e-4)
    relative = [statistics.median(s) / statistics.median(r) for s, r in zip(row["samples_ms"], row["reference_ms"])]
    assert len(row["reference_ms"]) == len(row["samples_ms"]) >= 2  # more processes where they fell into modes
    assert row["relative_median"] == pytest.approx(statistics.median(relative), rel=1e-4)
    assert "median" in str(row)  # prints as `shufflebench time` does


def test_a_class_from_a_folder_this_process_added_to_the_path_is_not_rebuildable(tmp_path, monkeypatch):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "faraway.py").write_text("from torch import nn\n\nclass Far(nn.Identity):\n    pass\n")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.chdir(tmp_path)  # not the folder itself: a worker would not look there
    import faraway

    assert not api.rebuildable(faraway.Far())
    main_class = types.new_class("Local", (nn.Identity,))
    main_class.__module__ = "__main__"
    assert not api.rebuildable(main_class())


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: api.measure(nn.Identity()), "give the module's example inputs as tensors"),
        (lambda: api.measure(nn.Identity(), torch.randn(1, 2), torch.randn(1, 2), backend="ort-cpu"), "export it"),
        (lambda: api.measure("g4", torch.randn(1)), "example inputs go with a module"),
        (lambda: api.measure(42), "measure takes an nn.Module, a workload name or an .onnx path, got int"),
        (lambda: api.measure("g4", c="abc"), "parameter 'c' must be an integer, got 'abc'"),
    ],
)
def test_bad_calls_raise_one_line_errors(call, message):
    with pytest.raises(UserError, match=message):
        call()
