"""The dashboard in a real JupyterLab and a real browser (Debian's headless Chromium via Playwright).

What only a browser can show: that the widget's live power value changes on screen while a
cell runs (traitlets set from the panel's thread reach the frontend), and that choosing a region
in the selector (a comm message, handled outside any cell) re-prices an earlier cell's readout
in the page (``update_display_data`` by display id).

Set-up (``.ci/run`` does it): ``apt-get install chromium`` and ``pip install playwright jupyterlab``;
never ``playwright install``: the test uses ``/usr/bin/chromium``. Set ``NBCARBON_SCREENSHOT_DIR``
to keep the screenshot (the README's ``docs/dashboard.png`` is made that way).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

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
    "%%carbon --label first\ntotal = 0\nfor i in range(2_000_000):\n    total += i",
    "%carbon dashboard",
    "import time\ntime.sleep(2)  # idle first, so the power shown must move\n"
    "t0 = time.perf_counter()\nwhile time.perf_counter() - t0 < 5:\n    pass",
]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[str]:
    """A JupyterLab serving a temp dir that holds ``live.ipynb``; yields its URL."""
    root = tmp_path / "root"
    root.mkdir()
    write_notebook(root / "live.ipynb", CELLS)
    with jupyterlab(root, tmp_path, kernel_env(tmp_path, NBCARBON_INTERVAL="0.25")) as url:
        yield url


def _readout_co2e(page) -> str:  # noqa: ANN001 - playwright's Page
    """The CO2e text of the first cell's readout, e.g. '0.123 mg CO2e' with its region line."""
    out = page.locator(".jp-Cell").nth(1).locator(".jp-OutputArea-output").last
    return out.inner_text()


def test_dashboard_live_power_and_region_change_in_jupyterlab(lab: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            run_all_cells(page, lab, "live.ipynb")

            # Live power: read the value on screen while the busy cell runs.
            power = page.locator("[data-nbcarbon=power]")
            power.wait_for(timeout=30_000)
            seen: list[str] = []
            deadline = time.monotonic() + 12
            while time.monotonic() < deadline:
                if power.count():
                    seen.append(power.first.inner_text())
                if len(set(seen)) >= 3:
                    break
                time.sleep(0.2)
            assert len(set(seen)) >= 2, f"power shown never changed: {seen[:5]}"
            wait_cells_done(page, 30_000)

            before = _readout_co2e(page)
            assert "SE" in before and "CO2e" in before
            select = page.locator(".widget-dropdown select").first
            labels = select.locator("option").all_inner_texts()
            # ipywidgets renders the labels' spaces as no-break spaces
            poland = next(i for i, label in enumerate(labels) if label.split()[0] == "PL")
            select.select_option(index=poland)
            page.wait_for_function(
                "() => document.querySelectorAll('.jp-Cell')[1].innerText.includes('PL Poland')",
                timeout=15_000)
            after = _readout_co2e(page)
            mass = re.compile(r"([\d.]+ m?g) CO2e")
            assert mass.search(after) and mass.search(before)
            assert mass.search(after).group(1) != mass.search(before).group(1)
            # The dashboard's total changed too, and says where it is priced now.
            assert "Poland" in page.locator(".jp-Cell").nth(2).inner_text()

            shot = tmp_path / "dashboard.png"
            page.locator(".jp-Cell").nth(2).screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            keep = os.environ.get("NBCARBON_SCREENSHOT_DIR")
            if keep:
                shutil.copy(shot, Path(keep) / "dashboard.png")
                page.screenshot(path=str(Path(keep) / "dashboard-notebook.png"), full_page=True)
        finally:
            browser.close()
