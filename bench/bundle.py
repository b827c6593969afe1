"""Export bundles: a sweep's ONNX Runtime cells as ONNX files plus a manifest, to run on a device without torch.

``shufflebench export CONFIG --out BUNDLE`` builds and exports every ORT cell's workload on the host (torch needed
there) and writes ``BUNDLE/manifest.json``: the cells, their input shapes, the cost columns counted on the host, the
measurement settings and the exporting versions. ``shufflebench run BUNDLE`` on the target device times the files
with ONNX Runtime alone and writes the same results schema, so its rows join the host's by cell id.

Thread counts are fixed when the bundle is made ("physical" means the host's cores), so a sweep meant for another
device should name them (the paper's ARM setting is 1).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from bench import backends, device
from bench.config import Cell, RunSettings, Sweep
from bench.errors import UserError
from bench.measure import MeasureSettings

MANIFEST = "manifest.json"
FORMAT = "shufflebench-bundle"
FORMAT_VERSION = 1


def export_bundle(sweep: Sweep, out: Path, log: TextIO = sys.stderr) -> Path:
    """Write the bundle of ``sweep``'s ORT cells to ``out``; returns the manifest path."""
    from bench.runner import Measurer

    cells = [c for c in sweep.cells if backends.parse(c.backend).family == "ort"]
    if not cells:
        raise UserError(
            f"{sweep.path}: no ONNX Runtime cells to export; a bundle needs backend ort-cpu, ort-cuda or ort:<Provider>"
        )
    meta = device.collect()
    models = out / "models"
    models.mkdir(parents=True, exist_ok=True)
    prepared, errors = Measurer(meta, out, sweep.run, log).prepare(cells, models)
    for key, error in errors.items():
        print(f"not exported: {key}: {error}", file=log)
    entries = []
    for cell in cells:
        if cell.key in prepared:
            p = prepared[cell.key]
            entries.append(
                {
                    "cell": cell.as_dict(),
                    "input_shape": p["input_shape"],
                    "cost": p["cost"],
                    "export": p["export"],
                    "onnx": str(Path(p["onnx"]).relative_to(out)),
                }
            )
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sweep": sweep.name,
        "description": sweep.description,
        "run": {
            "processes": sweep.run.processes,
            "seed": sweep.run.seed,
            "timeout": sweep.run.timeout,
            "measure": sweep.run.measure.as_dict(),
        },
        "exported_on": meta["device_id"],
        "versions": meta["versions"],
        "cells": entries,
    }
    used = {e["onnx"] for e in entries}
    for stale in models.glob("*.onnx"):
        if str(stale.relative_to(out)) not in used:
            stale.unlink()
    path = out / MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def load_bundle(folder: Path) -> tuple[Sweep, dict[str, dict[str, Any]]]:
    """The sweep of a bundle and, per cell key, what the runner needs instead of building the workload."""
    path = folder / MANIFEST
    if not path.exists():
        raise UserError(
            f"{folder}: not a bundle (no {MANIFEST}); make one with `shufflebench export CONFIG --out {folder}`"
        )
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if manifest.get("format") != FORMAT or manifest.get("format_version", 0) > FORMAT_VERSION:
        raise UserError(
            f"{path}: not a {FORMAT} of version {FORMAT_VERSION} or older: export it again with this shufflebench"
        )
    cells, prepared = [], {}
    for entry in manifest["cells"]:
        cell = Cell.from_dict(entry["cell"])
        model = folder / entry["onnx"]
        if not model.exists():
            raise UserError(f"{path}: {entry['onnx']} is missing from the bundle; copy the whole folder")
        cells.append(cell)
        prepared[cell.key] = {
            "input_shape": entry["input_shape"],
            "cost": entry["cost"],
            "export": entry["export"],
            "onnx": str(model),
        }
    run = manifest["run"]
    settings = RunSettings(
        processes=run["processes"], seed=run["seed"], timeout=run["timeout"], measure=MeasureSettings(**run["measure"])
    )
    return Sweep(manifest["sweep"], path, cells, settings, manifest.get("description", "")), prepared
