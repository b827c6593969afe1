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
a 10 us op counts as much as a 10 ms one. Why this and not a learned model: 92 calibration cells per backend and
43 coefficients, each with a meaning that can be checked against the probe's roofs; and a linear model in
these features adds up over a network's ops by construction. The calibration times each op with the L2 evicted
(``cache: cold``), as it runs inside a network.

A whole network runs slower than the sum of its ops timed alone: each of its ops follows different ones (other
kernels, other weights, other shapes), where a calibration cell repeats one op and a guideline block repeats one
unit. So a whole network's prediction is the sum times a network factor, the median of measured / summed over the
design-set networks (DESIGN) this device measured; each design network is scored with the factor of the other
families' networks (its own family's other widths share its errors, so leaving out the network alone would score it
with a factor it pulled, as a new network's factor never is).

A prediction's interval is split-conformal at LEVEL, from the ratios measured / predicted on cells like it that the
model was not fitted on. For a whole network: the held-out networks where this device measured enough of them (the
design networks shaped the model, so their errors are smaller than a new network's: on the zen4 VM of 2026-12-01 an
interval from them held 9 and 8 of 13 held-out networks), then the design networks (each against the other families'
factor), otherwise the calibration cells, each left out of the fit. The held-out networks set the interval's width
only, never a prediction, and its coverage is checked on them out of sample: each against the interval from the
other families' held-out networks (``held_out_inside``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import optimize

from shufflebench import stats
from shufflebench.categories import CONV_CLASSES, OP_CLASSES

LEVEL = 0.8  # of the prediction interval
TOLERANCE = 0.10  # the accuracy a prediction is scored at: within +-10% of the measured median
# Networks (design or held-out) for a network factor or an interval: the fewest out-of-sample cells for a finite LEVEL
# interval, ceil((n + 1) * 0.9) <= n.
MIN_INTERVAL_CELLS = 9
# The networks whose prediction errors guided the op classes and the calibration shapes: scored apart from the
# held-out networks (every other network of the zoo), which no design decision looked at; they set the width of a
# network's interval only.
DESIGN = frozenset({"shufflenet_v1", "shufflenet_v2", "mobilenet_v1", "mobilenet_v2"})
FAMILIES = {  # the zoo's networks that are one design at several depths or scalings (shufflebench.blocks.networks)
    **{f"resnet{depth}": "resnet" for depth in (18, 34, 50)},
    **{f"efficientnet_b{i}": "efficientnet" for i in range(4)},
}
# Classes with a FLOP term.
COMPUTE = (*CONV_CLASSES, "matmul")
# Classes with a byte term.
MOVING = (*COMPUTE, "elementwise", "elementwise_exp", "data", "maxpool", "avgpool", "globalpool")
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


def whole_network(workload: str) -> bool:
    """Whether a workload is a whole network, whose prediction carries the network factor: the zoo's networks and a
    model of the user's (an import path or an .onnx file); guideline blocks and calibration ops are not."""
    from shufflebench import papers, workloads

    return papers.series(workload) == "networks" or workloads.is_onnx(workload) or workloads.is_import_path(workload)


def kernels(classes: dict[str, list[int]]) -> int:
    """The ops of a graph that run a kernel (every class but views)."""
    return sum(ops for name, (ops, _, _) in classes.items() if name != "view")


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


@dataclass(frozen=True)
class Interval:
    """A LEVEL prediction interval as bounds on measured / predicted, split-conformal from ``n`` out-of-sample ratios
    (``source`` says which cells gave them)."""

    low: float
    high: float
    source: str
    n: int

    @classmethod
    def of(cls, ratios: list[float], source: str) -> Interval:
        return cls(*conformal(ratios), source, len(ratios))

    def around(self, predicted_ms: float) -> tuple[float, float]:
        return predicted_ms * self.low, predicted_ms * self.high


