"""Executing a notebook in a real kernel with every cell measured (``nbcarbon run``).

The notebook need not mention nbcarbon: before its first cell, the kernel silently loads the
extension and turns auto mode on, so each executed code cell gets a readout carrying its
record, exactly as in an interactive session. nbclient and ipykernel are imported here only.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import NbcarbonError
from .footprint import Footprint, top_level
from .notebook import collect, read_text

ProgressFn = Callable[[int, int, float, float], None]


@dataclass
class RunResult:
    """What a run produced: the records in cell order, and the failing cell if any."""

    output: Path
    records: list[Footprint] = field(default_factory=list)
    failed_cell: int | None = None
    error: str | None = None
    failed_source: str | None = None
    failed_number: int | None = None  # 1-based among the code cells
    code_cells: int = 0

    def failure(self) -> str | None:
        """One line naming the failing cell and why, or ``None`` when every cell ran."""
        if self.failed_cell is None:
            return None
        first = (self.failed_source or "").strip().splitlines()
        where = f"code cell {self.failed_number} of {self.code_cells}"
        if first:
            where += f" ({first[0][:60]!r})"
        return f"{where} failed: {self.error}"


class KernelNotFound(NbcarbonError, LookupError):
    """The kernel a notebook asks for (or ``--kernel`` names) is not installed here."""

    def __str__(self) -> str:  # LookupError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


def installed_kernels() -> list[str]:
    """The names of the kernels Jupyter can start here (``jupyter kernelspec list``)."""
    from jupyter_client.kernelspec import KernelSpecManager

    return sorted(KernelSpecManager().find_kernel_specs())


def kernel_for(metadata: Any, kernel_name: str | None = None) -> str:
    """The kernel to run a notebook in: ``kernel_name``, else the notebook's, else ``python3``.

    Checked before anything starts: notebooks from elsewhere often name a kernel of their
    author's machine (``conda-env-ds-py``), and the answer should be one line naming the kernels
    that are installed, not a traceback after the output file was written unexecuted.
    """
    spec = metadata.get("kernelspec") if isinstance(metadata, dict) else None
    wanted = kernel_name or (spec.get("name") if isinstance(spec, dict) else None) or "python3"
    if not isinstance(wanted, str):
        wanted = "python3"
    installed = installed_kernels()
    if wanted in installed:
        return wanted
    whose = "--kernel names" if kernel_name else "the notebook asks for"
    raise KernelNotFound(
        f"{whose} the kernel {wanted[:60]!r}, which is not installed here; installed: "
        f"{', '.join(installed) or 'none'}. Run it in one of those with --kernel NAME"
        + ("" if installed else " (pip install ipykernel)"))


def _setup_code(region: str | None, pue: float | None) -> str:
    # The ledger calls these rows "run" (not "auto"); no name is left in the user's namespace.
    lines = ["__import__('nbcarbon.api').api.set_ledger_source('run')",
             "__import__('nbcarbon.magics').magics.load(get_ipython(), quiet=True)"]
    if region:
        lines.append(f"%carbon region {region}")
    if pue is not None:
        lines.append(f"%carbon pue {pue!r}")
    lines.append("%carbon auto on")
    return "\n".join(lines)


def _silent_execute(client: Any, code: str) -> None:
    """Run set-up code that is not a cell (no outputs kept, no history); raise if it fails."""
    msg_id = client.kc.execute(code, silent=True, store_history=False)
    reply = client.wait_for_reply(msg_id)
    content = (reply or {}).get("content", {"status": "timeout"})
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
    """Execute ``path`` measured, write ``output`` (also after a failure), return the records.

    A cell running longer than ``timeout_s`` is interrupted, so it still gets its record (status
    ``interrupted``) and the run stops there as failed. The kernel is told the notebook's base
    name (``JPY_SESSION_NAME``, as Jupyter does), so its ledger rows carry it.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from nbformat.validator import MissingIDFieldWarning

    text = read_text(path)  # a regular file within the size limit: never a FIFO or /dev/zero
    with warnings.catch_warnings():  # cells without ids are fine for us; nbformat warns of the future
        warnings.simplefilter("ignore", MissingIDFieldWarning)
        nb = nbformat.reads(text, as_version=4)
    del text
    client = NotebookClient(
        nb,
        timeout=timeout_s,
        interrupt_on_timeout=True,
        extra_arguments=["--IPKernelApp.log_level=ERROR"],  # not the start-up warnings, in a CLI
        kernel_name=kernel_for(nb.metadata, kernel_name),
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    result = RunResult(output)
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    result.code_cells = len(code_cells)
    env = {**os.environ, "JPY_SESSION_NAME": path.name}
    start = time.monotonic()
    energy_j = 0.0
    n = 0
    started = False  # a kernel that never started leaves no output file: nothing ran
    try:
        with client.setup_kernel(env=env):
            started = True
            _silent_execute(client, _setup_code(region, pue))
            info = client.wait_for_reply(client.kc.kernel_info())
            if info and "language_info" in info["content"]:
                nb.metadata["language_info"] = info["content"]["language_info"]
            for n, index in enumerate(code_cells, 1):
                if progress:
                    progress(n - 1, len(code_cells), time.monotonic() - start, energy_j)
                t0 = time.monotonic()
                try:
                    client.execute_cell(nb.cells[index], index)
                except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
                    result.failed_cell, result.failed_number = index, n
                    result.failed_source = nb.cells[index].source
                    ename = getattr(exc, "ename", None)
                    result.error = (f"{ename}: {getattr(exc, 'evalue', '')}" if ename
                                    else _first_line(str(exc)) or type(exc).__name__)
                    if timeout_s and time.monotonic() - t0 >= timeout_s:
                        result.error = f"timed out after {timeout_s:g} s (interrupted)"
                    break
                finally:
                    found = collect({"cells": [nb.cells[index]]})
                    energy_j += sum(fp.energy_j for fp in top_level(found.records))
            if progress:
                progress(len(code_cells) if result.failed_cell is None else n, len(code_cells),
                         time.monotonic() - start, energy_j)
    finally:
        if started:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MissingIDFieldWarning)
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
    """A progress bar: cell i of n, elapsed time, energy so far.

    On a terminal it redraws one line; in a log (CI) it writes one line per cell instead.
    """
    isatty = getattr(stream, "isatty", None)
    redraw = bool(isatty and isatty())

    def show(done: int, total: int, elapsed_s: float, energy_j: float) -> None:
        width = 24
        filled = int(width * done / total) if total else width
        bar = "#" * filled + "-" * (width - filled)
        text = f"[{bar}] cell {done}/{total} · {elapsed_s:.1f} s · {energy_j:.3g} J"
        if redraw:
            stream.write("\r" + text + ("\n" if done >= total else ""))
        else:
            stream.write(text + "\n")
        stream.flush()
    return show
