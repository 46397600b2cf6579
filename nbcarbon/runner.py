"""Executing a notebook in a real kernel with every cell measured (``nbcarbon run``).

The notebook need not mention nbcarbon: before its first cell, the kernel silently loads the
extension and turns auto mode on, so each executed code cell gets a readout carrying its
record, exactly as in an interactive session. nbclient and ipykernel are imported here only.

The output is meant to be shared, so it says only what this run did: every code cell's old
outputs are cleared before the run (readouts of an earlier run are never counted again), the
cells after a failure that stopped the run are marked "not run", the notebook ends with the
static summary of ``%carbon summary``, and the widget state is saved so a dashboard renders.
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
from .notebook import NotebookError, collect, read_text

ProgressFn = Callable[[int, int, float, float], None]


@dataclass(frozen=True)
class CellError:
    """A code cell that raised: where, what, and whether its ``raises-exception`` tag expected it."""

    number: int  # 1-based among the code cells
    index: int
    source: str
    error: str
    expected: bool = False

    def describe(self, code_cells: int) -> str:
        """``code cell 3 of 9 ('1/0'): ZeroDivisionError: division by zero``."""
        return f"{_where(self.number, code_cells, self.source)}: {self.error}"


def _where(number: int, code_cells: int, source: str) -> str:
    first = source.strip().splitlines()
    where = f"code cell {number} of {code_cells}"
    return where + (f" ({first[0][:60]!r})" if first else "")


@dataclass
class RunResult:
    """What a run produced: the records in cell order, the failing cell if any, every cell
    that raised (with ``--allow-errors`` or a ``raises-exception`` tag the run goes on)."""

    output: Path
    records: list[Footprint] = field(default_factory=list)
    failed_cell: int | None = None
    error: str | None = None
    failed_source: str | None = None
    failed_number: int | None = None  # 1-based among the code cells
    code_cells: int = 0
    errors: list[CellError] = field(default_factory=list)
    not_run: int = 0  # code cells after the failure that stopped the run
    #: How the failing cell ended when it was not by raising: "died" (the kernel died, so the
    #: cell has no record) or "timed out" (interrupted, or its kernel shut down).
    stopped_by: str | None = None

    def failure(self) -> str | None:
        """One line naming the cell that stopped the run and why, or ``None`` when every cell ran."""
        if self.failed_cell is None:
            return None
        where = _where(self.failed_number or 0, self.code_cells, self.failed_source or "")
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


#: Cell metadata marking what a run added or left: ``{"nbcarbon": {"run": "summary"|"not run"}}``.
RUN_MARK = "nbcarbon"
SUMMARY_SOURCE = "%carbon summary"


def _is_summary(cell: Any) -> bool:
    return cell.get("cell_type") == "code" and any(
        line.strip() == SUMMARY_SOURCE for line in str(cell.get("source", "")).splitlines())


def _prepare(nb: Any) -> None:
    """Drop what an earlier run added (its summary cell) and clear every code cell's outputs.

    Why: a run's output says what this run did. A cell the run never reaches must not show an
    earlier run's readout numbered like this run's, and no earlier readout may be counted again.
    """
    nb.cells = [c for c in nb.cells
                if (c.get("metadata", {}).get(RUN_MARK) or {}).get("run") != "summary"]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            mark = cell.metadata.get(RUN_MARK)
            if isinstance(mark, dict) and "run" in mark:
                del cell.metadata[RUN_MARK]


def _mark_not_run(cell: Any, why: str) -> None:
    """A visible "not run" line (what a reader sees) and a metadata mark (what tools read)."""
    from nbformat.v4 import new_output

    cell.execution_count = None
    cell.outputs = [new_output("display_data", data={"text/plain": f"nbcarbon run: not run ({why})"})]
    cell.metadata[RUN_MARK] = {"run": "not run"}


def _error_of(cell: Any) -> str | None:
    """``Name: value`` of the error output a cell ended with, if it raised."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename', 'Error')}: {out.get('evalue', '')}".rstrip(": ")
    return None


