"""The report's figures (matplotlib, written as PNG): latency against FLOPs and MAC, speed against MFLOPs for the
network families (Figure 1 analogue), and time shares by op category (Figure 2 analogue)."""

from __future__ import annotations

from pathlib import Path

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from shufflebench.breakdown import CATEGORIES

SERIES_COLORS = {
    "g1": "tab:blue",
    "g2": "tab:orange",
    "g3": "tab:green",
    "g4": "tab:red",
    "networks": "tab:purple",
    "other": "tab:gray",
}
CATEGORY_COLORS = {
    "Conv": "tab:blue",
    "Elemwise": "tab:orange",
    "Data": "tab:green",
    "Shuffle": "tab:red",
    "Other": "tab:gray",
}
MIN_FIT_SPAN = 1.5  # fit a line only when the cost spans this factor (the guideline series hold FLOPs constant)
X_AXES = [("flops", 1e6, "FLOPs (millions of multiply-adds)"), ("mac_bytes", 1e6, "MAC (MB read + written)")]
RUNTIME_AXIS = ("mac_runtime_bytes", 1e6, "MAC of the graph ONNX Runtime ran (MB)")


def pyplot() -> Any:
    """matplotlib's pyplot, drawing to files only (the Agg backend), chosen when a figure is drawn, not at import."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plain_log_ticks(ax: Any) -> None:
    """Log axes labelled 20, 50, 100 rather than 2x10^1."""
    import matplotlib.ticker

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(
            matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else "")
        )


def spearman(x: pd.Series, y: pd.Series) -> float:
    """Rank correlation (Spearman's rho); NaN with fewer than two points."""
    return float(stats.spearmanr(x, y).statistic) if len(x) >= 2 else float("nan")


def loglog_fit(x: pd.Series, y: pd.Series) -> tuple[float, float]:
    """Slope and intercept of log10(y) = slope * log10(x) + intercept, least squares."""
    slope, intercept = np.polyfit(np.log10(x), np.log10(y), 1)
    return float(slope), float(intercept)


def latency_vs_cost(ok: pd.DataFrame, variant: str, path: Path, title: str) -> dict[str, float]:
    """Latency against FLOPs, against MAC and, for ONNX Runtime, against the MAC of the graph it ran (one panel each),
    points coloured by series; returns the correlations."""
    plt = pyplot()
    data = ok[(ok["variant"] == variant) & (ok["flops"] > 0)]
    columns = X_AXES + (
        [RUNTIME_AXIS] if "mac_runtime_bytes" in data and data["mac_runtime_bytes"].notna().any() else []
    )
    fig, axes = plt.subplots(1, len(columns), figsize=(6 * len(columns), 5), sharey=True)
    stats = {}
    for ax, (column, scale, label) in zip(axes, columns):
        data = data[data[column].notna()] if column == RUNTIME_AXIS[0] else data
        x, y = data[column] / scale, data["median_ms"]
        _scatter_series(ax, data.assign(x=data[column] / scale), "x", "median_ms", size=36)
        rho = spearman(x, y)
        stats[f"rho_{column}"] = rho
        if len(data) >= 3 and x.max() >= MIN_FIT_SPAN * x.min():
            slope, intercept = loglog_fit(x, y)
            grid = np.geomspace(x.min(), x.max(), 50)
            ax.plot(
                grid,
                10**intercept * grid**slope,
                color="black",
                linewidth=1,
                linestyle="--",
                label=f"fit: latency ~ x^{slope:.2f}",
            )
            stats[f"slope_{column}"] = slope
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log_ticks(ax)
        ax.set_xlabel(label)
        ax.set_title(f"Spearman rho = {rho:.2f} (n = {len(data)})", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("median latency (ms, log scale)")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return stats


def speed_vs_mflops(ok: pd.DataFrame, variant: str, unit_column: str, unit: str, path: Path, title: str) -> None:
    """Figure 1 analogue: one line per network family, speed against MFLOPs."""
    plt = pyplot()
    data = ok[(ok["variant"] == variant) & (ok["series"] == "networks")]
    fig, ax = plt.subplots(figsize=(7, 5))
    for workload, group in data.groupby("workload"):
        group = group.sort_values("flops")
        ax.plot(group["flops"] / 1e6, group[unit_column], marker="o", label=workload)
        for _, row in group.iterrows():
            args = row["workload_args"]
            tag = f"{args.get('width', '')}x" + (f"@{args['resolution']}" if args.get("resolution", 224) != 224 else "")
            ax.annotate(
                tag, (row["flops"] / 1e6, row[unit_column]), fontsize=7, xytext=(4, 4), textcoords="offset points"
            )
    ax.set_xlabel("FLOPs (millions of multiply-adds)")
    ax.set_ylabel(f"speed ({unit}, higher is faster)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def breakdown_bars(shares: pd.DataFrame, path: Path, title: str) -> None:
    """Figure 2 analogue: one stacked bar per (network, source), percent of time per category."""
    plt = pyplot()
    labels = list(shares.index)
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(labels) + 1.5))
    left = np.zeros(len(labels))
    for category in CATEGORIES:
        values = shares[category].to_numpy(dtype=float)
        ax.barh(labels, values, left=left, color=CATEGORY_COLORS[category], label=category)
        for i, v in enumerate(values):
            if v >= 6:
                ax.text(left[i] + v / 2, i, f"{v:.0f}", ha="center", va="center", fontsize=7, color="white")
        left += values
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of run time (%)")
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10)
    ax.legend(ncol=5, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.02 + 0.3 / len(labels)))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def roofline(data: pd.DataFrame, peak_gflops: float, peak_gbs: float, path: Path, title: str, label: Any) -> None:
    """Attained GFLOP/s against arithmetic intensity, under the device's two roofs; points coloured by series and,
    where ``label(row)`` gives text, labelled."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    data = data[data["arithmetic_intensity"].notna() & (data["attained_gflops"] > 0)]
    _scatter_series(ax, data, "arithmetic_intensity", "attained_gflops")
    for _, row in data.iterrows():
        text = label(row)
        if text:
            ax.annotate(
                text,
                (row["arithmetic_intensity"], row["attained_gflops"]),
                fontsize=6,
                xytext=(3, 3),
                textcoords="offset points",
            )
    _roofs(ax, data["arithmetic_intensity"], peak_gflops, peak_gbs)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def node_roofline(nodes: pd.DataFrame, peak_gflops: float, peak_gbs: float, path: Path, title: str) -> None:
    """One network's nodes as ONNX Runtime ran them (profile times joined with node costs), under the roofs."""
    plt = pyplot()
    nodes = nodes[(nodes["flops"] > 0) & (nodes["time_us"] > 0) & (nodes["mac_bytes"] > 0)]
    intensity = 2 * nodes["flops"] / nodes["mac_bytes"]
    attained = 2 * nodes["flops"] / (nodes["time_us"] * 1e3)  # GFLOP/s
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for name, group in nodes.assign(intensity=intensity, attained=attained).groupby("op_class"):
        ax.scatter(
            group["intensity"],
            group["attained"],
            s=12 + group["time_us"] / group["time_us"].max() * 80,
            alpha=0.7,
            label=name,
        )
    _roofs(ax, intensity, peak_gflops, peak_gbs)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _roofs(ax: Any, intensity: pd.Series, peak_gflops: float, peak_gbs: float) -> None:
    low = min(float(intensity.min()), peak_gflops / peak_gbs) / 2
    high = max(float(intensity.max()), peak_gflops / peak_gbs) * 2
    grid = np.geomspace(low, high, 200)
    ax.plot(
        grid,
        np.minimum(peak_gflops, grid * peak_gbs),
        color="black",
        linewidth=1.2,
        label=f"roofs: {peak_gflops:.0f} GFLOP/s, {peak_gbs:.0f} GB/s (probe)",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log_ticks(ax)
    ax.set_xlabel("arithmetic intensity (FLOP per byte moved)")
    ax.set_ylabel("attained GFLOP/s (2 FLOP per multiply-add)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def predicted_vs_measured(frame: pd.DataFrame, path: Path, title: str) -> None:
    """Predicted against measured latency (columns ``predicted_ms``, ``median_ms``, ``series``), log axes, the +-10%
    band around the diagonal."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 6))
    _scatter_series(ax, frame, "median_ms", "predicted_ms", size=28)
    low = min(frame["median_ms"].min(), frame["predicted_ms"].min()) / 1.3
    high = max(frame["median_ms"].max(), frame["predicted_ms"].max()) * 1.3
    grid = np.geomspace(low, high, 50)
    ax.plot(grid, grid, color="black", linewidth=1)
    ax.fill_between(grid, grid * 0.9, grid * 1.1, color="gray", alpha=0.2, label="within 10%")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log_ticks(ax)
    ax.set_xlabel("measured median latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _scatter_series(ax: Any, data: pd.DataFrame, x: str, y: str, size: int = 30) -> None:
    """One scatter per series, in the series' colour."""
    for series, group in data.groupby("series"):
        ax.scatter(
            group[x],
            group[y],
            label=series,
            s=size,
            alpha=0.85,
            color=SERIES_COLORS.get(series, "black"),
            edgecolors="white",
            linewidths=0.5,
        )
