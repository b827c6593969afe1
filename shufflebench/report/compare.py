"""`shufflebench compare`: the same cells on several devices, side by side.

Cells are joined on their id (workload, arguments, backend, settings), which does not name the device. Speed
relative to the baseline device is baseline median / device median per cell (above 1: faster than the baseline),
summarised by the geometric mean over the cells both measured (methodology R4.4). Devices marked emulated are listed
but their timings are not meaningful, so the default baseline is the first device that was not emulated.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from scipy import stats

from shufflebench import device
from shufflebench.errors import UserError
from shufflebench.report import figures, paper
from shufflebench.report.load import Loaded, ok_rows


def write_compare(loaded: Loaded, out: Path, baseline: str | None = None) -> Path:
    ok = ok_rows(loaded.rows)
    devices = sorted(loaded.devices)
    if len(devices) < 2:
        raise UserError(f"compare needs results of at least two devices, got {len(devices)}: {', '.join(devices)}")
    measured = [d for d in devices if not loaded.devices[d].get("emulated")]
    baseline = baseline or (measured or devices)[0]
    if baseline not in devices:
        raise UserError(f"--baseline {baseline!r} is not among the devices: {', '.join(devices)}")
    out.mkdir(parents=True, exist_ok=True)
    medians = ok.pivot_table(index="cell", columns="device_id", values="median_ms", aggfunc="first")
    medians = medians.reindex(columns=devices)
    labels = {d: d + (" (emulated)" if loaded.devices[d].get("emulated") else "") for d in devices}

    lines = [
        "# shufflebench compare",
        "",
        f"Baseline: `{baseline}`. Speed = baseline median / device median "
        "(above 1: faster than the baseline). Timings of emulated devices are not meaningful.",
        "",
    ]
    if (medians.notna().sum(axis=1) >= 2).any():
        figure = "speed_vs_baseline.png"
        _speed_figure(medians, baseline, labels, out / figure)
        lines += [f"![speed relative to the baseline]({figure})", ""]
    else:
        lines += ["No figure: no cell was measured on two devices.", ""]
    lines += [f"> {w}" for w in loaded.warnings] + ([""] if loaded.warnings else [])
    lines += [
        "## Devices",
        "",
        "| device | arch | microarchitecture | probe | emulated | cells measured | left out (error / skipped) | "
        "common with baseline | geomean speed |",
        "|---|---|---|---|---|---:|---:|---:|---:|",
    ]
    for d in devices:
        common = medians[[baseline, d]].dropna() if d != baseline else medians[[d]].dropna()
        speed = common[baseline] / common[d] if d != baseline else pd.Series(1.0, index=common.index)
        geomean = f"{stats.gmean(speed):.2f}x" if len(common) else "-"
        meta = loaded.devices[d]
        status = loaded.rows.loc[loaded.rows["device_id"] == d, "status"].value_counts()
        lines.append(
            f"| `{d}` | {meta.get('arch', '?')} | {_microarchitecture(meta)} | {_probe(meta)} | "
            f"{'yes' if meta.get('emulated') else 'no'} | "
            f"{medians[d].notna().sum()} | {status.get('error', 0)} / {status.get('skipped', 0)} | {len(common)} | "
            f"{geomean} |"
        )

    lines += [
        "",
        "## Does latency follow FLOPs or MAC?",
        "",
        "| device | cells | rho (FLOPs) | rho (MAC) |",
        "|---|---:|---:|---:|",
    ]
    for d in devices:
        mine = ok[(ok["device_id"] == d) & (ok["flops"] > 0)]
        if len(mine) >= 3:
            lines.append(
                f"| {labels[d]} | {len(mine)} | {figures.spearman(mine['flops'], mine['median_ms']):.2f} | "
                f"{figures.spearman(mine['mac_bytes'], mine['median_ms']):.2f} |"
            )

    verdicts = []
    for d in devices:
        for r in paper.build_tables(ok[ok["device_id"] == d]):
            verdicts.append(
                {
                    "table": f"Table {r.table.number} ({r.table.workload})",
                    "backend": r.backend,
                    "device": labels[d],
                    "verdict": r.verdict,
                }
            )
    if verdicts:
        v = (
            pd.DataFrame(verdicts)
            .pivot_table(index=["table", "backend"], columns="device", values="verdict", aggfunc="first")
            .fillna("-")
        )
        lines += [
            "",
            "## ShuffleNet V2 guidelines per device",
            "",
            "| table | backend | " + " | ".join(v.columns) + " |",
            "|---|---|" + "---|" * len(v.columns),
        ]
        for (table, backend), row in v.iterrows():
            lines.append(f"| {table} | {backend} | " + " | ".join(row) + " |")

    lines += [
        "",
        "## Cells",
        "",
        "| cell | "
        + " | ".join(f"{labels[d]} ms" for d in devices)
        + " | "
        + " | ".join(f"speed {labels[d]}" for d in devices if d != baseline)
        + " |",
        "|---|" + "---:|" * (2 * len(devices) - 1),
    ]
    for cell, row in medians.sort_index().iterrows():
        ms = ["-" if pd.isna(row[d]) else f"{row[d]:.3f}" for d in devices]
        speed = [
            "-" if pd.isna(row[d]) or pd.isna(row[baseline]) else f"{row[baseline] / row[d]:.2f}x"
            for d in devices
            if d != baseline
        ]
        lines.append(f"| `{cell}` | " + " | ".join(ms + speed) + " |")

    index = out / "index.md"
    index.write_text("\n".join(lines) + "\n")
    return index


def _microarchitecture(meta: dict) -> str:
    """The core as the fingerprint names it; results from before machine keys say so, as another machine."""
    cpu = meta.get("cpu")
    if not cpu:
        return "unknown: recorded before machine keys, treat as another machine"
    where = f"family {cpu['family']} model {cpu['model']}" if "family" in cpu else f"part 0x{cpu.get('part', 0):x}"
    return f"{cpu.get('microarchitecture') or 'unknown'} ({where}), key `{meta.get('machine_key')}`"


def _probe(meta: dict) -> str:
    return "; ".join(f"{k}: {device.roofs_text(v)}" for k, v in (meta.get("probe") or {}).items()) or "-"


def _speed_figure(medians: pd.DataFrame, baseline: str, labels: dict[str, str], path: Path) -> None:
    plt = figures.pyplot()
    others = [d for d in medians.columns if d != baseline]
    fig, ax = plt.subplots(figsize=(7, 5))
    for d in others:
        common = medians[[baseline, d]].dropna()
        ax.scatter(common[baseline], common[d], label=labels[d], s=28, alpha=0.8)
    values = medians.stack()
    if len(values):
        lo, hi = values.min(), values.max()
        ax.plot([lo, hi], [lo, hi], color="black", linestyle="--", linewidth=1, label="same speed")
    ax.set_xscale("log")
    ax.set_yscale("log")
    figures.plain_log_ticks(ax)
    ax.set_xlabel(f"median latency on {labels[baseline]} (ms)")
    ax.set_ylabel("median latency on the other device (ms)")
    ax.set_title("each point is one cell measured on both devices", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
