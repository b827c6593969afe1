"""`shufflebench site`: the results as a static site that opens from ``file://``, with no server and no network.

Pages (``out/``):

- ``index.html``: the devices, one row per device id grouped by machine key: the fingerprint, the probes' roofs,
  drift and health flags, the runtimes, how many cells of each sweep;
- ``devices/<id>/index.html``: latency against FLOPs, MAC and runtime MAC (interactive, log axes, a point per measured
  cell whose hover names it), then the device's Markdown report (Tables 1-4 and their verdicts, the Table 8 networks,
  the roofline, the predictor, Figure 2, the noisy, failed and skipped cells) rendered as HTML;
- ``compare/index.html``: ``shufflebench compare`` of every device, the first given as the baseline (speed ratio per
  common cell, the guideline verdicts per device and backend);
- ``history.html``: device ids that share a machine key (the same hardware under other runtime versions), per cell.

Every page has backend, sweep and device filters, applied in the browser: a table row whose backend, sweep or
device (folder) column holds another value is hidden, and so is a column whose heading names another backend or
device; a device page's charts redraw with the backend and sweep chosen, and its device filter opens the page of the
device chosen. The tables are the report's own (the
Markdown report and compare render them; this renders their Markdown), so no table is computed twice. The rows are
written beside the pages as ``data/rows.json`` for other tools, and as ``data/rows.js`` for the pages (a browser does
not let a page on ``file://`` read a JSON file); the charts use plotly's own ``plotly.min.js``, written into the folder.
"""

from __future__ import annotations

import html
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from shufflebench import device, probe
from shufflebench.report import compare, index
from shufflebench.report.load import Loaded, device_folders, load, ok_rows

# The columns of each row in data/rows.json: the cell, its device, how fast and how sure, its costs, its flags.
ROW_COLUMNS = (
    "cell", "device_id", "sweep", "status", "error", "workload", "workload_args", "backend", "median_ms", "ci_low_ms",
    "ci_high_ms", "flops", "mac_bytes", "mac_runtime_bytes", "is_noisy", "noise", "finished_at",
)  # fmt: skip
CHARTS = (
    ("flops", "FLOPs (multiply-adds)"),
    ("mac_bytes", "MAC (bytes)"),
    ("mac_runtime_bytes", "runtime MAC (bytes)"),
)


@dataclass(frozen=True)
class Filters:
    """The values a page's backend, sweep and device filters offer."""

    backends: list[str]
    sweeps: list[str]
    devices: list[str]


@dataclass(frozen=True)
class Site:
    folder: Path
    pages: int
    bytes: int
    seconds: float


def build(paths: list[Path], out: Path) -> Site:
    """Write the site of the results folders in ``paths`` into ``out`` (replacing what a previous build wrote)."""
    started = time.perf_counter()
    loaded = load(paths)
    if out.exists():
        shutil.rmtree(out)
    (out / "data").mkdir(parents=True)
    _write_plotly(out)
    records = _records(loaded)
    (out / "data" / "rows.json").write_text(json.dumps(records))
    (out / "data" / "rows.js").write_text("window.SHUFFLEBENCH_ROWS = " + json.dumps(records) + ";\n")
    ids = sorted(loaded.devices) or sorted(loaded.rows["device_id"].unique())
    everywhere = Filters(_values(loaded.rows, "backend"), _values(loaded.rows, "sweep"), ids)
    pages = {"index.html": _devices_page(loaded, ids, everywhere)}
    for device_id in ids:
        folder = out / "devices" / device_id
        report = index.write_report(loaded, device_id, folder)
        pages[f"devices/{device_id}/index.html"] = _device_page(device_id, report.read_text(), loaded, ids)
        report.unlink()  # the page holds it now; its figures stay beside the page
    folders = device_folders(paths)
    if len(folders) > 1:
        comparison = compare.compare(folders, out / "compare")
        pages["compare/index.html"] = _page("compare", "..", _markdown(comparison.index.read_text()), everywhere)
        comparison.index.unlink()
    else:
        (out / "compare").mkdir()
        body = "<p>One results folder: nothing to compare.</p>"
        pages["compare/index.html"] = _page("compare", "..", body, everywhere)
    pages["history.html"] = _history_page(loaded, everywhere)
    for name, text in pages.items():
        (out / name).write_text(text)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return Site(out, len(pages), size, time.perf_counter() - started)


def _write_plotly(out: Path) -> None:
    from plotly.offline import get_plotlyjs

    (out / "plotly.min.js").write_text(get_plotlyjs())


def _records(loaded: Loaded) -> list[dict[str, Any]]:
    rows = loaded.rows.sort_values("finished_at").drop_duplicates(["device_id", "cell"], keep="last")
    return [{c: index.plain(r.get(c)) for c in ROW_COLUMNS} for _, r in rows.iterrows()]


def _markdown(text: str) -> str:
    import markdown

    return markdown.markdown(text, extensions=["tables", "fenced_code", "md_in_html"])


def _values(rows: pd.DataFrame, column: str) -> list[str]:
    return sorted(rows[column].dropna().unique())


