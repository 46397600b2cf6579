"""Executing a notebook in a real kernel with every cell measured (``nbcarbon run``).

The notebook need not mention nbcarbon: before its first cell, the kernel silently loads the
extension and turns auto mode on, so each executed code cell gets a readout carrying its
record, exactly as in an interactive session. nbclient and ipykernel are imported here only.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .footprint import Footprint
from .notebook import collect

ProgressFn = Callable[[int, int, float, float], None]


@dataclass
class RunResult:
    """What a run produced: the records in cell order, and the failing cell if any."""

    output: Path
    records: list[Footprint] = field(default_factory=list)
    failed_cell: int | None = None
    error: str | None = None


def _setup_code(region: str | None, pue: float | None) -> str:
    lines = ["%load_ext nbcarbon"]
    if region:
        lines.append(f"%carbon region {region}")
    if pue is not None:
        lines.append(f"%carbon pue {pue!r}")
    lines.append("%carbon auto on")
    return "\n".join(lines)


def _silent_execute(client: Any, code: str, timeout_s: float) -> None:
    """Run set-up code that is not a cell; raise if the kernel reports an error."""
    kc = client.kc
    msg_id = kc.execute(code, silent=True, store_history=False)
    deadline = time.monotonic() + timeout_s
    while True:
        reply = kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    content = reply["content"]
    if content.get("status") != "ok":
        raise RuntimeError(f"nbcarbon could not start in the kernel: {content.get('ename')}: "
                           f"{content.get('evalue')}")


def run_notebook(
    path: Path,
    output: Path,
    *,
    region: str | None = None,
    pue: float | None = None,
    timeout_s: float | None = None,
    kernel_name: str | None = None,
    progress: ProgressFn | None = None,
) -> RunResult:
    """Execute ``path`` measured, write ``output`` (also after a failure), return the records."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = nbformat.read(str(path), as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout_s,
        kernel_name=kernel_name or nb.metadata.get("kernelspec", {}).get("name", "python3"),
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    result = RunResult(output)
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    start = time.monotonic()
    energy_j = 0.0
    try:
        with client.setup_kernel():
            _silent_execute(client, _setup_code(region, pue), timeout_s or 60.0)
            for n, index in enumerate(code_cells, 1):
                if progress:
                    progress(n - 1, len(code_cells), time.monotonic() - start, energy_j)
                try:
                    client.execute_cell(nb.cells[index], index)
                except (CellExecutionError, CellTimeoutError) as exc:
                    result.failed_cell = index
                    result.error = _first_line(str(exc)) or type(exc).__name__
                    break
                finally:
                    found = collect({"cells": [nb.cells[index]]})
                    energy_j += sum(fp.energy_j for fp in found.records)
            if progress:
                progress(len(code_cells) if result.failed_cell is None else n, len(code_cells),
                         time.monotonic() - start, energy_j)
    finally:
        nbformat.write(nb, str(output))
    result.records = collect(nb).records
    return result


def _first_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):  # nbclient puts the exception line last
        if "Error" in ln or "Exception" in ln or "Interrupt" in ln:
            return ln.strip()
    return lines[-1].strip() if lines else ""


def terminal_progress(stream: Any = sys.stderr) -> ProgressFn:
    """A one-line progress bar: cell i of n, elapsed time, energy so far."""
    def show(done: int, total: int, elapsed_s: float, energy_j: float) -> None:
        width = 24
        filled = int(width * done / total) if total else width
        bar = "#" * filled + "-" * (width - filled)
        end = "\n" if done >= total else ""
        stream.write(f"\r[{bar}] cell {done}/{total} · {elapsed_s:.1f} s · {energy_j:.3g} J{end}")
        stream.flush()
    return show
