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

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import kernel_env

CHROMIUM = Path("/usr/bin/chromium")
_missing = [what for what, ok in (
    (f"{CHROMIUM} (apt-get install chromium)", CHROMIUM.exists()),
    ("playwright (pip install playwright)", importlib.util.find_spec("playwright") is not None),
    ("jupyterlab (pip install jupyterlab)", importlib.util.find_spec("jupyterlab") is not None),
) if not ok]
# CI installs all three (.ci/run), so there a missing one is a failure, not a skip.
pytestmark = pytest.mark.skipif(bool(_missing) and not os.environ.get("CI"),
                                reason="browser test needs " + ", ".join(_missing))

CELLS = [
    "%load_ext nbcarbon",
    "%%carbon --label first\ntotal = 0\nfor i in range(2_000_000):\n    total += i",
    "%carbon dashboard",
    "import time\ntime.sleep(2)  # idle first, so the power shown must move\n"
    "t0 = time.perf_counter()\nwhile time.perf_counter() - t0 < 5:\n    pass",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _notebook(path: Path) -> None:
    cells = [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {},
              "outputs": [], "source": src} for i, src in enumerate(CELLS)]
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                      "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[str]:
    """A token-less JupyterLab on 127.0.0.1 and a free port, in a temp dir; killed at the end."""
    root = tmp_path / "root"
    root.mkdir()
    _notebook(root / "live.ipynb")
    port = _free_port()
    labconfig = tmp_path / "config" / "labconfig"
    labconfig.mkdir(parents=True)
    # no "get notified about Jupyter news?" toast over the page (and no request for news)
    (labconfig / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    env = kernel_env(tmp_path, NBCARBON_INTERVAL="0.25",
                     JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
                     JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
                     JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
           "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0",
           "--IdentityProvider.token=", "--ServerApp.password=",
           "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={root}",
           "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:  # CI containers run as root
        cmd.append("--allow-root")
    log = (tmp_path / "lab.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("JupyterLab did not start:\n" + (tmp_path / "lab.log").read_text()[-3000:])
            time.sleep(0.3)
        yield url
    finally:
        _kill_group(proc)
        log.close()


def _kill_group(proc: subprocess.Popen) -> None:
    """Stop the server and the kernels it started (its own process group), and wait for it."""
    for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _readout_co2e(page) -> str:  # noqa: ANN001 - playwright's Page
    """The CO2e text of the first cell's readout, e.g. '0.123 mg CO2e' with its region line."""
    out = page.locator(".jp-Cell").nth(1).locator(".jp-OutputArea-output").last
    return out.inner_text()


def test_dashboard_live_power_and_region_change_in_jupyterlab(lab: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                  "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.goto(f"{lab}/lab/tree/live.ipynb", timeout=60_000)
            page.wait_for_function(
                "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                " && window.jupyterapp.shell.currentWidget.sessionContext"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
                " === 'idle'", timeout=60_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

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
            page.wait_for_function(
                "() => ![...document.querySelectorAll('.jp-InputPrompt')]"
                ".some(p => p.textContent.includes('*'))", timeout=30_000)

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
