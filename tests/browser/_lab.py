"""A JupyterLab server and a headless Chromium for the browser tests (Debian's /usr/bin/chromium,
driven by Playwright's Python package; never ``playwright install``)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-gpu"]


def needs_browser(*extra: tuple[str, bool]) -> pytest.MarkDecorator:
    """The ``pytestmark`` of a browser test module: skip when Chromium, Playwright, JupyterLab or
    one of ``extra`` (``(what to install, present)``) is missing. CI installs all of it
    (.ci/run), so there a missing one is a failure, not a skip."""
    missing = [what for what, ok in (
        (f"{CHROMIUM} (apt-get install chromium)", CHROMIUM.exists()),
        ("playwright (pip install playwright)", importlib.util.find_spec("playwright") is not None),
        ("jupyterlab (pip install jupyterlab)", importlib.util.find_spec("jupyterlab") is not None),
        *extra,
    ) if not ok]
    return pytest.mark.skipif(bool(missing) and not os.environ.get("CI"),
                              reason="browser test needs " + ", ".join(missing))


def write_notebook(path: Path, cells: list[str]) -> None:
    """An unexecuted Python 3 notebook of code ``cells`` at ``path``."""
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {},
                     "outputs": [], "source": src} for i, src in enumerate(cells)],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                      "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


def run_all_cells(page: Any, url: str, name: str) -> None:
    """Open notebook ``name`` in the Lab at ``url`` (a Playwright page), wait for its kernel to
    be idle, and run all its cells (without waiting for them)."""
    page.goto(f"{url}/lab/tree/{name}", timeout=60_000)
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
        " && window.jupyterapp.shell.currentWidget.sessionContext?.session?.kernel?.status"
        " === 'idle'", timeout=60_000)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")


def wait_cells_done(page: Any, timeout_ms: int) -> None:
    """Wait until no cell's prompt shows ``*`` (queued or running)."""
    page.wait_for_function(
        "() => ![...document.querySelectorAll('.jp-InputPrompt')]"
        ".some(p => p.textContent.includes('*'))", timeout=timeout_ms)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kill_group(proc: subprocess.Popen) -> None:
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


@contextmanager
def jupyterlab(root: Path, work: Path, env: dict[str, str]) -> Iterator[str]:
    """A token-less JupyterLab on 127.0.0.1 serving ``root``; yields its URL, killed at the end.

    Its config, runtime, settings and workspaces live under ``work``, so the user's own never
    apply (and a theme chosen by a test is forgotten with it).
    """
    port = free_port()
    labconfig = work / "config" / "labconfig"
    labconfig.mkdir(parents=True, exist_ok=True)
    # no "get notified about Jupyter news?" toast over the page (and no request for news)
    (labconfig / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    env = dict(env, JUPYTER_CONFIG_DIR=str(work / "config"), JUPYTER_RUNTIME_DIR=str(work / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(work / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(work / "workspaces"))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
           "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0",
           "--IdentityProvider.token=", "--ServerApp.password=",
           "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={root}",
           "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:  # CI containers run as root
        cmd.append("--allow-root")
    log_path = work / "lab.log"
    with log_path.open("wb") as log:
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
                    raise RuntimeError("JupyterLab did not start:\n" + log_path.read_text()[-3000:])
                time.sleep(0.3)
            yield url
        finally:
            kill_group(proc)


def running_kernels(url: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/api/kernels", timeout=5) as r:
        return json.loads(r.read())
