"""Shared by the measures: run a child, summarise repeated runs, keep a fake RAPL tree alive.

Why summaries are median (min-max): the machines these run on are shared and noisy; the median
resists a stray slow run, and min/max show how noisy the run was instead of hiding it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CHILD = HERE / "_child.py"

#: Column order of every table: nbcarbon first, then the peers.
TOOLS = ("nbcarbon", "codecarbon", "carbontracker", "zeus")


def child_env(tool: str, fake_root: Path | None) -> dict[str, str]:
    """The child's environment: nbcarbon's ledger off (CodeCarbon writes no file either), and the
    fake RAPL tree for the ``nbcarbon-rapl`` column."""
    env = dict(os.environ)
    env["NBCARBON_LEDGER"] = "off"
    env.pop("NBCARBON_POWERCAP_ROOT", None)
    if tool.startswith("nbcarbon-rapl"):
        if fake_root is None:
            raise RuntimeError("nbcarbon-rapl needs the fake RAPL tree")
        env["NBCARBON_POWERCAP_ROOT"] = str(fake_root)
    return env


def run_child(mode: str, tool: str, *args: object, fake_root: Path | None = None,
              timeout_s: float = 600) -> dict:
    """Run ``_child.py`` once; returns its numbers, plus ``lines`` printed and ``error`` if it failed."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    try:
        proc = subprocess.run(
            [sys.executable, str(CHILD), mode, tool, str(out), *map(str, args)],
            capture_output=True, text=True, cwd=REPO, env=child_env(tool, fake_root),
            timeout=timeout_s,
        )
        printed = (proc.stdout + proc.stderr).splitlines()
        text = out.read_text()
        if proc.returncode != 0 or not text:
            tail = [ln for ln in printed if ln.strip()][-3:]
            return {"error": f"exit {proc.returncode}: " + " | ".join(tail), "printed": printed}
        result = json.loads(text)
        result["printed_lines"] = len(printed)
        result["printed"] = printed
        return result
    finally:
        out.unlink(missing_ok=True)


def rotate(items: Sequence[str], rep: int) -> list[str]:
    """The run order for repetition ``rep``: rotated so no tool always runs first or last."""
    k = rep % len(items)
    return list(items[k:]) + list(items[:k])


def summary(values: Sequence[float]) -> tuple[float, float, float] | None:
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def fmt(values: Sequence[float], unit: str = "", digits: int = 1) -> str:
    """``median (min-max) unit`` for a table cell; ``n/a`` when nothing was measured."""
    s = summary(values)
    if s is None:
        return "n/a"
    med, lo, hi = s
    u = f" {unit}" if unit else ""
    return f"{med:.{digits}f}{u} ({lo:.{digits}f}–{hi:.{digits}f})"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


class FakeRaplServer:
    """A fake powercap tree kept running by a separate process (``_fakehw.py``).

    Why a process of its own: the fake's writer thread must not run inside the process whose CPU
    time or per-window cost is being measured. The tree has one package (40 W) with a DRAM zone
    (5 W), so nbcarbon meters counters only, no models.
    """

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="nbcarbon-fake-rapl-", dir=_fast_tmp())
        self.root = Path(self._dir) / "powercap"
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> "FakeRaplServer":
        self._proc = subprocess.Popen(
            [sys.executable, str(HERE / "_fakehw.py"), str(self.root)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
        )
        assert self._proc.stdout is not None
        ready = self._proc.stdout.readline()
        if ready.strip() != "ready":
            raise RuntimeError(f"fake RAPL tree did not start: {ready!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()  # the server stops when its stdin closes
            self._proc.wait(timeout=30)
        import shutil

        shutil.rmtree(self._dir, ignore_errors=True)


def _fast_tmp() -> str | None:
    """A RAM-backed directory where there is one, closer to sysfs than a disk is."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