@dataclass
class Model:
    """Milliseconds per unit of each feature, fitted on ``cells`` calibration cells; the network factor a whole
    network's sum is multiplied by; and two intervals: from the calibration cells, each left out of the fit, and, where
    the device measured enough networks, from the held-out networks or else the design ones (``interval_for``)."""

    coefficients: dict[str, float]
    cells: int
    cells_interval: Interval
    networks_interval: Interval | None = None
    fitted_classes: set[str] = field(default_factory=set)  # classes the calibration cells had
    cache: str = "warm"  # how the calibration cells were timed
    launch_ms: float | None = None  # on a GPU: the host's cost of launching one kernel
    network_factor: float = 1.0  # a whole network's measured / summed: the median over the design networks
    factor_without: dict[str, float] = field(default_factory=dict)  # per design network cell: other families' factor
    interval_from_held_out: bool = False  # the networks' interval: from the held-out networks, not the design ones

    def predict(self, classes: dict[str, list[int]], network: bool = False) -> float:
        """Milliseconds for a graph; ``network``: a whole network's, with the network factor."""
        return max(self._sum(classes), self._launches(classes)) * (self.network_factor if network else 1.0)

    def predict_row(self, row: dict[str, Any]) -> float:
        """A measured row's prediction, out of sample: a whole network's with the network factor, a design network's
        with the factor of the other families' design networks, which it and its family did not set."""
        if not whole_network(row["workload"]):
            return self.predict(row["op_classes"])
        return self.factor_without.get(row["cell"], self.network_factor) * self.predict(row["op_classes"])

    def _sum(self, classes: dict[str, list[int]]) -> float:
        return float(features(classes) @ np.array([self.coefficients[f] for f in FEATURES]))

    def _launches(self, classes: dict[str, list[int]]) -> float:
        """A GPU cell's time when the host launches its kernels more slowly than the device runs them: the call and a
        launch per kernel (0 on a CPU)."""
        return 0.0 if self.launch_ms is None else self.coefficients["call"] + kernels(classes) * self.launch_ms

    def launch_bound(self, classes: dict[str, list[int]]) -> bool:
        return self._launches(classes) > self._sum(classes)

    def contributions(self, classes: dict[str, list[int]]) -> dict[str, float]:
        """Milliseconds by class (and the call) that make up the sum a prediction is (before any network factor),
        largest first; for a launch-bound cell, the call and the launches."""
        if self.launch_bound(classes):
            return {"launch": self._launches(classes) - self.coefficients["call"], "call": self.coefficients["call"]}
        x = dict(zip(FEATURES, features(classes)))
        out: dict[str, float] = {}
        for name, value in x.items():
            out[name.split(":")[0]] = out.get(name.split(":")[0], 0.0) + value * self.coefficients[name]
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def interval_for(self, network: bool) -> Interval:
        """The interval from cells like the one predicted: the design networks' for a whole network where the device
        measured them, the calibration cells' otherwise (a block or a single op, or no design networks)."""
        return self.networks_interval if network and self.networks_interval else self.cells_interval

    def calibrated_on(self, networks: list[dict[str, Any]]) -> Model:
        """This model with its network factor and interval from design networks measured on the device: the factor
        is the median of their ratios measured / summed, the interval split-conformal on each network's ratio to the
        factor of the other families' networks (out of sample, as a held-out network of a new family is). The networks
        must come from at least two families (workloads)."""
        ratios = np.array([r["median_ms"] / self.predict(r["op_classes"]) for r in networks])
        families = np.array([family(r["workload"]) for r in networks])
        without = [float(np.median(ratios[families != own])) for own in families]
        source = f"{len(networks)} design-set networks, each against the network factor of the other families"
        return replace(
            self,
            network_factor=float(np.median(ratios)),
            factor_without={r["cell"]: f for r, f in zip(networks, without)},
            networks_interval=Interval.of(list(ratios / without), source),
        )

    def with_held_out_interval(self, held: list[dict[str, Any]]) -> Model:
        """This model with the networks' interval from held-out networks measured on the device: their ratios
        measured / predicted, each with the design networks' factor (which they did not set)."""
        ratios = [r["median_ms"] / self.predict_row(r) for r in held]
        source = f"{len(held)} held-out networks, each against the design networks' network factor"
        return replace(self, networks_interval=Interval.of(ratios, source), interval_from_held_out=True)


