"""Shared fixtures: a clean environment for kernels, and a notebook executor over nbclient."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest


def kernel_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment a test kernel runs in: no ledger, a fixed region unless a test sets one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBCARBON_")}
    env.update({"NBCARBON_LEDGER": "off", "NBCARBON_REGION": "SE"})
    env.update(extra)
    return env


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


@pytest.fixture(autouse=True)
def _no_user_ledger(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process tests never write to the user's real ledger; ledger tests set their own path."""
    if "NBCARBON_LEDGER" not in os.environ or os.environ["NBCARBON_LEDGER"] != "off":
        monkeypatch.setenv("NBCARBON_LEDGER", "off")
