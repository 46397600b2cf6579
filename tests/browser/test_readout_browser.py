"""The readout, the summary and the dashboard as readers see them: JupyterLab 4 (light and dark)
and a run's output rendered to static HTML by nbconvert, in Debian's headless Chromium.

Why a browser: JupyterLab's table stylesheet right-aligns cells and shades alternate rows, which
made the readout's component names start in different columns; only a layout engine can say
where text starts. ``NBCARBON_SCREENSHOT_DIR=docs`` keeps the screenshots the README shows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.browser._lab import (
    CHROMIUM,
    CHROMIUM_ARGS,
    jupyterlab,
    needs_browser,
    run_all_cells,
    wait_cells_done,
    write_notebook,
)
from tests.conftest import kernel_env

pytestmark = needs_browser()

CELLS = [
    "%load_ext nbcarbon",
    "%%carbon --label busy\ntotal = 0\nfor i in range(1_500_000):\n    total += i",
    "%%carbon --label second\nsum(range(300_000))",
    "%carbon summary",
    "%carbon dashboard",
]

#: For every table in an element: the left edge of the first cell's text in each row, and each
#: row's computed background. Text edges, not cell edges: a right-aligned cell starts where its
#: column does, while its text does not.
_COLUMNS_JS = """el => [...el.querySelectorAll('table')].map(t => [...t.querySelectorAll('tr')].map(tr => {
    const td = tr.querySelector('td,th'); const r = document.createRange(); r.selectNodeContents(td);
    return {left: Math.round(r.getBoundingClientRect().left), text: td.innerText,
            bg: getComputedStyle(tr).backgroundColor};
}))"""


def _assert_one_column(tables: list[list[dict]], what: str) -> None:
    assert tables, f"no table in the {what}"
    for rows in tables:
        lefts = {r["left"] for r in rows}
        assert len(lefts) == 1, f"{what}: first-column text starts at {lefts}: {rows}"
        shaded = {r["bg"] for r in rows} - {"rgba(0, 0, 0, 0)"}
        assert not shaded, f"{what}: rows shaded {shaded}"


def _keep(shot: Path) -> None:
    keep = os.environ.get("NBCARBON_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / shot.name)


def test_readout_summary_and_dashboard_in_jupyterlab_light_and_dark(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    root = tmp_path / "root"
    root.mkdir()
    write_notebook(root / "readout.ipynb", CELLS)
    env = kernel_env(tmp_path, NBCARBON_INTERVAL="0.25")
    with jupyterlab(root, tmp_path, env) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            run_all_cells(page, url, "readout.ipynb")
            page.locator("[data-nbcarbon=energy]").first.wait_for(timeout=60_000)
            wait_cells_done(page, 60_000)
            cells = page.locator(".jp-Cell")
            for theme in ("light", "dark"):
                page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', "
                              f"{{theme: 'JupyterLab {theme.title()}'}})")
                page.wait_for_function(
                    f"() => document.body.dataset.jpThemeLight === '{str(theme == 'light').lower()}'",
                    timeout=15_000)
                page.wait_for_timeout(600)  # the theme's CSS settles
                readout = cells.nth(1).locator(".jp-OutputArea-output").last
                rows = readout.evaluate(_COLUMNS_JS)
                assert [r["text"] for r in rows[0]][:1] == ["cpu"] and len(rows[0]) >= 2
                _assert_one_column(rows, f"readout ({theme})")
                summary = cells.nth(3).locator(".jp-OutputArea-output").last
                assert "nbcarbon summary" in summary.inner_text()
                tables = summary.evaluate(_COLUMNS_JS)
                assert [r["text"] for r in tables[0]][1:3] == ["busy", "second"]
                _assert_one_column(tables, f"summary ({theme})")
                dashboard = cells.nth(4)
                assert "session" in dashboard.inner_text() and "power now" in dashboard.inner_text()
                assert dashboard.inner_text().count("US EPA") == 1  # the citation once
                shot = tmp_path / f"readout-{theme}.png"
                page.locator(".jp-Notebook").screenshot(path=str(shot))
                assert shot.stat().st_size > 20_000
                _keep(shot)
        finally:
            browser.close()


def test_run_output_rendered_by_nbconvert(tmp_path: Path) -> None:
    """What GitHub-like static renderers show of an ``nbcarbon run`` output: readouts and the
    summary as plain HTML, tables aligned, no widget text."""
    from playwright.sync_api import sync_playwright

    src = tmp_path / "analysis.ipynb"
    write_notebook(src, ["data = [i * i for i in range(200_000)]", "print(sum(data))",
                 "%%carbon --label detail\nsorted(data, reverse=True)[:3]"])
    env = kernel_env(tmp_path)
    bin_dir = Path(sys.executable).parent
    run = subprocess.run([str(bin_dir / "nbcarbon"), "run", str(src)], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    out = tmp_path / "analysis.carbon.ipynb"
    conv = subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", str(out)], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert conv.returncode == 0, conv.stderr
    html = tmp_path / "analysis.carbon.html"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(html.as_uri())
            body = page.locator("body")
            assert "nbcarbon summary" in body.inner_text()
            tables = [t for t in body.evaluate(_COLUMNS_JS) if t and t[0]["text"] in ("cpu", "cell")]
            assert len(tables) == 2  # the %%carbon readout's components, and the summary
            _assert_one_column(tables, "nbconvert HTML")
            shot = tmp_path / "run-nbconvert.png"
            page.screenshot(path=str(shot), full_page=True)
            _keep(shot)
        finally:
            browser.close()