def _brief_readouts(nb: Any, records: list[Footprint]) -> None:
    """Shorten the one-line readouts when every cell has the same region and methods.

    Why: 50 lines each ending "· SE · estimated: CPU-time model, memory model" hide the numbers
    that differ. The summary at the end says the region and methods once.
    """
    from . import readout

    if not records or len({(fp.region.code, fp.pue, readout.how_obtained(fp.components))
                           for fp in records}) != 1:
        return
    by_id = {fp.id: fp for fp in records}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            raw = out.get("metadata", {}).get(RUN_MARK)
            fp = by_id.get(raw.get("id")) if isinstance(raw, dict) else None
            plain = out.get("data", {}).get("text/plain", "")
            if fp is None or not isinstance(plain, str) or plain != readout.one_line(fp):
                continue  # a full readout (%%carbon) or a loop's: the user asked for those
            data, _ = readout.mimebundle(fp, compact=True, brief=True)
            out["data"].update(data)


def _client_class() -> type:
    """nbclient's ``NotebookClient``, made to stop a cell that goes on after its timeout, and
    to send each cell's id with its code.

    nbclient interrupts a cell at the timeout and then waits again, as long again, and again:
    a cell that catches ``KeyboardInterrupt`` (a training loop that saves on Ctrl-C) finished
    as if nothing happened, and one that ignores SIGINT ran for as long as it liked, so a CI run
    could hang for good. Here the cells interrupted are remembered (the run stops after them),
    and a cell still running one more timeout after its interrupt has its kernel shut down.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError
    from nbclient.util import ensure_async, run_sync

    class Client(NotebookClient):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.interrupted: set[int] = set()  # id() of the cells interrupted at the timeout
            self.killed = False

        async def async_execute_cell(self, cell: Any, cell_index: int, *args: Any,
                                     **kwargs: Any) -> Any:
            """Send the cell's id with its code, as JupyterLab does (``cellId`` in the request's
            metadata), so its records carry ``cell_id`` as an interactive session's do."""
            cell_id = cell.get("id")
            if not isinstance(cell_id, str) or self.kc is None:
                return await super().async_execute_cell(cell, cell_index, *args, **kwargs)
            session = self.kc.session
            make = session.msg

            def msg(msg_type: str, content: Any = None, parent: Any = None, header: Any = None,
                    metadata: Any = None) -> Any:
                if msg_type == "execute_request":
                    metadata = {**(metadata or {}), "cellId": cell_id}
                return make(msg_type, content, parent, header, metadata)

            session.msg = msg
            try:
                return await super().async_execute_cell(cell, cell_index, *args, **kwargs)
            finally:
                del session.msg  # the class's method again

        execute_cell = run_sync(async_execute_cell)  # nbclient binds its own at class creation

        async def _async_handle_timeout(self, timeout: int, cell: Any = None) -> Any:
            if id(cell) in self.interrupted:
                self.log.error("The cell did not stop when interrupted; shutting the kernel down")
                self.killed = True
                await ensure_async(self.km.shutdown_kernel(now=True))
                raise DeadKernelError("the cell did not stop when interrupted")
            self.interrupted.add(id(cell))
            return await super()._async_handle_timeout(timeout, cell)

    return Client


