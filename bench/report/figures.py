"""The report's figures (matplotlib, written as PNG): latency against FLOPs and MAC, speed against MFLOPs for the
network families (Figure 1 analogue), and time shares by op category (Figure 2 analogue)."""

from __future__ import annotations

from pathlib import Path

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from bench.breakdown import CATEGORIES

SERIES_COLORS = {"g1": "tab:blue", "g2": "tab:orange", "g3": "tab:green", "g4": "tab:red", "networks": "tab:purple"}
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
        for series, group in data.groupby("series"):
            ax.scatter(
                group[column] / scale,
                group["median_ms"],
                label=series,
                s=36,
                alpha=0.85,
                color=SERIES_COLORS.get(series, "black"),
                edgecolors="white",
                linewidths=0.5,
            )
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
