"""How far a device's own measurements repeat: the bound on any latency predictor's accuracy there.

A prediction can be checked against a measured median only as closely as the median itself repeats. This script
measures the calibration cells and the design and held-out networks again in one sweep, interleaved (its rounds put
every cell's processes across the whole sweep), into a separate results folder, and compares them with the device's
committed rows:

- how often a network's (or calibration cell's) median repeats within +-10% between the two measurements, as measured
  and in calls of the reference kernel timed beside it (the machine's speed taken out: shufflebench.measure);
- the predictor fitted on each calibration and scored on each set of networks (its network factor from that set's
  design networks), so that a calibration measured in the same rounds as the networks can be told from one measured
  hours apart.

    python scripts/repeatability.py write repeat.yaml          # the interleaved sweep file
    shufflebench run repeat.yaml --results /tmp/repeat          # about 13 minutes at one thread on 2 cores
    python scripts/repeatability.py compare /tmp/repeat/<device-id> results/<device-id>
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from shufflebench import calibrate, predict

ROOT = Path(__file__).resolve().parents[1]
# The sweeps whose networks are measured again: the design networks and Xception, and the other held-out networks.
NETWORK_SWEEPS = (ROOT / "configs" / "paper" / "networks.yaml", ROOT / "configs" / "held-out.yaml")
WITHIN = f"within ±{predict.TOLERANCE:.0%}"


def write(path: str) -> None:
    data = calibrate.sweep_data(["torch-cpu", "ort-cpu"])
    data["sweep"] = "repeatability"
    data["description"] = "calibration cells and networks interleaved (scripts/repeatability.py)"
    data["measure"] = {**calibrate.MEASURE, "processes": 4, "max_processes": 4, "min_time": 0.3}
    for sweep in NETWORK_SWEEPS:  # timed warm, as those sweeps time them
        data["workloads"] += [
            {**e, "settings": {"cache": "warm"}} for e in yaml.safe_load(sweep.read_text())["workloads"]
        ]
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))


def _rows(folder: str) -> list[dict[str, Any]]:
    """A folder's rows, its calibration cells under the sweep name the predictor looks for."""
    from shufflebench.report.load import load

    rows = load([Path(folder)]).rows.to_dict("records")
    for row in rows:
        if str(row["workload"]).startswith("op_"):
            row["sweep"] = calibrate.NAME
    return rows


def _spread(ratios: list[float], what: str) -> str:
    """How many ``what`` the ratios cover, the share of them within the predictor's tolerance of 1, and their range."""
    r = np.array(ratios)
    within = np.mean(np.abs(r - 1) <= predict.TOLERANCE)
    return f"{len(r)} {what}, {within:.0%} {WITHIN}, ratios {r.min():.2f} to {r.max():.2f}"


def _agreement(a: list[dict[str, Any]], b: list[dict[str, Any]], column: str = "median_ms") -> str:
    """``column`` of the cells measured in both, as ratios a / b."""
    other = {(r["workload"], str(r["workload_args"]), r["backend"]): r.get(column) for r in b}
    pairs = [(r.get(column), other.get((r["workload"], str(r["workload_args"]), r["backend"]))) for r in a]
    return _spread([x / y for x, y in pairs if predict.present(x) and predict.present(y)], "cells")


def _network(row: dict[str, Any]) -> bool:
    return predict.is_network(row, design=True) or predict.is_network(row, design=False)


def _speed_free(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Every folder's rows with each median in calls of the reference kernel timed beside it, where every calibration
    cell and network of both folders has one: then a calibration and networks measured at other speeds of the machine
    compare (the scores are the report's, whose medians are these times one speed). Otherwise the rows as measured."""
    calibrations = [r for found in rows.values() for group in predict.calibration_rows(found).values() for r in group]
    compared = calibrations + [r for found in rows.values() for r in found if _network(r)]
    if not all(predict.present(r.get("relative_median")) for r in compared):
        return rows
    return {name: [{**r, "median_ms": r["relative_median"]} for r in found] for name, found in rows.items()}


def compare(again: str, committed: str) -> None:
    as_measured = {"again": _rows(again), "committed": _rows(committed)}
    rows = _speed_free(as_measured)
    print("scores and sums in reference calls" if rows is not as_measured else "scores and sums as measured")
    calibrations = {name: predict.calibration_rows(r) for name, r in rows.items()}
    for key in sorted(calibrations["again"], key=str):
        print(f"{key[0]}, {key[1]} thread")

        def networks_of(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [r for r in found if predict.model_key(r) == key and _network(r)]

        networks = {name: networks_of(found) for name, found in rows.items()}
        pair = [networks_of(as_measured[name]) for name in ("again", "committed")]
        print(f"  network medians, again / committed: {_agreement(*pair)}")
        print(f"  the same in reference calls (the machine's speed taken out): {_agreement(*pair, 'relative_median')}")
        cells = [predict.calibration_rows(as_measured[name])[key] for name in ("again", "committed")]
        print(f"  calibration medians, again / committed: {_agreement(*cells)}")
        print(f"  the same in reference calls: {_agreement(*cells, 'relative_median')}")
        sums = {name: predict.fit(calibrations[name][key]) for name in rows}
        ratios = [
            sums["again"].predict(r["op_classes"]) / sums["committed"].predict(r["op_classes"])
            for r in networks["committed"]
        ]
        print(f"  sums of ops from the two calibrations, again / committed: {_spread(ratios, 'networks')}")
        for fitted in rows:
            for scored in rows:
                # the predictor as the report has it: this calibration, the network factor from these networks' design
                # set (each design network against the factor of the others)
                moved = predict.at_calibration_speed(calibrations[fitted][key] + networks[scored])
                model = predict.models_for(moved)[key]
                for design in (True, False):
                    cells = [r for r in moved if predict.is_network(r, design)]
                    measured = [r["median_ms"] for r in cells]
                    with_factor = predict.validate([model.predict_row(r) for r in cells], measured)
                    summed = predict.validate([model.predict(r["op_classes"]) for r in cells], measured)
                    print(
                        f"  calibration {fitted:9s} networks {scored:9s} {'design' if design else 'held-out':8s} "
                        f"({with_factor.cells}): {WITHIN} {with_factor.within_10:.0%}, median error "
                        f"{with_factor.median_error:.1%} (network factor x{model.network_factor:.2f}; the sums "
                        f"{summed.within_10:.0%}, {summed.median_error:.1%})"
                    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "write":
        write(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
