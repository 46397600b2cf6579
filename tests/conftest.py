"""Shared fixtures: a clean environment for kernels, a notebook executor over nbclient, and an
IPython InteractiveShell with the magics loaded."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell


def kernel_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment a test kernel runs in: no ledger, a fixed region unless a test sets one."""
    from tests.fakes.procstat import quiet_stat

    env = {k: v for k, v in os.environ.items() if not k.startswith("NBCARBON_")}
    # Fake RAPL trees are machines nobody else uses: shares of them are the whole (the real
    # machine's load belongs to the real machine). Share tests write their own stat file.
    env.update({"NBCARBON_LEDGER": "off", "NBCARBON_REGION": "SE",
                "NBCARBON_PROC_STAT": str(quiet_stat(tmp_path))})
    env.update(extra)
    return env


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Any]:
    """A real ipykernel in :func:`kernel_env`, driven by jupyter_client as a frontend drives it
    (comm messages and all, which nbclient cannot send); its blocking client."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", env=kernel_env(tmp_path))
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run_cells(cells: list[str], env: dict[str, str], *, allow_errors: bool = False,
              timeout: int = 120, path: Path | None = None) -> Any:
    """Execute ``cells`` as a notebook in a real ipykernel through nbclient; return the notebook."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors)
    try:
        client.execute(env=env)
    finally:
        if path is not None:
            nbformat.write(nb, str(path))
    return nb


def records_of(cell: Any) -> list[dict[str, Any]]:
    """The nbcarbon records among a cell's outputs."""
    return [o["metadata"]["nbcarbon"] for o in cell.get("outputs", [])
            if "nbcarbon" in o.get("metadata", {})]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return kernel_env(tmp_path)


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    """A real IPython InteractiveShell (no kernel) with nbcarbon loaded over a fresh default
    session, region SE, no ledger. On teardown the extension is unloaded and every thread it
    started must be gone."""
    from IPython.core.interactiveshell import InteractiveShell

    import nbcarbon.api

    for name in ("NBCARBON_PUE", "NBCARBON_INTERVAL", "NBCARBON_POWERCAP_ROOT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NBCARBON_LEDGER", "off")
    monkeypatch.setenv("NBCARBON_REGION", "SE")
    nbcarbon.api.close_default_session()
    ip = InteractiveShell.instance()
    threads_before = threading.active_count()
    ip.run_cell("%load_ext nbcarbon")
    yield ip
    ip.run_cell("%unload_ext nbcarbon")
    assert threading.active_count() == threads_before
    InteractiveShell.clear_instance()


@pytest.fixture(autouse=True)
def _quiet_machine(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """In-process sessions made from the environment see a machine nobody else uses (see
    :func:`kernel_env`); a test that needs other users sets ``NBCARBON_PROC_STAT`` itself."""
    from tests.fakes.procstat import quiet_stat

    monkeypatch.setenv("NBCARBON_PROC_STAT", str(quiet_stat(tmp_path_factory.getbasetemp())))


@pytest.fixture(autouse=True)
def _no_user_ledger(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process tests never write to the user's real ledger; ledger tests set their own path."""
    if "NBCARBON_LEDGER" not in os.environ or os.environ["NBCARBON_LEDGER"] != "off":
        monkeypatch.setenv("NBCARBON_LEDGER", "off")