def held_out_inside(model: Model, held: list[dict[str, Any]]) -> int:
    """How many held-out networks the networks' interval holds, each out of sample: where the held-out networks set
    the interval, each is checked against the interval from the other families' held-out networks."""
    ratios = np.array([r["median_ms"] / model.predict_row(r) for r in held])
    if not model.interval_from_held_out:
        interval = model.interval_for(network=True)
        return int(np.sum((interval.low <= ratios) & (ratios <= interval.high)))
    families = np.array([family(r["workload"]) for r in held])
    inside = 0
    for ratio, own in zip(ratios, families):
        low, high = conformal(list(ratios[families != own]))
        inside += int(low <= ratio <= high)
    return inside


def family(workload: str) -> str:
    """The family of a network: its depths (ResNet-18/34/50) and scalings (EfficientNet-B0 to B3, widths) share their
    errors, so out-of-sample checks leave a whole family out."""
    return FAMILIES.get(workload, workload)


def enough_networks(networks: list[dict[str, Any]]) -> bool:
    """Whether networks can set a factor or an interval: at least MIN_INTERVAL_CELLS, of at least two families."""
    return len(networks) >= MIN_INTERVAL_CELLS and len({family(r["workload"]) for r in networks}) > 1


def conformal(ratios: list[float], level: float = LEVEL) -> tuple[float, float]:
    """Split-conformal bounds on measured / predicted from out-of-sample ratios: the k-th smallest and largest, k =
    ceil((n + 1) (1 + level) / 2), so that a new cell like these falls inside with probability at least ``level``
    (infinite where n is too small for the level)."""
    ordered, n = np.sort(ratios), len(ratios)
    k = _rank(n, level)
    if k > n:
        return 0.0, math.inf
    return float(ordered[n - k]), float(ordered[k - 1])


def coverage(n: int, level: float = LEVEL) -> float:
    """The probability that ``conformal``'s bounds from n ratios hold a new cell exchangeable with them: (2k - n - 1)
    / (n + 1), at least ``level`` and above it where n is small, as order statistics round up (16 ratios give 88% for
    an 80% interval, 76 give 82%); 1 where the bounds are infinite."""
    k = _rank(n, level)
    return 1.0 if k > n else (2 * k - n - 1) / (n + 1)