def _devices_page(loaded: Loaded, ids: list[str], filters: Filters) -> str:
    rows = loaded.rows
    lines = [
        "# shufflebench results",
        "",
        "One row per device id, grouped by machine key (the hardware; a new runtime on it is a new device id). "
        "[Compare the devices](compare/index.html) or see each machine's [history](history.html).",
        "",
        "| machine key | device | fingerprint | roofs (probe) | flagged (drift, health) | runtimes | cells per sweep |",
        "|---|---|---|---|---:|---|---|",
    ]
    for device_id in sorted(ids, key=lambda i: (loaded.devices.get(i, {}).get("machine_key") or "", i)):
        meta = loaded.devices.get(device_id, {})
        mine = rows[rows["device_id"] == device_id]
        ok = mine[mine["status"] == "ok"]
        flagged = int(ok["health"].notna().sum()) if "health" in ok else 0
        drifted = int(ok["probe"].map(lambda p: isinstance(p, dict) and p.get("drift", 0) > probe.PROBE_DRIFT).sum())
        sweeps = ", ".join(f"{s} {n}" for s, n in mine.groupby("sweep")["cell"].nunique().items())
        roofs = "; ".join(f"{k}: {device.roofs_text(r)}" for k, r in (meta.get("probe") or {}).items()) or "-"
        runtimes = ", ".join(f"{k} {v}" for k, v in (meta.get("versions") or {}).items()) or "-"
        lines.append(
            f"| `{meta.get('machine_key', '-')}` | [`{device_id}`](devices/{device_id}/index.html) | "
            f"{_fingerprint(meta)} | {roofs} | {drifted} drift, {flagged} health | {runtimes} | {sweeps} |"
        )
    return _page("devices", ".", _markdown("\n".join(lines)), filters)


def _fingerprint(meta: dict[str, Any]) -> str:
    """The cpu, core and gpu lines of ``shufflebench device``, for a table cell."""
    if not meta.get("cpu_model"):
        return "-"
    lines = [line.split(None, 1) for line in device.describe(meta).splitlines()]
    return "<br>".join(html.escape(text) for label, text in lines if label in ("cpu", "core", "gpu"))


def _device_page(device_id: str, report: str, loaded: Loaded, ids: list[str]) -> str:
    rows = loaded.rows[loaded.rows["device_id"] == device_id]
    charts = "".join(
        f'<div class="chart" id="chart-{column}" data-column="{column}" data-title="{title}"></div>'
        for column, title in CHARTS
    )
    body = (
        '<h2>Latency against cost</h2><p>One point per measured cell; hover for its id.</p><div class="charts">'
        + charts
        + "</div>"
        + _markdown(report)
    )
    filters = Filters(_values(rows, "backend"), _values(rows, "sweep"), ids)
    return _page(device_id, "../..", body, filters, device_id)


def _filters(filters: Filters, device_id: str) -> str:
    def select(name: str, values: list[str], chosen: str = "") -> str:
        options = "".join(
            f'<option value="{html.escape(v)}"{" selected" if v == chosen else ""}>{html.escape(v)}</option>'
            for v in values
        )
        return f'<label>{name} <select id="filter-{name}"><option value="">all</option>{options}</select></label> '

    return (
        f'<p class="filters">{select("backend", filters.backends)}{select("sweep", filters.sweeps)}'
        f"{select('device', filters.devices, device_id)}</p>"
    )


def _history_page(loaded: Loaded, filters: Filters) -> str:
    ok = ok_rows(loaded.rows)
    keys = {i: m.get("machine_key") for i, m in loaded.devices.items()}
    ok = ok.assign(machine_key=ok["device_id"].map(keys))
    lines = [
        "# History",
        "",
        "Device ids that share a machine key: the same hardware under other runtime versions, oldest first (by "
        "their first measurement). A cell that got slower after an upgrade shows as a step along its row.",
        "",
    ]
    shown = False
    for key, group in ok.dropna(subset=["machine_key"]).groupby("machine_key"):
        order = group.groupby("device_id")["finished_at"].min().sort_values().index.tolist()
        if len(order) < 2:
            continue
        shown = True
        table = group.pivot_table(index=["cell", "backend"], columns="device_id", values="median_ms", aggfunc="last")
        table = table[order].dropna(thresh=2)
        lines += [f"## `{key}`", "", "| cell | backend | " + " | ".join(f"`{d}` ms" for d in order) + " |"]
        lines.append("|---|---|" + "---:|" * len(order))
        for (cell, backend), values in table.iterrows():
            cells = ["-" if pd.isna(v) else f"{v:.3f}" for v in values]
            lines.append(f"| `{cell}` | {backend} | " + " | ".join(cells) + " |")
        lines.append("")
    if not shown:
        lines.append("No machine key has more than one device id yet: measure again after a runtime upgrade.")
    return _page("history", ".", _markdown("\n".join(lines)), filters)


