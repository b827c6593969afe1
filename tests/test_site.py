"""`shufflebench site` on a small results folder, checked in a real browser (Debian's chromium driven by playwright).

Without a browser the browser tests skip with the reason; CI sets SHUFFLEBENCH_REQUIRE_BROWSER=1 (.ci/run), which
makes a missing browser a failure. SHUFFLEBENCH_BROWSER names the executable where it is not chromium on the PATH;
SHUFFLEBENCH_SCREENSHOT is where the device page's screenshot goes (the README's picture).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from shufflebench.report import site
from tests.test_report import make_device

BROWSER = os.environ.get("SHUFFLEBENCH_BROWSER") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Two device ids of one machine key (a runtime upgrade made one cell slower), and their site."""
    root = tmp_path_factory.mktemp("site")
    for device_id, speed, day in (("dev-old", 1.0, "01"), ("dev-new", 0.8, "02")):
        folder = make_device(root / "results", device_id, speed=speed, finished_at=f"2026-01-{day}T00:00:00+00:00")
        meta = json.loads((folder / "device.json").read_text())
        (folder / "device.json").write_text(json.dumps({**meta, "machine_key": "x86_64-test-cpu-0000"}))
    return site.build([root / "results"], root / "site")


def test_the_site_has_its_pages_its_data_and_its_chart_library(built):
    out = built.folder
    pages = sorted(str(p.relative_to(out)) for p in out.rglob("*.html"))
    assert pages == [
        "compare/index.html",
        "devices/dev-new/index.html",
        "devices/dev-old/index.html",
        "history.html",
        "index.html",
    ]
    assert built.pages == 5 and built.bytes > 1_000_000  # plotly.min.js alone is megabytes
    rows = json.loads((out / "data" / "rows.json").read_text())
    assert len(rows) == 16 and {r["device_id"] for r in rows} == {"dev-old", "dev-new"}
    assert (out / "plotly.min.js").stat().st_size > 1_000_000
    history = (out / "history.html").read_text()
    assert "x86_64-test-cpu-0000" in history and "`dev-old` ms" not in history  # rendered, not raw Markdown
    for page in out.rglob("*.html"):
        assert "http://" not in page.read_text().split("<main>")[0]  # nothing loaded from a network


def _browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "playwright is not installed (pip install playwright)"
    else:
        missing = None if BROWSER else "no chromium on this machine (apt install chromium, or SHUFFLEBENCH_BROWSER)"
    if missing:
        if os.environ.get("SHUFFLEBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests required here: {missing}")
        pytest.skip(missing)
    return sync_playwright


@pytest.fixture(scope="module")
def browser():
    sync_playwright = _browser()
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=BROWSER)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, built):
    """A page offline (the network is off), recording console errors and every request outside the site folder."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_offline(True)
    tab = context.new_page()
    tab.problems = []
    tab.on("console", lambda m: tab.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    tab.on("pageerror", lambda e: tab.problems.append(f"page error: {e}"))
    inside = built.folder.resolve().as_uri()
    tab.on("request", lambda r: None if r.url.startswith(inside) else tab.problems.append(f"request {r.url}"))
    yield tab
    context.close()


def _open(page, built, name: str) -> None:
    page.goto((built.folder / name).resolve().as_uri())
    page.wait_for_load_state("load")


def test_every_page_loads_offline_with_no_console_error_and_no_request_outside_the_folder(page, built):
    for name in sorted(str(p.relative_to(built.folder)) for p in built.folder.rglob("*.html")):
        _open(page, built, name)
        assert page.title().startswith("shufflebench"), name
    assert page.problems == []


def test_the_latency_chart_has_a_point_per_ok_cell_and_hovering_one_names_its_cell(page, built, tmp_path):
    _open(page, built, "devices/dev-old/index.html")
    page.wait_for_selector("#chart-flops .point")
    points = page.locator("#chart-flops .scatterlayer .point")
    rows = json.loads((built.folder / "data" / "rows.json").read_text())
    mine = [r for r in rows if r["device_id"] == "dev-old" and r["status"] == "ok"]
    assert points.count() == len(mine) == 8
    box = points.first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    hover = page.locator(".hoverlayer .hovertext").first
    hover.wait_for()
    assert any(r["cell"] in hover.text_content() for r in mine), hover.text_content()
    page.screenshot(path=os.environ.get("SHUFFLEBENCH_SCREENSHOT") or str(tmp_path / "device.png"))
    assert page.problems == []


def test_choosing_a_backend_hides_the_other_backends_rows_and_points(page, built):
    _open(page, built, "devices/dev-old/index.html")
    page.wait_for_selector("#chart-flops .point")
    rows = page.locator("main table:has(th:text-is('backend')) tbody tr")
    before = sum(rows.nth(i).is_visible() for i in range(rows.count()))
    page.select_option("#filter-backend", "ort-cpu")
    after = sum(rows.nth(i).is_visible() for i in range(rows.count()))
    assert 0 < after < before
    assert page.locator("#chart-flops .scatterlayer .point").count() == 4
    for i in range(rows.count()):
        if rows.nth(i).is_visible():
            assert "torch-cpu" not in rows.nth(i).text_content()
    assert page.problems == []


def test_every_link_resolves(page, built):
    for name in sorted(str(p.relative_to(built.folder)) for p in built.folder.rglob("*.html")):
        _open(page, built, name)
        for href in page.eval_on_selector_all("a[href], img[src], script[src]", "es => es.map(e => e.href || e.src)"):
            target = Path(unquote(urlparse(href).path))
            assert href.startswith("file://") and target.is_file(), f"{name}: {href}"


def _visible_texts(page, selector: str) -> list[str]:
    cells = page.locator(selector)
    return [cells.nth(i).text_content().strip() for i in range(cells.count()) if cells.nth(i).is_visible()]


def test_choosing_a_device_hides_the_other_devices_rows_and_columns(page, built):
    for name in ("index.html", "compare/index.html", "history.html"):
        _open(page, built, name)
        headings = " ".join(_visible_texts(page, "main table thead th"))
        rows = " ".join(_visible_texts(page, "main table tbody tr"))
        assert "dev-old" in headings + rows and "dev-new" in headings + rows, name
        page.select_option("#filter-device", "dev-new")
        headings = " ".join(_visible_texts(page, "main table thead th"))
        rows = " ".join(_visible_texts(page, "main table tbody tr"))
        assert "dev-new" in headings + rows and "dev-old" not in headings + rows, name
    assert page.problems == []


def test_choosing_a_device_on_a_device_page_opens_that_devices_page(page, built):
    _open(page, built, "devices/dev-old/index.html")
    assert page.input_value("#filter-device") == "dev-old"
    page.select_option("#filter-device", "dev-new")
    page.wait_for_url((built.folder / "devices" / "dev-new" / "index.html").resolve().as_uri())
    page.wait_for_selector("#chart-flops .point")
    assert page.title() == "shufflebench: dev-new" and page.input_value("#filter-device") == "dev-new"
    assert page.problems == []
