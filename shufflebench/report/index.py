"""`shufflebench report`: one device's results as Markdown (index.md) and PNG figures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shufflebench import calibrate, device, papers, predict, probe, stats
from shufflebench.breakdown import CATEGORIES
from shufflebench.report import figures, pairs, paper
from shufflebench.report.load import Loaded, best_roofs, ok_rows, warning_lines
from shufflebench.roofline import EXPLAINED

PAIRS_SHOWN = 24  # pairs listed one by one in the settings section, furthest from no change first


def write_report(loaded: Loaded, device_id: str, out: Path) -> Path:
    """Write ``out/index.md`` and its figures for ``device_id``; returns the index path."""
    out.mkdir(parents=True, exist_ok=True)
    rows = loaded.rows[loaded.rows["device_id"] == device_id]
    everything = ok_rows(rows)
    ok = everything[everything["sweep"] != calibrate.NAME]  # the calibration cells serve the predictor only
    meta = loaded.devices.get(device_id, {})
    lines = [f"# shufflebench report: `{device_id}`", ""]
    if meta:
        lines += ["```", device.describe(meta), "```", ""]
    if meta.get("emulated"):
        lines += ["**This device was emulated: its timings are not meaningful.**", ""]
    lines += warning_lines(loaded.warnings)
    lines += _rows_summary(rows)
    if ok.empty:
        lines += ["No cell was measured successfully, so there is nothing to plot.", ""]
    else:
        lines += _cost_section(ok, device_id, out)
        lines += _paper_section(ok)
        lines += _network_section(ok, device_id, out)
        lines += _settings_section(ok)
        lines += _roofline_section(ok, device_id, out)
        lines += _prediction_section(everything, device_id, out)
    lines += _node_section(loaded.nodes, meta, device_id, out)
    lines += _breakdown_section(loaded.breakdown, device_id, out)
    lines += _noise_section(rows)
    index = out / "index.md"
    index.write_text("\n".join(lines).rstrip() + "\n")
    return index


# The columns of each cell in ``report --json``: what it is, how fast, how sure, what it costs.
SUMMARY_COLUMNS = (
    "cell", "sweep", "status", "error", "workload", "workload_args", "backend", "batch", "median_ms", "ci_low_ms",
    "ci_high_ms", "ci_level", "images_per_s", "batches_per_s", "flops", "mac", "params", "peak_rss_mib",
    "peak_device_mib", "bound", "is_noisy", "noise", "finished_at",
)  # fmt: skip


def summary(loaded: Loaded, device_id: str, index: Path | None = None) -> dict[str, Any]:
    """What ``report --json`` prints for one device: its cells, the paper tables' verdicts, and the noise by cause."""
    rows = loaded.rows[loaded.rows["device_id"] == device_id]
    ok = ok_rows(rows)
    cells = [
        {c: plain(r.get(c)) for c in SUMMARY_COLUMNS}
        for _, r in rows.sort_values("finished_at").drop_duplicates("cell", keep="last").iterrows()
    ]
    causes: dict[str, int] = {}
    for noise in ok["noise"]:
        for cause in {stats.cause_of(r) for r in stats.reasons_of(noise if isinstance(noise, str) else None)}:
            causes[cause] = causes.get(cause, 0) + 1
    tables = [
        {
            "table": t.table.number,
            "workload": t.table.workload,
            "backend": t.backend,
            "settings": t.settings,
            "verdict": t.verdict,
            "kendall_tau": t.mean_tau,
            "pairs_told_apart": t.pairs - len(t.unresolved),
            "pairs": t.pairs,
            "fastest_to_slowest": t.best_to_worst,
        }
        for t in paper.build_tables(ok[ok["sweep"] != calibrate.NAME])
    ]
    return {
        "device_id": device_id,
        "device": loaded.devices.get(device_id, {}),
        "report": str(index) if index else None,
        "warnings": loaded.warnings,
        "paper_tables": tables,
        "noise_by_cause": causes,
        "cells": cells,
    }