def run_notebook(
    path: Path,
    output: Path,
    *,
    region: str | None = None,
    pue: float | None = None,
    timeout_s: int | None = None,
    kernel_name: str | None = None,
    allow_errors: bool = False,
    progress: ProgressFn | None = None,
    on_stop: Callable[[RunResult], None] | None = None,
) -> RunResult:
    """Execute ``path`` measured, write ``output`` (also after a failure), return the records.

    A cell running longer than ``timeout_s`` (whole seconds) is interrupted, so it still gets
    its record (status ``interrupted``), and the run stops there as failed, also when the cell
    caught the interrupt and finished; one that is still running ``timeout_s`` after the
    interrupt has its kernel shut down. A cell that raises stops the run, unless
    ``allow_errors`` (as ``nbconvert --execute --allow-errors``) or its ``raises-exception`` tag
    says to go on; :attr:`RunResult.errors` lists every cell that raised. The kernel is told the
    notebook's base name (``JPY_SESSION_NAME``, as Jupyter does), so its ledger rows carry it.
    ``on_stop`` gets the result as written when the run ends by an exception (Ctrl-C).
    """
    import nbformat
    from nbformat.validator import MissingIDFieldWarning, ValidationError

    text = read_text(path)  # a regular file within the size limit: never a FIFO or /dev/zero
    with warnings.catch_warnings():  # cells without ids are fine for us; nbformat warns of the future
        warnings.simplefilter("ignore", MissingIDFieldWarning)
        nb = nbformat.reads(text, as_version=4)
        try:
            nbformat.validate(nb)
        except ValidationError as exc:  # a hand-edited file: one line, before a kernel starts
            raise NotebookError(f"{path.name} is not a valid notebook: {_first_line(exc.message)}"
                                ) from None
    del text
    _prepare(nb)
    client = _client_class()(
        nb,
        timeout=timeout_s,
        interrupt_on_timeout=True,
        allow_errors=allow_errors,
        store_widget_state=True,  # a dashboard in the output renders where widgets do
        extra_arguments=["--IPKernelApp.log_level=ERROR"],  # not the start-up warnings, in a CLI
        kernel_name=kernel_for(nb.metadata, kernel_name),
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    result = RunResult(output)
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    result.code_cells = len(code_cells)
    env = {**os.environ, "JPY_SESSION_NAME": path.name}
    started = False  # a kernel that never started leaves no output file: nothing ran
    try:
        with client.setup_kernel(env=env):
            _silent_execute(client, _setup_code(region, pue))
            started = True  # from here on the output is written, whatever happens
            try:
                _run_cells(client, nb, code_cells, result, timeout_s, progress)
            except KeyboardInterrupt:
                # Ctrl-C or SIGTERM: the kernel is stopped at once. A graceful shutdown would
                # close its sockets under the running cell, which then prints a traceback of its
                # own; the records of the cells that finished are in ``nb`` already.
                from nbclient.util import run_sync

                run_sync(client.km.shutdown_kernel)(now=True)
                raise
            client.set_widgets_metadata()
    except BaseException:
        if started and on_stop is not None:
            _write(nb, output, result)
            on_stop(result)
            started = False  # written
        raise
    finally:
        if started:
            _write(nb, output, result)
    return result


def _write(nb: Any, output: Path, result: RunResult) -> None:
    import nbformat
    from nbformat.validator import MissingIDFieldWarning

    result.records = collect(nb).records
    _brief_readouts(nb, result.records)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingIDFieldWarning)
        nbformat.write(nb, str(output))


