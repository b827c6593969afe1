"""The worker process: ``python -m bench.worker {prepare,time} JOB.json OUT.json``.

The runner starts one worker per (cell, repeat) so that a crash, a hang or an out-of-memory kill costs one cell, and
torch and ONNX Runtime never share a process (their thread pools would compete). ``prepare`` builds a workload once
per sweep run, counts its cost and exports it to ONNX when an ORT cell needs it [torch]; ``time`` measures one cell
and imports only what its backend needs, so timing an ONNX file needs no torch. Results go to OUT.json, not stdout,
because exporters and libraries print to stdout.
"""

from __future__ import annotations

import ctypes
import json
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from bench import backends
from bench.measure import MeasureSettings, measure


def prepare(job: dict[str, Any]) -> dict[str, Any]:
    import blocks
    from bench import cost

    workload = blocks.build(job["workload"], **job["args"], batch=job["batch"])
    out: dict[str, Any] = {
        "input_shape": list(workload.input_shape),
        "cost": cost.count(workload.module, workload.input_shape).totals(),
    }
    if job.get("onnx"):
        from bench.export import export

        out["export"] = export(workload.module, workload.input_shape, Path(job["onnx"]))
    return out


def time_cell(job: dict[str, Any]) -> dict[str, Any]:
    cell = job["cell"]
    backend = backends.parse(cell["backend"])
    input_shape = tuple(job["input_shape"])
    # The cell carries exactly the settings its backend takes (bench.backends.Backend.settings), batch aside.
    options = {k: v for k, v in cell["settings"].items() if k != "batch"}
    if backend.family == "torch":
        import blocks
        from bench.backends import torch_backend

        workload = blocks.build(cell["workload"], **cell["args"], batch=cell["settings"]["batch"])
        timed = torch_backend.prepare(workload.module, input_shape, device=backend.target, **options)
    else:
        from bench.backends import ort_backend

        timed = ort_backend.prepare(Path(job["onnx"]), input_shape, provider=backend.target, **options)
    m = measure(timed, MeasureSettings(**job["measure"]))
    return {
        "samples": m.samples,
        "warmup": m.warmup,
        "number": m.number,
        "timer_overhead": m.timer_overhead,
        "pipelined": m.pipelined,
        "pipelined_number": m.pipelined_number,
        "info": timed.info,
    }


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the runner dies, so an orphan never keeps timing beside the next sweep."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def main(argv: list[str]) -> int:
    kind, job_path, out_path = argv
    _die_with_parent()
    job = json.loads(Path(job_path).read_text())
    try:
        result = {"prepare": prepare, "time": time_cell}[kind](job)
    except Exception as e:  # noqa: BLE001 - every failure of a cell becomes its error row
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        result = {"error": f"{type(e).__name__}: {first_line}", "traceback": traceback.format_exc()}
    Path(out_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