def plain(value: Any) -> Any:
    """A value JSON can hold: numpy numbers as Python ones, NaN as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _rows_summary(rows: pd.DataFrame) -> list[str]:
    lines = [
        "## What was measured",
        "",
        "| sweep | cells | ok | error | skipped | noisy | processes per cell | s of sampling per process | "
        "noise floor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for sweep, group in rows.groupby("sweep"):
        status = group["status"].value_counts()
        noisy = int(group["is_noisy"].fillna(False).astype(bool).sum())
        settings = group["measure_settings"].dropna()
        s = settings.iloc[0] if len(settings) else {}
        floors = group.get("noise_floor", pd.Series(dtype=float)).dropna()
        floor = f"{floors.median():.0%}" if len(floors) else "-"
        lines.append(
            f"| {sweep} | {len(group)} | {status.get('ok', 0)} | {status.get('error', 0)} | "
            f"{status.get('skipped', 0)} | {noisy} | {s.get('processes', '-')} | {s.get('min_time', '-')} | {floor} |"
        )
    lines += [
        "",
        "Each worker process warms up, sizes a block of calls so the timer's overhead stays under 0.1%, and samples. "
        "A cell's median is the median of its process medians, so every process weighs the same; its interval is "
        "the distribution-free one from the order statistics of the process medians, at the level those processes "
        "reach (95% needs 6). Processes that fall into separate modes are listed with the noisy cells. A cell that "
        "several sweeps measured is shown once, with its latest row. A sweep's noise floor is the median of its rows' "
        "noise floors, the machine's own spread (the p90/p10 of a fixed kernel timed in 0.1 s blocks at the start "
        "and end of the sweep, less one): no cell is known better than it.",
    ]
    if (rows["schema_version"] < 2).any():
        lines += [
            "",
            "Rows of results schema 1 (before the statistics were reworked) give the median over all samples "
            "pooled and a bootstrap interval; measure them again to get the process-median statistics.",
        ]
    return lines + [""]


def _cost_section(ok: pd.DataFrame, device_id: str, out: Path) -> list[str]:
    lines = [
        "## Latency against FLOPs and MAC",
        "",
        "Rank correlation (Spearman rho) of median latency with each cost, and the slope of a log-log fit. "
        "A cost that predicted speed well would give rho near 1. For ONNX Runtime the runtime MAC is counted on the "
        "graph it really ran, after its own fusions (batch norm folded, activations fused, layout reorders added).",
        "",
        "| backend | cells | rho (FLOPs) | rho (MAC) | rho (runtime MAC) | slope (FLOPs) | slope (MAC) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    images = []
    for variant in sorted(ok["variant"].unique()):
        name = f"latency_vs_cost_{_file(variant)}.png"
        stats = figures.latency_vs_cost(ok, variant, out / name, f"{device_id}: {variant}, median latency per cell")
        n = int((ok["variant"] == variant).sum())
        values = [
            stats.get(k, float("nan"))
            for k in ("rho_flops", "rho_mac_bytes", "rho_mac_runtime_bytes", "slope_flops", "slope_mac_bytes")
        ]
        lines.append(f"| {variant} | {n} | " + " | ".join("-" if np.isnan(v) else f"{v:.2f}" for v in values) + " |")
        images.append(f"![latency against FLOPs and MAC on {variant}]({name})")
    return lines + [""] + images + [""]


def _paper_section(ok: pd.DataFrame) -> list[str]:
    results = paper.build_tables(ok)
    if not results:
        return []
    lines = [
        "## ShuffleNet V2 Tables 1-4",
        "",
        "A verdict counts only the pairs of rows whose intervals are apart (shufflebench/report/paper.py): where the "
        "noise hides the paper's ordering, it says so instead of guessing.",
        "",
        "| table | backend | settings | verdict | Kendall tau | pairs told apart | fastest/slowest |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for r in results:
        tau = "-" if r.mean_tau is None else f"{r.mean_tau:+.2f}"
        ratio = "-" if r.best_to_worst is None else f"{r.best_to_worst:.2f}x"
        told = f"{r.pairs - len(r.unresolved)} of {r.pairs}" if r.pairs else "-"
        lines.append(
            f"| {r.table.number} ({r.table.workload}) | {r.backend} | {r.settings} | {r.verdict} | {tau} | {told} | "
            f"{ratio} |"
        )
    lines.append("")
    for r in results:
        lines += [paper.to_markdown(r), ""]
    return lines


def _network_section(ok: pd.DataFrame, device_id: str, out: Path) -> list[str]:
    nets = ok[ok["series"] == "networks"]
    if nets.empty:
        return []
    lines = [
        "## Networks (Table 8 / Figure 1)",
        "",
        "Speed in the paper's units for the platform: images/s for CPU cells (paper: ARM, batch 1), batches/s for "
        "GPU cells (paper: GTX 1080Ti, batch 8). Peak memory: the most resident memory the model added to its worker "
        "(weights, activations, the runtime's buffers), and on CUDA the most torch's allocator held.",
        "",
        "| network | backend | settings | MFLOPs | MAC (M) | median ms | speed | paper | peak MiB |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for _, r in nets.sort_values(["backend", "flops"]).iterrows():
        args = ", ".join(f"{k}={v}" for k, v in r["workload_args"].items())
        platform = paper.platform_of(r["backend"])
        column, unit, _ = papers.UNITS[platform]
        published = papers.table8_speed(r["workload"], r["workload_args"], platform)
        lines.append(
            f"| {r['workload']}({args}) | {r['backend']} | {r['cell'].rsplit('/', 1)[-1]} | "
            f"{r['flops'] / 1e6:,.1f} | {r['mac'] / 1e6:,.1f} | {r['median_ms']:.3f} | {r[column]:,.1f} {unit} | "
            f"{'-' if published is None else f'{published:g}'} | {_peak_memory(r)} |"
        )
    lines.append("")
    for variant, group in nets.groupby("variant"):
        if group["workload"].nunique() >= 2 or len(group) >= 3:
            column, unit, _ = papers.UNITS[paper.platform_of(group["backend"].iloc[0])]
            name = f"speed_vs_mflops_{_file(variant)}.png"
            figures.speed_vs_mflops(ok, variant, column, unit, out / name, f"{device_id}: {variant}")
            lines += [f"![speed against MFLOPs on {variant}]({name})", ""]
    return lines


def _settings_section(ok: pd.DataFrame) -> list[str]:
    found = pairs.setting_pairs(ok)
    if found.empty:
        return []
    lines = [
        "## Settings compared",
        "",
        "Cells measured twice with one setting changed (shufflebench/report/pairs.py): the speed-up is images/s with "
        "the change over images/s without it (above 1: the change is faster). A pair is told apart when the two "
        "medians' intervals do not overlap; a speed-up inside them is within noise, and a change none of whose pairs "
        "is told apart made no difference this device could measure.",
        "",
        "| backend | change | pairs | geomean speed-up | range | told apart |",
        "|---|---|---:|---:|---|---:|",
    ]
    for _, s in pairs.summarize(found).iterrows():
        noise = "" if s["separated"] else " (within noise)"
        lines.append(
            f"| {s['backend']} | {s['setting']}: {s['before']} -> {s['after']} | {s['pairs']} | {s['geomean']:.2f}x"
            f"{noise} | {s['lowest']:.2f}-{s['highest']:.2f}x | {s['separated']} of {s['pairs']} |"
        )
    shown = found.iloc[np.argsort(-np.abs(np.log(found["speedup"].to_numpy())))]
    lines += [
        "",
        "| backend | cell | change | ms before | ms after | speed-up |",
        "|---|---|---|---:|---:|---:|",
    ]
    for _, p in shown.head(PAIRS_SHOWN).iterrows():
        lines.append(
            f"| {p['backend']} | {p['cell']} | {p['setting']}: {p['before']} -> {p['after']} | {p['before_ms']:.3f} | "
            f"{p['after_ms']:.3f} | {p['speedup']:.2f}x{'' if p['separated'] else ' (within noise)'} |"
        )
    if len(found) > PAIRS_SHOWN:
        lines.append(f"\nThe {PAIRS_SHOWN} pairs of {len(found)} whose speed-up is furthest from 1.")
    return lines + [""]


def _roofline_section(ok: pd.DataFrame, device_id: str, out: Path) -> list[str]:
    measured = ok[ok["peak_gflops"].notna() & ok["arithmetic_intensity"].notna()] if "peak_gflops" in ok else ok[:0]
    if measured.empty:
        return []
    lines = [
        "## Roofline",
        "",
        "Each cell's attained GFLOP/s against its arithmetic intensity (FLOP per byte of MAC), under the device's "
        "roofs at the cell's thread count: the best matrix product or chain of 1x1 convolutions (compute) and the "
        "best copy (memory) that any backend's probe reached on this device, each the fastest of repeated calls, "
        "since one library's kernels can beat another's (ONNX Runtime's blocked convolutions run faster than its "
        "SGEMM). Each backend's own probe is its library's roof, listed below; cells above a roof whose probes all "
        "ran before the convolution chain joined them are counted apart. `bound` says which roof explains the "
        "time: compute "
        f"or memory when the roofline accounts for at least {100 * EXPLAINED:.0f}% of it, overhead when "
        "neither does (dispatch, launches, what the MAC model does not see).",
        "",
        "| backend | cells | compute-bound | memory-bound | overhead-bound | median fraction of the compute roof | "
        "above the compute roof |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    images = []
    labels = _guideline_labels()
    by_roof = best_roofs(measured, lambda device_id, key: (device_id, probe.roof_kind(key)))
    without_conv = {device_kind for device_kind, roofs in by_roof.items() if not roofs["conv_gflops"]}
    for variant, group in measured.groupby("variant"):
        bounds = group["bound"].value_counts()
        above = group[group["compute_fraction"] > 1]
        before = sum((d, probe.roof_kind(r["key"])) in without_conv for d, r in zip(above["device_id"], above["probe"]))
        lines.append(
            f"| {variant} | {len(group)} | {bounds.get('compute', 0)} | {bounds.get('memory', 0)} | "
            f"{bounds.get('overhead', 0)} | {group['compute_fraction'].median():.1%} | {len(above)}"
            f"{f' ({before} under a roof probed before the 1x1 convolutions)' if before else ''} |"
        )
        name = f"roofline_{_file(variant)}.png"
        figures.roofline(
            group,
            float(group["peak_gflops"].median()),
            float(group["peak_gbs"].median()),
            out / name,
            f"{device_id}: {variant}",
            lambda row: labels.get(
                (row["workload"], _args_key(row["workload_args"]), paper.platform_of(row["backend"]))
            ),
        )
        images.append(f"![roofline of {variant}]({name})")
    return lines + ["", *_library_roofs(measured), ""] + images + [""]


def _library_roofs(measured: pd.DataFrame) -> list[str]:
    """One line per probe key: the device's roofs and the library's own (the best of its runs)."""
    library = best_roofs(measured, lambda device_id, key: key)
    lines = []
    for key, roofs in sorted(library.items()):
        peers = measured[measured["probe"].map(lambda r: isinstance(r, dict) and r.get("key") == key)]
        conv = f", 1x1 convolutions {roofs['conv_gflops']:.1f} GFLOP/s" if roofs["conv_gflops"] else ""
        lines.append(
            f"- {key}: device roofs {peers['peak_gflops'].max():.1f} GFLOP/s and {peers['peak_gbs'].max():.1f} GB/s; "
            f"this library's own probe: matrix product {roofs['matmul_gflops']:.1f} GFLOP/s{conv}, copy "
            f"{roofs['bandwidth_gbs']:.1f} GB/s"
        )
    return lines


def _args_key(args: dict) -> tuple:
    return tuple(sorted((k, v) for k, v in args.items() if k != "hw"))


def _guideline_labels() -> dict[tuple, str]:
    """(workload, arguments, platform) -> a short label ("G1 1:1") for the x1 cells of Tables 1-4."""
    labels = {}
    for table in papers.TABLES:
        for platform in ("cpu", "gpu"):
            for row_label, column, args, _ in table.cells(platform):
                if column == table.columns[platform][0]:
                    labels[table.workload, _args_key(args), platform] = f"G{table.number} {row_label}"
    return labels


def _prediction_section(everything: pd.DataFrame, device_id: str, out: Path) -> list[str]:
    """The predictor, fitted on this device's calibration cells, scored on the other measured cells: the guideline
    blocks, the design-set networks and the held-out networks, each with the baselines fitted as it is."""
    raw = everything.to_dict("records")
    records = predict.at_calibration_speed(raw)
    everything = pd.DataFrame(records)
    models = predict.models_for(records)
    if not models:
        return []
    # the medians as measured: the rows as if no reference kernel had been timed beside them
    raw = [{**r, "relative_median": None} for r in raw]
    raw_models = predict.models_for(raw)
    calibration = predict.calibration_rows(records)
    tolerance = f"±{predict.TOLERANCE:.0%}"
    lines = [
        "## Predicted latency",
        "",
        "A per-backend model fitted on the calibration sweep's single-op cells only (`shufflebench calibrate`; "
        "shufflebench/predict.py): a fixed cost per call plus, per class of op in the graph the backend runs, a cost "
        "per op, per FLOP and per byte. A whole network runs slower than that sum of its ops (each op follows other "
        "kernels, weights and shapes, where a calibration cell repeats one op and a block one unit), so a network's "
        "prediction is the sum times a *network factor*, the median of measured / summed over the design networks; "
        "each design network is scored with the factor of the other families' networks, and the *sum of ops* rows "
        "show the networks without it. It is scored on cells it was not fitted on, in three sets: the blocks of "
        "Tables 1-4; the **design** networks (ShuffleNet v1/v2, MobileNet v1/v2), whose errors guided the op classes "
        "and the calibration shapes, so their scores are optimistic; and the **held-out** networks (every other "
        "network measured: ResNet, ResNeXt, EfficientNet, DenseNet, Xception), which set no prediction: where enough "
        "were measured, their errors set the width of a network's interval (the design networks' errors are too small "
        "for it), each checked against the interval of the other families'. The two baselines, latency linear in "
        "FLOPs and in FLOPs and MAC, are fitted on the same calibration cells and "
        f"scored on the same cells. A set's cells *measured to {tolerance}* are those whose own interval of the median "
        f"lies within {tolerance} of it: where few are, a score within {tolerance} says as much about this machine's "
        "noise as about the model. Cells that timed the noise floor's kernel between their samples are scored *at the "
        "calibration's speed*: their median in calls of that kernel times its median call over the calibration, which "
        "takes out how much faster or slower the machine ran while they were measured (the notes say by how much, and "
        "the scores on the medians as measured).",
        "",
        "| backend | set (cells) | model | Spearman rho | RMSPE | within 5% | within 10% | median error |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    notes, images = [], []
    for (backend, threads), model in sorted(models.items(), key=str):
        mine = everything[(everything["backend"] == backend) & everything["op_classes"].notna()]
        if threads is not None:
            mine = mine[mine["threads"] == threads]
        label = backend if threads is None else f"{backend}, {threads} thread{'s' if threads > 1 else ''}"
        rows = mine.to_dict("records")
        stale = [r for r in rows if r.get("sweep") != calibrate.NAME and not predict.known(r["op_classes"])]
        if stale:
            notes.append(f"{label}: {len(stale)} cells measured before the op classes last changed are left out.")
        sets = {
            "blocks": [r for r in rows if r["series"] in papers.GUIDELINE_WORKLOADS and predict.known(r["op_classes"])],
            "design": [r for r in rows if predict.is_network(r, design=True)],
            "held-out": [r for r in rows if predict.is_network(r, design=False)],
        }
        for name, cells in sets.items():
            if len(cells) < 3:
                continue
            precise = sum(predict.measured_to(r, predict.TOLERANCE) for r in cells)
            set_label = f"{name} ({len(cells)}, {precise} measured to {tolerance})"
            measured = [r["median_ms"] for r in cells]
            candidates = {
                "predictor": [model.predict_row(r) for r in cells],
                **({"sum of ops": [model.predict(r["op_classes"]) for r in cells]} if name != "blocks" else {}),
                **{b: predict.baseline(calibration[backend, threads], cells, c) for b, c in predict.BASELINES.items()},
            }
            for candidate, predicted in candidates.items():
                v = predict.validate(predicted, measured)
                lines.append(
                    f"| {label} | {set_label} | {candidate} | {v.spearman:.2f} | {v.rmspe:.1%} | "
                    f"{v.within_5:.0%} | {v.within_10:.0%} | {v.median_error:.1%} |"
                )
        held = sets["held-out"]
        interval = model.interval_for(network=True)
        coverage = "no held-out network was measured to check it on"
        if held:
            inside = predict.held_out_inside(model, held)
            low, high = predict.observed_coverage(inside, len(held))
            stated = predict.coverage(interval.n)
            agrees = "holds" if low <= stated <= high else "leaves out"
            each = ", each against the interval of the other families'," if model.interval_from_held_out else ""
            coverage = (
                f"on the held-out networks{each} it held {inside} of {len(held)} ({inside / len(held):.0%}; 95% "
                f"interval {low:.0%} to {high:.0%}, which {agrees} the {stated:.0%} stated)"
            )
        if model.factor_without:
            notes.append(
                f"{label}: network factor x{model.network_factor:.2f}, the median of {len(model.factor_without)} "
                f"design networks' measured / summed (x{min(model.factor_without.values()):.2f} to "
                f"x{max(model.factor_without.values()):.2f} with one family left out)."
            )
        notes.append(
            f"{label}: the {predict.LEVEL:.0%} prediction interval of a network, from {interval.source}, is "
            f"x{interval.low:.2f} to x{interval.high:.2f} the prediction, and holds a new cell like those "
            f"{interval.n} with probability {predict.coverage(interval.n):.0%} (the order statistics of "
            f"{interval.n} ratios round {predict.LEVEL:.0%} up); {coverage}. Calibrated {model.cache}."
        )
        notes += _speed_notes(label, rows, raw_models.get((backend, threads)), raw)
        blocks, cell = sets["blocks"], model.interval_for(network=False)
        if blocks and cell is not interval:
            held_blocks = sum(_within(cell.around(model.predict_row(r)), r["median_ms"]) for r in blocks)
            notes.append(
                f"{label}: a block's {predict.LEVEL:.0%} interval, from {cell.source}, is x{cell.low:.2f} to "
                f"x{cell.high:.2f} ({predict.coverage(cell.n):.0%} for cells like those); it held {held_blocks} of "
                f"{len(blocks)} blocks ({held_blocks / len(blocks):.0%})."
            )
        cells = mine[mine["series"].isin([*papers.GUIDELINE_WORKLOADS, "networks"]) & (mine["sweep"] != calibrate.NAME)]
        cells = cells[cells["op_classes"].map(predict.known)]
        if len(cells) >= 3:
            cells = cells.assign(predicted_ms=[model.predict_row(r) for r in cells.to_dict("records")])
            name = f"predicted_vs_measured_{_file(backend)}.png"
            figures.predicted_vs_measured(cells, out / name, f"{device_id}: {label}\npredicted on cells not fitted on")
            images.append(f"![predicted against measured latency on {label}]({name})")
    return lines + [""] + [f"- {n}" for n in notes] + ["", *images, ""]


def _speed_notes(
    label: str, rows: list[dict[str, Any]], raw_model: predict.Model | None, raw: list[dict[str, Any]]
) -> list[str]:
    """How far the scored cells of one backend were moved to the calibration's speed, and the networks' scores on
    their medians as measured (``raw_model`` fitted on those)."""
    scored = [r for r in rows if r.get("sweep") != calibrate.NAME]
    scales = [r["speed_scale"] for r in scored if predict.present(r.get("speed_scale"))]
    if not scales or raw_model is None:
        return []
    as_measured = {r["cell"]: r for r in raw}
    scores = []
    for design in (True, False):
        cells = [as_measured[r["cell"]] for r in rows if predict.is_network(r, design)]
        if cells:
            v = predict.validate([raw_model.predict_row(r) for r in cells], [r["median_ms"] for r in cells])
            scores.append(f"{'design' if design else 'held-out'} networks {v.within_10:.0%}")
    return [
        f"{label}: {len(scales)} scored cells timed the noise floor's kernel beside them; at the calibration's speed "
        f"their medians moved by x{min(scales):.2f} to x{max(scales):.2f} (median x{np.median(scales):.2f}). On the "
        f"medians as measured, with the factor and fit from those too, the predictor put {' and '.join(scores)} "
        f"within ±{predict.TOLERANCE:.0%}."
    ]


def _within(interval: tuple[float, float], value: float) -> bool:
    return interval[0] <= value <= interval[1]


def _node_section(nodes: pd.DataFrame, meta: dict, device_id: str, out: Path) -> list[str]:
    if nodes.empty or not (nodes["device_id"] == device_id).any():
        return []
    roofs = probe.device_roofs(meta.get("probe") or {}, "ort-cpu/threads=1")
    if not roofs:
        return []
    mine = nodes[nodes["device_id"] == device_id]
    network = mine["network"].iloc[0]
    name = "node_roofline.png"
    figures.node_roofline(
        mine[mine["network"] == network],
        roofs["compute_gflops"],
        roofs["bandwidth_gbs"],
        out / name,
        f"{device_id}: {network} on ort-cpu, opt_level all, one point per node (size: time)",
    )
    by_class = mine.groupby("op_class")["time_us"].sum().sort_values(ascending=False)
    shares = ", ".join(f"{k} {100 * v / by_class.sum():.0f}%" for k, v in by_class.items())
    return [
        "## Per-node roofline",
        "",
        f"{network} as ONNX Runtime ran it (one thread, all optimisations): each node's time from the runtime's "
        f"profile, joined with its FLOPs and bytes counted on the optimised graph. Time by class: {shares}.",
        "",
        f"![per-node roofline]({name})",
        "",
    ]


def _breakdown_section(breakdown: pd.DataFrame, device_id: str, out: Path) -> list[str]:
    if breakdown.empty or not (breakdown["device_id"] == device_id).any():
        return []
    mine = breakdown[breakdown["device_id"] == device_id]
    table = mine.pivot_table(index=["network", "source"], columns="category", values="percent", aggfunc="first")
    table = table.reindex(columns=list(CATEGORIES), fill_value=0.0).fillna(0.0)
    for key, values in papers.FIGURE2.items():
        table.loc[key, :] = [values.get(c, 0.0) for c in CATEGORIES]
    table = table.sort_index()
    table.index = [f"{n}: {s}" for n, s in table.index]
    name = "breakdown.png"
    figures.breakdown_bars(table, out / name, f"{device_id}: share of run time by op category (Figure 2)")
    lines = [
        "## Time by op category (Figure 2)",
        "",
        "Shares of profiled time (profiling adds overhead, so only percentages are shown). ONNX Runtime at "
        "optimisation level `disable` shows every op as exported; at `all`, batch norm folds into Conv and "
        "activations fuse into it, which is what actually runs. torch-cpu rows are self CPU times, torch-cuda rows the "
        "self device time of each op's kernels.",
        "",
        f"![time by op category]({name})",
        "",
        "| network and source | " + " | ".join(CATEGORIES) + " |",
        "|---|" + "---:|" * len(CATEGORIES),
    ]
    for label, values in table.iterrows():
        lines.append(f"| {label} | " + " | ".join(f"{v:.1f}" for v in values) + " |")
    return lines + [""]


def _noise_section(rows: pd.DataFrame) -> list[str]:
    """Noise grouped by cause, each with the one thing to do and a count, the cells under a fold; then the notes on
    how cells were measured (not noise), then errors and skipped cells."""
    lines = ["## Noise, errors and skipped cells", ""]
    measured = ok_rows(rows)  # a cell measured by two sweeps counts once, as its latest row
    by_cause: dict[str, list[tuple[str, str]]] = {}
    for _, r in measured.iterrows():
        for reason in stats.reasons_of(r["noise"] if isinstance(r["noise"], str) else None):
            by_cause.setdefault(stats.cause_of(reason), []).append((r["cell"], reason))
    causes = [c for c in [*stats.CAUSES, "other"] if c in by_cause]
    noisy = {cell for c in causes for cell, _ in by_cause[c]}
    if noisy:
        lines += [
            f"{len(noisy)} of {len(measured)} measured cells are noisy, by cause (a cell may have several):",
            "",
            "| cause | cells | what to do |",
            "|---|---:|---|",
        ]
        for c in causes:
            advice = stats.CAUSES[c][1] if c in stats.CAUSES else "read the reason beside each cell"
            lines.append(f"| {c} | {len({cell for cell, _ in by_cause[c]})} | {advice} |")
        lines += ["", "<details><summary>The noisy cells, by cause</summary>", ""]
        for c in causes:
            lines += [f"**{c}**", ""] + [f"- `{cell}`: {reason}" for cell, reason in by_cause[c]] + [""]
        lines += ["</details>", ""]
    else:
        lines += ["No measured cell is noisy.", ""]
    for c, (_, advice) in stats.NOTES.items():
        if c in by_cause:
            lines += [f"Note: {len({cell for cell, _ in by_cause[c]})} cells: {c}; {advice}.", ""]
    for status in ("error", "skipped"):
        group = rows[rows["status"] == status]
        if len(group):
            lines += [f"{len(group)} cells {status}:", ""]
            for reason, cells in group.groupby("error"):
                lines.append(f"- {reason} ({len(cells)} cells, e.g. `{cells.iloc[0]['cell']}`)")
            lines.append("")
    return lines


def _peak_memory(row: pd.Series) -> str:
    """Resident peak, and the device's where there is one; "-" for rows measured before memory was recorded."""
    values = [row.get(c) for c in ("peak_rss_mib", "peak_device_mib")]
    known = [f"{v:,.0f}" for v in values if v is not None and pd.notna(v)]
    return " / ".join(known) or "-"


def _file(variant: str) -> str:
    return variant.replace(":", "_").replace(" ", "_").replace("=", "-").replace(",", "_")