def observed_coverage(inside: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Clopper-Pearson interval of a coverage observed as ``inside`` of ``n`` networks: with few networks one is
    many points of coverage (8 of 13), so whether the observed coverage disagrees with the stated one is whether this
    interval leaves it out."""
    from scipy import stats

    ci = stats.binomtest(inside, n).proportion_ci(confidence, method="exact")
    return float(ci.low), float(ci.high)


def _rank(n: int, level: float) -> int:
    """The order statistic, counted from either end, that bounds a split-conformal interval at ``level`` from n."""
    return math.ceil((n + 1) * (1 + level) / 2)


def _nnls(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative coefficients minimising the relative errors of x @ c against y."""
    scale = x.max(axis=0)
    scale[scale == 0] = 1.0  # a feature no cell has: its coefficient stays 0
    solution, _ = optimize.nnls(x / scale / y[:, None], np.ones(len(y)))
    return solution / scale


def _fit_launches(x: np.ndarray, y: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, float]:
    """Coefficients and a launch cost per kernel for y = max(call + k * launch, x @ coefficients), by alternating: the
    launch cost from the cells taken as launch-bound, the sum fitted on the others, until the split settles (first
    guess: the cells that a sum fitted on all of them under-predicts)."""
    coefficients, launch = _nnls(x, y), 0.0
    bound = (y > x @ coefficients) & (k > 0)
    for _ in range(20):
        if not bound.any() or (~bound).sum() < 10:
            break
        spent = np.maximum(y[bound] - coefficients[0], 0.0)
        launch = float(np.sum(k[bound] * spent / y[bound] ** 2) / np.sum(k[bound] ** 2 / y[bound] ** 2))
        coefficients = _nnls(x[~bound], y[~bound])
        settled = (coefficients[0] + k * launch > x @ coefficients) & (k > 0)
        if (settled == bound).all():
            break
        bound = settled
    return coefficients, launch


def fit(rows: list[dict[str, Any]], launches: bool = False) -> Model:
    """Fit on measured rows that have ``op_classes`` and ``median_ms`` (the calibration cells of one device and
    backend), with an interval from the cells left out one at a time; raises ValueError when there are too few.
    ``launches`` (a GPU backend): a cell takes the longer of its summed op costs and a launch per kernel."""
    usable = [r for r in rows if r.get("op_classes") and r.get("median_ms") and known(r["op_classes"])]
    if len(usable) < 10:
        raise ValueError(f"{len(usable)} calibration cells with op classes; run `shufflebench calibrate`")
    x = np.array([features(r["op_classes"]) for r in usable])
    y = np.array([r["median_ms"] for r in usable])
    k = np.array([kernels(r["op_classes"]) for r in usable])
    caches = "/".join(sorted({r.get("cache") or "warm" for r in usable}))
    seen = {name for r in usable for name in r["op_classes"]}

    def model(keep: np.ndarray) -> Model:
        coefficients, launch = _fit_launches(x[keep], y[keep], k[keep]) if launches else (_nnls(x[keep], y[keep]), None)
        return Model(
            dict(zip(FEATURES, map(float, coefficients))),
            cells=len(usable),
            cells_interval=Interval(0.0, math.inf, "", 0),
            fitted_classes=seen,
            cache=caches,
            launch_ms=launch,
        )

    everything = model(np.ones(len(y), bool))
    with np.errstate(divide="ignore"):  # a cell alone in its class predicts 0 without it: an infinite ratio
        left_out = [y[i] / model(np.arange(len(y)) != i).predict(usable[i]["op_classes"]) for i in range(len(y))]
    source = f"{len(usable)} calibration cells, each left out of the fit"
    return replace(everything, cells_interval=Interval.of(left_out, source))


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
        within_10=float(np.mean(np.abs(relative) <= TOLERANCE)),
        median_error=float(np.median(np.abs(relative))),
    )


def present(value: Any) -> bool:
    """Whether a row's value is there: not None (from a CSV) nor NaN (via pandas)."""
    return value is not None and value == value


def measured_to(row: dict[str, Any], tolerance: float) -> bool:
    """Whether a cell's own interval of its median (``ci_low_ms`` to ``ci_high_ms``) lies within +-``tolerance`` of
    the median: only on such a cell can a prediction within ``tolerance`` be told from one within the noise."""
    low, high, median = row.get("ci_low_ms"), row.get("ci_high_ms"), row["median_ms"]
    if not (present(low) and present(high)):  # no interval
        return False
    return median * (1 - tolerance) <= low and high <= median * (1 + tolerance)


BASELINES = {"FLOPs only": ("flops",), "FLOPs + MAC": ("flops", "mac_bytes")}


def baseline(fitted_on: list[dict[str, Any]], rows: list[dict[str, Any]], columns: tuple[str, ...]) -> list[float]:
    """Latency linear in ``columns`` (FLOPs, or FLOPs and MAC bytes) with an intercept, fitted as the predictor is (on
    the calibration cells ``fitted_on``, non-negative, relative errors), predicted for ``rows``."""

    def x(cells: list[dict[str, Any]]) -> np.ndarray:
        return np.array([[1.0, *(r[c] / 1e6 for c in columns)] for r in cells])

    coefficients = _nnls(x(fitted_on), np.array([r["median_ms"] for r in fitted_on]))
    return [float(v) for v in x(rows) @ coefficients]