def _page(title: str, root: str, body: str, filters: Filters, device_id: str = "") -> str:
    """A page with the site's navigation and filters; ``root`` is the relative path to the site's top folder."""
    nav = (
        f'<nav><a href="{root}/index.html">devices</a> · <a href="{root}/compare/index.html">compare</a> · '
        f'<a href="{root}/history.html">history</a></nav>'
    )
    charts = (
        f'<script src="{root}/plotly.min.js"></script><script src="{root}/data/rows.js"></script>'
        f"<script>{CHARTS_SCRIPT}</script>"
        if device_id
        else ""
    )
    scripts = (
        f"<script>const ROOT = {json.dumps(root)}, DEVICE = {json.dumps(device_id)};</script>"
        f"<script>{FILTER_SCRIPT}</script>{charts}"
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>shufflebench: {html.escape(title)}'
        f"</title><style>{STYLE}</style></head><body>{nav}<main>{_filters(filters, device_id)}{body}</main>"
        f"{scripts}</body></html>\n"
    )


STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 2rem 2rem; color: #222; }
nav { padding: 0.8rem 0; border-bottom: 1px solid #ddd; margin-bottom: 1rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.85rem; }
th, td { border: 1px solid #ddd; padding: 0.2rem 0.5rem; }
img { max-width: 48%; }
.charts { display: flex; flex-wrap: wrap; }
.chart { width: 33%; min-width: 380px; height: 380px; }
pre { background: #f6f6f6; padding: 0.5rem; overflow-x: auto; }
"""

# Every page: the filters applied to its tables. A row is hidden where its backend, sweep or device (folder) column
# holds another value than the one chosen, a column where its heading names another backend or device. On a device
# page the device filter opens the chosen device's page instead.
FILTER_SCRIPT = """
const FILTERS = ["backend", "sweep", "device"];
function chosen(name) { return document.getElementById("filter-" + name).value; }
function offered(name) {
  return [...document.getElementById("filter-" + name).options].map(o => o.value).filter(v => v);
}
function matches(name, text) { return name === "device" ? text.includes(chosen(name)) : text === chosen(name); }
function filterTables() {
  const active = FILTERS.filter(n => chosen(n) && !(n === "device" && DEVICE));
  for (const table of document.querySelectorAll("main table")) {
    const heads = [...table.querySelectorAll("thead th")].map(th => th.textContent.trim());
    const columnOf = {backend: heads.indexOf("backend"), sweep: heads.indexOf("sweep"),
                      device: Math.max(heads.indexOf("device"), heads.indexOf("folder"))};
    const others = n => offered(n).filter(v => v !== chosen(n));
    const hiddenColumns = heads.map((h, i) => active.some(n => i !== columnOf[n] && others(n).some(v => h.includes(v))
                                                        && !h.includes(chosen(n))));
    for (const tr of table.querySelectorAll("tr")) {
      const hiddenRow = tr.parentElement.tagName === "TBODY" && active.some(
        n => columnOf[n] >= 0 && !matches(n, tr.children[columnOf[n]].textContent.trim()));
      tr.style.display = hiddenRow ? "none" : "";
      [...tr.children].forEach((td, i) => { td.style.display = hiddenColumns[i] ? "none" : ""; });
    }
  }
}
const redraw = [filterTables];
for (const name of FILTERS) {
  document.getElementById("filter-" + name).addEventListener("change", () => {
    if (name === "device" && DEVICE && chosen(name)) {
      window.location.href = ROOT + "/devices/" + chosen(name) + "/index.html";
    } else {
      redraw.forEach(f => f());
    }
  });
}
filterTables();
"""

# A device page: the latency charts drawn from the rows, redrawn when the backend or sweep filter changes.
CHARTS_SCRIPT = """
const mine = window.SHUFFLEBENCH_ROWS.filter(r => r.device_id === DEVICE && r.status === "ok");
function keep(r) {
  return (!chosen("backend") || r.backend === chosen("backend")) && (!chosen("sweep") || r.sweep === chosen("sweep"));
}
function hover(r) {
  const interval = r.ci_low_ms === null ? "" : " [" + r.ci_low_ms.toFixed(3) + ", " + r.ci_high_ms.toFixed(3) + "]";
  const noisy = r.is_noisy ? "<br>noisy: " + r.noise : "";
  return r.cell + "<br>median " + r.median_ms.toFixed(3) + " ms" + interval + noisy;
}
function drawCharts() {
  for (const div of document.querySelectorAll(".chart")) {
    const column = div.dataset.column;
    const shown = mine.filter(r => keep(r) && r[column] > 0 && r.median_ms > 0);
    const traces = [...new Set(shown.map(r => r.backend))].sort().map(backend => {
      const points = shown.filter(r => r.backend === backend);
      return {
        name: backend, mode: "markers", type: "scatter", x: points.map(r => r[column]),
        y: points.map(r => r.median_ms), text: points.map(hover), customdata: points.map(r => r.cell),
        hovertemplate: "%{text}<extra></extra>",
      };
    });
    Plotly.react(div, traces, {
      title: {text: "latency against " + div.dataset.title}, margin: {t: 40, r: 10},
      xaxis: {type: "log", title: {text: div.dataset.title}}, yaxis: {type: "log", title: {text: "median ms"}},
    }, {displaylogo: false});
  }
}
redraw.push(drawCharts);
drawCharts();
"""
