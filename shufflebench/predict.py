"""A latency predictor per device and backend, fitted on the calibration sweep (shufflebench.calibrate).

A cell's latency is modelled as the fixed cost of one call plus, for every op of the graph its backend runs (the torch
op graph, or the graph ONNX Runtime optimised: shufflebench.results' ``op_classes``), a cost that depends on the op's
class (shufflebench.categories.OP_CLASSES):

    latency = call + sum over classes k of (n_k * per_op_k + flops_k * per_flop_k + bytes_k * per_byte_k)

with n_k ops, flops_k multiply-adds and bytes_k bytes moved in class k. Every term is a time, so every coefficient is
non-negative: per-op overhead (dispatch, launch), compute and memory, a roofline per class with the roofs as the
device showed them for that class. Classes that do no arithmetic (element-wise, data, pooling) have no FLOP term;
views, allocations and others only a per-op cost.

The fit is scipy's non-negative least squares on relative errors (each calibration cell weighs 1 / its latency), so
a 10 us op counts as much as a 10 ms one. Why this and not a learned model: 70 calibration cells per backend and
about 35 coefficients, each with a meaning that can be checked against the probe's roofs; and a linear model in
these features adds up over a network's ops by construction. The uncertainty of a prediction is the spread of the
fit's relative errors on the calibration cells (their 10th and 90th percentiles).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize

from shufflebench.categories import OP_CLASSES

# Classes with a FLOP term.
COMPUTE = ("stem", "conv1x1", "convkxk", "depthwise", "depthwise_plain", "grouped", "matmul")
MOVING = (*COMPUTE, "elementwise", "data", "maxpool", "avgpool", "globalpool")  # classes with a byte term
# Features: the call, then per class its op count, its GFLOP (multiply-adds) and its MB moved.
FEATURES = [
    "call",
    *[f"{c}:ops" for c in OP_CLASSES],
    *[f"{c}:gflop" for c in COMPUTE],
    *[f"{c}:mb" for c in MOVING],
]


def known(classes: dict[str, list[int]]) -> bool:
    """Whether a row's op classes are all of this version's vocabulary (rows measured before a class was split, such
    as the single ``pool`` class, are not)."""
    return all(name in OP_CLASSES for name in classes)


def features(classes: dict[str, list[int]]) -> np.ndarray:
    """The feature vector of a graph given as {class: [ops, multiply-adds, bytes]}."""
    x = dict.fromkeys(FEATURES, 0.0)
    x["call"] = 1.0
    for name, (ops, flops, nbytes) in classes.items():
        x[f"{name}:ops"] = ops
        if name in COMPUTE:
            x[f"{name}:gflop"] = flops / 1e9
        if name in MOVING:
            x[f"{name}:mb"] = nbytes / 1e6
    return np.array([x[f] for f in FEATURES])


@dataclass
class Model:
    """Milliseconds per unit of each feature, fitted on ``cells`` calibration cells."""

    coefficients: dict[str, float]
    cells: int
    error_low: float  # 10th percentile of the relative error on the calibration cells
    error_high: float  # 90th percentile
    fitted_classes: set[str] = field(default_factory=set)  # classes the calibration cells had

    def predict(self, classes: dict[str, list[int]]) -> float:
        return float(features(classes) @ np.array([self.coefficients[f] for f in FEATURES]))

    def contributions(self, classes: dict[str, list[int]]) -> dict[str, float]:
        """Milliseconds by class (and the call) that make up a prediction, largest first."""
        x = dict(zip(FEATURES, features(classes)))
        out: dict[str, float] = {}
        for name, value in x.items():
            out[name.split(":")[0]] = out.get(name.split(":")[0], 0.0) + value * self.coefficients[name]
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def interval(self, predicted_ms: float) -> tuple[float, float]:
        """The range the measured latency fell in for 80% of the calibration cells, around a prediction."""
        return predicted_ms / (1 + self.error_high), predicted_ms / (1 + self.error_low)


def fit(rows: list[dict[str, Any]]) -> Model:
    """Fit on measured rows that have ``op_classes`` and ``median_ms`` (the calibration cells of one device and
    backend); raises ValueError when there are too few."""
    usable = [r for r in rows if r.get("op_classes") and r.get("median_ms") and known(r["op_classes"])]
    if len(usable) < 10:
        raise ValueError(f"{len(usable)} calibration cells with op classes; run `shufflebench calibrate` (70)")
    x = np.array([features(r["op_classes"]) for r in usable])
    y = np.array([r["median_ms"] for r in usable])
    scale = x.max(axis=0)
    scale[scale == 0] = 1.0  # a feature no cell has: its coefficient stays 0
    solution, _ = optimize.nnls(x / scale / y[:, None], np.ones(len(y)))
    coefficients = solution / scale
    relative = x @ coefficients / y - 1
    low, high = np.percentile(relative, [10, 90])
    present = {name for r in usable for name in r["op_classes"]}
    return Model(dict(zip(FEATURES, map(float, coefficients))), len(usable), float(low), float(high), present)


@dataclass(frozen=True)
class Validation:
    """Predicted against measured on cells the model was not fitted on."""

    cells: int
    spearman: float
    rmspe: float  # root mean square percentage error, as a fraction
    within_5: float  # share of cells within +-5%
    within_10: float
    median_error: float  # median absolute relative error


def validate(predicted: list[float], measured: list[float]) -> Validation:
    from scipy import stats

    p, m = np.asarray(predicted), np.asarray(measured)
    relative = p / m - 1
    return Validation(
        cells=len(m),
        spearman=float(stats.spearmanr(p, m).statistic) if len(m) > 2 else math.nan,
        rmspe=float(np.sqrt(np.mean(relative**2))),
        within_5=float(np.mean(np.abs(relative) <= 0.05)),
        within_10=float(np.mean(np.abs(relative) <= 0.10)),
        median_error=float(np.median(np.abs(relative))),
    )


def baseline(rows: list[dict[str, Any]], families: list[str], columns: tuple[str, ...]) -> list[float]:
    """A linear fit of latency on ``columns`` (FLOPs, or FLOPs and MAC bytes) with an intercept, validated leave one
    family out: each row is predicted by the fit on the other families' rows (least squares, relative errors)."""
    x = np.array([[1.0, *(r[c] / 1e6 for c in columns)] for r in rows])
    y = np.array([r["median_ms"] for r in rows])
    out = np.empty(len(rows))
    for family in set(families):
        held = np.array([f == family for f in families])
        if held.all():
            out[held] = math.nan
            continue
        solution, *_ = np.linalg.lstsq(x[~held] / y[~held, None], np.ones((~held).sum()), rcond=None)
        out[held] = x[held] @ solution
    return [float(v) for v in out]


