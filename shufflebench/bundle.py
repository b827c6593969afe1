"""Export bundles: a sweep's ONNX Runtime cells as ONNX files plus a manifest, to run on a device without torch.

``shufflebench export CONFIG --out BUNDLE`` builds and exports every ORT cell's workload on the host (torch needed
there) and writes ``BUNDLE/manifest.json``: the cells, their input shapes, the cost columns counted on the host, the
measurement settings and the exporting versions. ``shufflebench run BUNDLE`` on the target device times the files
with ONNX Runtime alone and writes the same results schema, so its rows join the host's by cell id.

Thread counts are fixed when the bundle is made ("physical" means the host's cores), so a sweep meant for another
device should name them (the paper's ARM setting is 1).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path
from typing import Any, TextIO

from shufflebench import backends, device
from shufflebench.config import Cell, ConfigError, Sweep, check_name, run_settings
from shufflebench.errors import UserError
from shufflebench.worker import Prepared, decode

MANIFEST = "manifest.json"
FORMAT = "shufflebench-bundle"
FORMAT_VERSION = 2  # 2: cells and their prepared data in the worker protocol's form


def export_bundle(sweep: Sweep, out: Path, log: TextIO = sys.stderr) -> Path:
    """Write the bundle of ``sweep``'s ONNX cells to ``out``; returns the manifest path. Files already in ``out``
    are overwritten only where the new bundle writes the same name, never deleted."""
    from shufflebench.launcher import Launcher
    from shufflebench.preparation import prepare_cells

    cells = [c for c in sweep.cells if backends.get(c.backend).needs_onnx]
    if not cells:
        raise UserError(
            f"{sweep.path}: no ONNX Runtime cells to export; a bundle needs backend ort-cpu, ort-cuda or ort:<Provider>"
        )
    meta = device.collect()
    models = out / "models"
    models.mkdir(parents=True, exist_ok=True)
    with Launcher(log) as launcher:
        prepared, errors = prepare_cells(cells, sweep.run.prepare_timeout, launcher)
    for key, error in errors.items():
        print(f"not exported: {key}: {error}", file=log)
    entries = []
    for cell in cells:
        if cell.key not in prepared:
            continue
        item = prepared[cell.key]
        model = Path(item.onnx)  # from the preparation cache, or a user's .onnx file: the bundle gets a copy
        model = models / (f"{model.stem}-{cell.source}.onnx" if cell.source else model.name)
        shutil.copyfile(item.onnx, model)
        entries.append(
            {
                "cell": dataclasses.asdict(cell),
                "prepared": {**dataclasses.asdict(item), "onnx": str(model.relative_to(out))},
            }
        )
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sweep": sweep.name,
        "description": sweep.description,
        "run": dataclasses.asdict(sweep.run),
        "exported_on": meta["device_id"],
        "versions": meta["versions"],
        "cells": entries,
    }
    path = out / MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def load_bundle(folder: Path) -> tuple[Sweep, dict[str, Prepared]]:
    """The sweep of a bundle and, per cell key, what the runner needs instead of building the workload.

    Everything the manifest names must stay inside the bundle: the sweep name is checked as a sweep file's is, and
    an ONNX path that is absolute or leaves the folder is refused.
    """
    path = folder / MANIFEST
    if not path.is_file():
        raise UserError(
            f"{folder}: not a bundle (no {MANIFEST}); make one with `shufflebench export CONFIG --out {folder}`"
        )
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{path}: not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"{path}: bundle format {manifest.get('format_version')!r}, this shufflebench reads {FORMAT_VERSION}: "
            "export it again with this shufflebench"
        )
    try:
        name = check_name(manifest["sweep"], str(path))
        run_data = dict(manifest["run"])
        run = run_settings({**run_data.pop("measure"), **run_data}, f"{path}: run")
        cells, prepared = [], {}
        for i, entry in enumerate(manifest["cells"]):
            cell = decode(Cell, entry["cell"])
            _check_settings(cell, f"{path}: cells[{i}].cell")
            item = decode(Prepared, entry["prepared"])
            model = _inside(folder, item.onnx, f"{path}: cells[{i}].prepared.onnx")
            cells.append(cell)
            prepared[cell.key] = dataclasses.replace(item, onnx=str(model))
    except ConfigError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UserError(f"{path}: malformed manifest ({type(e).__name__}: {e}); export it again") from None
    return Sweep(name, path, cells, run, str(manifest.get("description", ""))), prepared


def _check_settings(cell: Cell, where: str) -> None:
    """The cell's backend, batch and settings as a sweep file's are checked: a hand-edited manifest is told here, not
    by a crash mid-run."""
    backend = backends.get(cell.backend)
    values = {"batch": cell.batch, **cell.settings}
    declared = {s.name: s for s in backend.settings}
    for name, value in values.items():
        if name not in declared:
            raise UserError(
                f"{where}.settings: {backend.name} takes no setting {name!r}; it takes: {backend.describe()}"
            )
        try:
            checked = declared[name].check(value)
        except UserError as e:
            raise UserError(f"{where}.{name}: {e}") from None
        if checked != value:  # the exporter wrote checked values; anything else was edited
            raise UserError(f"{where}.{name}: {value!r} is not a value the exporter writes; export the bundle again")


def _inside(folder: Path, relative: Any, where: str) -> Path:
    if not isinstance(relative, str) or Path(relative).is_absolute():
        raise UserError(f"{where}: must be a path inside the bundle, got {relative!r}")
    model = (folder / relative).resolve()
    if not model.is_relative_to(folder.resolve()):
        raise UserError(f"{where}: {relative!r} leaves the bundle folder; a bundle may only name its own files")
    if not model.is_file():
        raise UserError(f"{where}: {relative} is missing from the bundle; copy the whole folder")
    return model