def _run_cells(client: Any, nb: Any, code_cells: list[int], result: RunResult,
               timeout_s: int | None, progress: ProgressFn | None) -> None:
    """Execute the code cells in order into ``nb``, filling ``result``; stop at the first
    failure (unless allowed), mark the cells after it "not run", and end with the summary."""
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    start = time.monotonic()
    energy_j = 0.0
    n = 0
    dead = False
    info = client.wait_for_reply(client.kc.kernel_info())
    if info and "language_info" in info["content"]:
        nb.metadata["language_info"] = info["content"]["language_info"]
    for n, index in enumerate(code_cells, 1):
        if progress:
            progress(n - 1, len(code_cells), time.monotonic() - start, energy_j)
        t0 = time.monotonic()
        cell = nb.cells[index]
        try:
            client.execute_cell(cell, index)
            if id(cell) in client.interrupted:  # it caught the interrupt and finished
                raise CellTimeoutError("timed out")
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
            dead = isinstance(exc, DeadKernelError)
            result.failed_cell, result.failed_number = index, n
            result.failed_source = cell.source
            ename = getattr(exc, "ename", None)
            result.error = (f"{ename}: {getattr(exc, 'evalue', '')}" if ename
                            else _first_line(str(exc)) or type(exc).__name__)
            if dead:
                result.stopped_by = "died"
            if id(cell) in client.interrupted or (timeout_s and time.monotonic() - t0 >= timeout_s):
                result.error = f"timed out after {timeout_s:g} s (interrupted)"
                result.stopped_by = "timed out"
                if client.killed:
                    result.error = (f"timed out after {timeout_s:g} s and did not stop when "
                                    "interrupted, so its kernel was shut down")
            result.errors.append(CellError(n, index, cell.source, result.error))
            break
        finally:
            found = collect({"cells": [cell]})
            energy_j += sum(fp.energy_j for fp in top_level(found.records))
        error = _error_of(cell)
        if error is not None:  # allowed: --allow-errors or the cell's raises-exception tag
            tagged = "raises-exception" in cell.metadata.get("tags", [])
            result.errors.append(CellError(n, index, cell.source, error, expected=tagged))
    if progress:
        progress(len(code_cells) if result.failed_cell is None else n, len(code_cells),
                 time.monotonic() - start, energy_j)
    if result.failed_cell is not None:
        why = f"`nbcarbon run` stopped at code cell {n}, which failed"
        for index in code_cells[n:]:
            _mark_not_run(nb.cells[index], why)
        result.not_run = len(code_cells) - n
    if not dead:
        _append_summary(client, nb, code_cells)
        _refresh_dashboards(client, nb)


def _append_summary(client: Any, nb: Any, code_cells: list[int]) -> None:
    """End the notebook with ``%carbon summary`` (unless its last code cell is one already).

    Run in the kernel like any cell, so the output is exactly the interactive summary, with its
    ``kind: "summary"`` record over this run's cells. A summary that fails is left out, never
    a reason to fail the run.
    """
    from nbformat.v4 import new_code_cell

    if code_cells and _is_summary(nb.cells[code_cells[-1]]):
        return
    cell = new_code_cell(SUMMARY_SOURCE, metadata={RUN_MARK: {"run": "summary"}})
    nb.cells.append(cell)
    try:
        client.execute_cell(cell, len(nb.cells) - 1)
    except Exception:  # noqa: BLE001 - the cells' records are what matters; they are kept
        nb.cells.remove(cell)
        return
    if _error_of(cell) is not None:
        nb.cells.remove(cell)


#: How a dashboard's saved snapshot says when ``nbcarbon run`` took it.
RUN_END = "as at the end of the run"
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _refresh_dashboards(client: Any, nb: Any) -> None:
    """Give each dashboard the run showed the snapshot of the run's end.

    A dashboard shown by an early cell was saved with that moment's snapshot ("0 cells"), which
    is what GitHub and nbviewer show. The kernel holds the session, so it is asked for the
    snapshot; the run's outputs are then edited in place, as nobody watches the widget here.
    A failure leaves the snapshots as they were, never the run.
    """
    import ast
    import json

    shown = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
             if _WIDGET_VIEW in out.get("data", {})
             and str(out["data"].get("text/plain", "")).startswith("nbcarbon dashboard (")]
    if not shown:
        return
    code = ("__import__('nbcarbon.panel').panel.snapshot_json("
            f"__import__('nbcarbon.api').api.default_session(), {RUN_END!r})")
    try:
        msg_id = client.kc.execute("", silent=True, store_history=False,
                                   user_expressions={"snapshot": code})
        reply = client.wait_for_reply(msg_id)
        found = reply["content"]["user_expressions"]["snapshot"]
        bundle = json.loads(ast.literal_eval(found["data"]["text/plain"]))
    except Exception:  # noqa: BLE001 - the run's records stand; the snapshots stay as saved
        return
    for out in shown:
        out["data"]["text/plain"] = bundle["text/plain"]
        out["data"]["text/html"] = bundle["text/html"]


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