def models_for(rows: list[dict[str, Any]]) -> dict[tuple[str, int | None], Model]:
    """A model per (backend, threads) from a device's calibration rows (sweep ``calibrate``, status ok); pairs with
    too few cells are left out."""
    groups: dict[tuple[str, int | None], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("sweep") == "calibrate" and row.get("status") == "ok":
            threads = row.get("threads")  # none on a GPU backend: None from a CSV, NaN from a DataFrame
            threads = None if threads is None or threads != threads else int(threads)
            groups.setdefault((row["backend"], threads), []).append(row)
    models = {}
    for key, group in groups.items():
        try:
            models[key] = fit(group)
        except ValueError:
            continue
    return models


def graph_classes(name: str, args: dict[str, Any], backend_name: str, threads: int | None, batch: int) -> dict:
    """The op classes of the graph ``backend_name`` would run for a workload (any name): the torch op graph, or the
    graph ONNX Runtime optimises the exported model into at opt_level all. Prepared in worker processes, as a sweep
    prepares it, and cached (shufflebench.preparation)."""
    from shufflebench import backends, config, device, preparation
    from shufflebench.errors import UserError
    from shufflebench.launcher import Launcher

    backend = backends.get(backend_name)
    settings = backend.defaults(**({"threads": threads} if threads else {}))
    cell = config.single_cell(name, args, backend_name, {"batch": batch, **settings})
    timeout = config.RunSettings().prepare_timeout  # preparation only: its own limit
    with Launcher() as launcher:
        prepared, errors = preparation.prepare_cells([cell], timeout, launcher)
        if cell.key in errors:
            raise UserError(f"{name}: {errors[cell.key]}")
        if not backend.needs_onnx:
            return prepared[cell.key].classes or {}
        costs = preparation.runtime_costs([cell], prepared, device.collect()["machine_key"], timeout, launcher)
    return costs[cell.key].get("classes") or {}