def model_key(row: dict[str, Any]) -> tuple[str, int | None]:
    threads = row.get("threads")  # none on a GPU backend: None from a CSV, NaN from a DataFrame
    return row["backend"], None if threads is None or threads != threads else int(threads)


def calibration_rows(rows: list[dict[str, Any]]) -> dict[tuple[str, int | None], list[dict[str, Any]]]:
    """A device's calibration rows (sweep ``calibrate``, status ok) per (backend, threads), cold ones where the
    calibration was timed both ways."""
    groups: dict[tuple[str, int | None], dict[str, list[dict[str, Any]]]] = {}
    for row in rows:
        if row.get("sweep") == "calibrate" and row.get("status") == "ok":
            cache = row.get("cache") if isinstance(row.get("cache"), str) else "warm"
            groups.setdefault(model_key(row), {}).setdefault(cache, []).append(row)
    return {key: by_cache.get("cold") or by_cache["warm"] for key, by_cache in groups.items()}


def at_calibration_speed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with their medians at the speed the machine ran the calibration at. A CPU cell times the noise floor's
    kernel between its samples (shufflebench.measure); where a backend and thread count's calibration cells all did,
    every measured row of that pair that did too gets ``median_ms`` = its median in reference calls
    (``relative_median``) times the calibration cells' median reference call, its interval the one of its processes'
    medians in reference calls (shufflebench.stats) at that speed, and the scale kept as ``speed_scale``. On a machine
    whose speed is steady that moves nothing; on a VM whose neighbours slow it by tens of percent for minutes it takes
    out what a calibration cell and a network measured at other moments do not share, and what its processes do not.
    Other rows, and rows already moved, are returned as they are."""

    speeds = {
        key: float(np.median([r["reference_median_ms"] for r in group]))
        for key, group in calibration_rows(rows).items()
        if all(present(r.get("relative_median")) for r in group)
    }
    out = []
    for row in rows:
        speed = speeds.get(model_key(row)) if row.get("status") == "ok" else None
        if speed is None or not present(row.get("relative_median")) or present(row.get("speed_scale")):
            out.append(row)
            continue
        low, high, _ = stats.median_interval(stats.in_reference_calls(row["samples_ms"], row["reference_ms"]))
        moved = {
            "median_ms": row["relative_median"] * speed,
            "ci_low_ms": None if low is None else low * speed,
            "ci_high_ms": None if high is None else high * speed,
        }
        out.append({**row, **moved, "speed_scale": moved["median_ms"] / row["median_ms"]})
    return out


def is_network(row: dict[str, Any], design: bool) -> bool:
    """Whether a measured row is a whole network of the design set (``design``) or of the held-out set."""
    from shufflebench import papers

    workload = row.get("workload")
    return (
        papers.series(workload) == "networks"
        and (workload in DESIGN) == design
        and row.get("status") == "ok"
        and row.get("sweep") != "calibrate"
        and bool(row.get("op_classes"))
        and known(row["op_classes"])
    )


def models_for(rows: list[dict[str, Any]]) -> dict[tuple[str, int | None], Model]:
    """A model per (backend, threads) from a device's rows: fitted on its calibration cells, its network factor and
    interval from the design-set networks measured with that backend and thread count where there are enough
    (``enough_networks``; no factor, and the interval from the calibration cells, otherwise), and then the interval
    from the held-out networks where there are enough of those.
    Pairs with too few calibration cells are left out. Medians are taken at the calibration's speed
    (:func:`at_calibration_speed`)."""
    from shufflebench import backends

    rows = at_calibration_speed(rows)
    models = {}
    for key, group in calibration_rows(rows).items():
        try:
            model = fit(group, launches=backends.get(key[0]).on_gpu)
        except ValueError:
            continue
        design = [r for r in rows if model_key(r) == key and is_network(r, design=True)]
        held = [r for r in rows if model_key(r) == key and is_network(r, design=False)]
        if enough_networks(design):
            model = model.calibrated_on(design)
            if enough_networks(held):
                model = model.with_held_out_interval(held)
        models[key] = model
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
