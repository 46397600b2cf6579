"""The IPython layer: the cell hooks that measure cells and show readouts (``%carbon``'s commands
are in ``commands.py``). With those two, the only modules that talk to IPython.

How a cell is measured without changing how it runs: a ``%%carbon`` line at the top of a cell is
turned into a comment by an input transformer (line numbers in tracebacks stay those the user
sees), and the measurement window is opened in ``pre_run_cell`` and closed in ``post_run_cell``.
The cell itself is then executed by IPython exactly as it would be without nbcarbon, so its
``Out[n]``, displays, ``await``, tracebacks and the execution reply's status are IPython's own.

Where the transformer cannot apply (``%%carbon`` nested inside another cell magic such as
``%%time``, or with arguments to reject), IPython calls the real cell magic, which runs the body
itself in the ``%%time`` style and lets the user's exception propagate unchanged.
"""

from __future__ import annotations

import ast
import functools
import sys
from dataclasses import dataclass
from types import CodeType
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser
from IPython.display import display
from IPython.utils.process import arg_split

from . import intensity, readout, shown, summary
from .api import close_default_session, default_session
from .errors import NbcarbonError
from .footprint import METADATA_KEY, Footprint, outside_open, top_level
from .session import Session, Window
from .settings import parse_pue

MAGIC = "%%carbon"
#: Summaries re-priced in place when the region or PUE changes: the most recent ones.
_SUMMARIES_KEPT = 100
_extensions: dict[int, "CarbonExtension"] = {}


@dataclass(frozen=True)
class CellOptions:
    label: str | None = None
    region: str | None = None
    pue: float | None = None
    compact: bool = False


@dataclass
class _Frame:
    """One ``run_cell`` in progress (cells can run cells) and the window measuring it, if any.

    Kept as a stack so that a cell run by a measured cell (``get_ipython().run_cell``,
    ``%%capture``) neither closes nor replaces the outer cell's window.
    """

    info: Any  # the ExecutionInfo IPython passed to pre_run_cell (post_run_cell gets it back)
    window: Window | None = None
    options: "CellOptions | None" = None


@functools.lru_cache(maxsize=1)
def _cell_parser() -> MagicArgumentParser:
    parser = MagicArgumentParser(prog="%%carbon", add_help=False)
    parser.add_argument("--label", help="a name for this cell's footprint")
    parser.add_argument("--region", help="price this cell for this region (e.g. SE, US-CA)")
    parser.add_argument("--pue", help="price this cell with this PUE (1.0 to 3.0)")
    parser.add_argument("--quiet", action="store_true", help="a one-line readout")
    return parser


def split_args(argline: str, magic: str) -> list[str]:
    """A magic's argument line split as a shell would, or a one-line ``UsageError``.

    ``shlex`` raises ``ValueError`` for an unbalanced quote (``--label Bob's``); raised from the
    input transformer or a cell hook, that would be IPython's "Error in callback" and two
    tracebacks, so it is turned into the usage error it is, saying how to quote.
    """
    try:
        return arg_split(argline, posix=True)
    except ValueError as exc:
        shown = usage_line(argline)
        shown = shown if len(shown) <= 60 else shown[:59] + "…"
        hint = ("for an apostrophe in a value write \"Bob's\" or Bob\\'s" if "'" in argline
                else "close the quotation mark")
        raise UsageError(f"{magic} {shown}: {str(exc).lower() or 'cannot be split'}; {hint}") from None


@functools.lru_cache(maxsize=64)
def parse_cell_options(argline: str) -> CellOptions:
    """Parse and validate the ``%%carbon`` line; a bad value is a one-line ``UsageError``."""
    try:
        args = _cell_parser().parse_args(split_args(argline, MAGIC))
    except UsageError as exc:  # argparse quotes what it did not understand: show it, never obey it
        raise UsageError(usage_line(str(exc))) from None
    try:
        if args.region is not None:
            intensity.lookup(args.region)
        pue = parse_pue(args.pue, "--pue") if args.pue is not None else None
    except NbcarbonError as exc:
        raise UsageError(usage_line(str(exc))) from None
    return CellOptions(args.label, args.region, pue, args.quiet)


def usage_line(message: str) -> str:
    """A usage message as one line with control and bidi characters escaped (it echoes input)."""
    from .readout import escape_controls

    return escape_controls(" ".join(message.split()))


def _magic_argline(first_line: str) -> str | None:
    """The arguments of a ``%%carbon`` first line, or ``None`` if the line is not that magic."""
    line = first_line.strip()
    if not line.startswith(MAGIC):
        return None
    rest = line[len(MAGIC):]
    if rest and not rest[0].isspace():
        return None
    return rest


def _first_line(raw_cell: str) -> str:
    for line in raw_cell.splitlines():
        if line.strip():
            return line
    return ""


def _only_carbon_commands(raw_cell: str) -> bool:
    """Cells of nothing but ``%carbon ...`` lines are settings, not work: auto mode skips them."""
    lines = [ln.strip() for ln in raw_cell.splitlines() if ln.strip()]
    return bool(lines) and all(
        ln.startswith(("%carbon", "%load_ext nbcarbon", "%reload_ext nbcarbon")) for ln in lines
    )


class CarbonExtension:
    """Everything nbcarbon attached to one shell, so unloading can detach exactly that."""

    def __init__(self, shell: Any, session: Session) -> None:
        self.shell = shell
        self.session = session
        self.auto = False
        self._frames: list[_Frame] = []  # the run_cell calls in progress, outermost first
        self._shown = shown.registry(session)
        # summary id -> (its records' ids, created_at, windows of a running cell left out)
        self._summaries: dict[str, tuple[tuple[str, ...], str, int]] = {}
        self._pending: dict[str, Any] = {}  # pricing changes asked for while a measured cell runs
        self.dask_auto: Any = None  # nbcarbon.cluster.AutoAttach while `%carbon dask on`
        self.dashboard: Any = None  # the live panel, at most one (nbcarbon.panel.Dashboard)
        self._unsubscribe = session.on_reprice(self._update_summaries)

    # -- wiring ------------------------------------------------------------------------------
    def attach(self) -> None:
        self.shell.events.register("pre_run_cell", self.pre_run_cell)
        self.shell.events.register("post_run_cell", self.post_run_cell)
        self.shell.input_transformers_cleanup.append(self._strip)
        from .commands import CarbonMagics

        self.shell.register_magics(CarbonMagics(self.shell, self))

    def detach(self) -> None:
        for event, hook in (("pre_run_cell", self.pre_run_cell),
                            ("post_run_cell", self.post_run_cell)):
            if hook in self.shell.events.callbacks[event]:
                self.shell.events.unregister(event, hook)
        if self._strip in self.shell.input_transformers_cleanup:
            self.shell.input_transformers_cleanup.remove(self._strip)
        self.shell.magics_manager.magics["line"].pop("carbon", None)
        self.shell.magics_manager.magics["cell"].pop("carbon", None)
        self._unsubscribe()
        if self.dask_auto is not None:
            self.dask_auto.detach()
            self.dask_auto = None
        if self.dashboard is not None:
            self.dashboard.close()  # stops its thread before the session's sampler stops

    # -- the transformer and the hooks -------------------------------------------------------
    def _strip(self, lines: list[str]) -> list[str]:
        """Comment out a top-level ``%%carbon`` line whose arguments are valid; leave all else.

        The line stays (as a comment), so tracebacks show the cell as the user wrote it.
        """
        if self._frames or not lines:  # inside a cell: %%time's body, run_body's own transform
            return lines
        argline = _magic_argline(lines[0])
        if argline is None:
            return lines
        try:
            parse_cell_options(argline)
        except UsageError:  # the real magic reports it, and the cell does not run
            return lines
        if len(lines) > 1 and lines[1].lstrip().startswith("%%"):
            return lines[1:]  # another cell magic follows: it must stay the cell's first line
        first = lines[0] if lines[0].endswith("\n") else lines[0] + "\n"
        return ["#" + first, *lines[1:]]

    @property
    def measuring(self) -> bool:
        """True while a measured cell runs (pricing changes then wait for its end)."""
        return any(f.window is not None for f in self._frames)

    def pre_run_cell(self, info: Any) -> None:
        frame = _Frame(info)
        self._frames.append(frame)
        argline = _magic_argline(_first_line(info.raw_cell or ""))
        if argline is not None:
            try:
                options = parse_cell_options(argline)
            except UsageError:  # the real magic will raise it; nothing to measure
                return
        elif self.auto and not _only_carbon_commands(info.raw_cell or ""):
            options = CellOptions(compact=True)
        else:
            return
        source = "magic" if argline is not None else "auto"
        try:
            frame.window = self.session.begin(options.label, options.region, options.pue,
                                              source=source, top=len(self._frames) == 1)
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - never the user's cell's problem
            _not_measured("starting", exc)
            return
        frame.options = options

    def post_run_cell(self, result: Any) -> None:
        info = getattr(result, "info", None)
        depth = next((i for i in range(len(self._frames) - 1, -1, -1)
                      if self._frames[i].info is info), None)
        if depth is None:  # an empty cell: IPython sends post_run_cell without pre_run_cell
            return
        frames, self._frames = self._frames[depth:], self._frames[:depth]
        for lost in frames[1:]:  # inner cells that never finished (cannot happen in IPython)
            if lost.window is not None:
                self.session.abandon(lost.window)
        frame = frames[0]
        try:
            if frame.window is not None:
                self._close(frame, result)
        finally:
            if not self._frames:
                try:
                    self._apply_pending()
                except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001
                    _not_measured("re-pricing", exc)

    def _close(self, frame: _Frame, result: Any) -> None:
        window, options = frame.window, frame.options or CellOptions()
        assert window is not None
        if isinstance(result.error_in_exec, KeyboardInterrupt):
            status = "interrupted"
        elif result.error_in_exec is not None or result.error_before_exec is not None:
            status = "error"
        else:
            status = "ok"
        cell_id = getattr(result.info, "cell_id", None)
        count = result.execution_count if len(self._frames) == 0 else None
        try:
            fp = self.session.end(window, status, count, cell_id)
            self.show(fp, options.compact)
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the cell has run: keep it so
            self.session.abandon(window)
            _not_measured("closing", exc)

    # -- readouts ----------------------------------------------------------------------------
    def show(self, fp: Footprint, compact: bool) -> None:
        self._shown.show(fp, _compact_readout if compact else _full_readout)
        for notice in self.session.take_notices():
            print(notice, file=sys.stderr)

    def _update_summaries(self, changed: list[Footprint]) -> None:
        """Re-render every summary shown, in place, through its display id (readouts: shown.py)."""
        if changed and self._summaries:
            by_id = {fp.id: fp for fp in (*self.session.retired, *self.session.records)}
            for summary_id, (cells, created_at, left_out) in self._summaries.items():
                if all(c in by_id for c in cells):  # cells gone from the session keep their prices
                    self._show_summary([by_id[c] for c in cells], summary_id, created_at, left_out)

    def show_summary(self) -> None:
        """``%carbon summary``: the static table of the session's cells, with its own record.

        It is re-priced in place like the readouts, as long as the session holds its cells.
        Asked for inside a measured cell, it leaves out the windows nested in that cell (and
        says so): the cell's own record, still to come, covers them.
        """
        everything = list(self.session.records)
        records = outside_open(everything, self.session.open_ids())
        left_out = len(everything) - len(records)
        record = self._show_summary(records, left_out=left_out)
        self._summaries[record["id"]] = (tuple(fp.id for fp in records), record["created_at"],
                                         left_out)
        while len(self._summaries) > _SUMMARIES_KEPT:
            del self._summaries[next(iter(self._summaries))]

    def _show_summary(self, records: list[Footprint], summary_id: str | None = None,
                      created_at: str | None = None, left_out: int = 0) -> dict[str, Any]:
        from . import __version__

        # Top-level windows shown nowhere (track(display=False)): counted here, not in a report
        # on the saved file, so the summary says how many.
        unshown = sum(fp.id not in self._shown for fp in top_level(records))
        data, metadata = summary.mimebundle(records, self.session.region, self.session.pue,
                                            __version__, summary_id, created_at, left_out, unshown)
        record: dict[str, Any] = metadata[METADATA_KEY]
        if summary_id is None:
            display(data, raw=True, metadata=metadata, display_id=record["id"])
        else:  # direct and paced, as the readouts' updates (IPython's flushes streams each time)
            shown.update_output(data, metadata, summary_id)
        return record

    # -- pricing: now, or when the measured cell that is running finishes ----------------------
    def change_pricing(self, region: str | None = None, pue: object = None,
                       chosen_by: str = "command") -> list[Footprint] | None:
        """Re-price the session and everything shown; ``None`` if deferred to the cell's end.

        Values are validated at once (a bad one raises and changes nothing). While a measured
        cell runs, the change waits for ``post_run_cell``, so that cell's record, the totals and
        the readouts are all priced the same way.
        """
        if region is not None:
            intensity.lookup(region)
        if pue is not None:
            pue = parse_pue(pue, "PUE")
        if self.measuring:
            if region is not None:
                self._pending["region"] = (region, chosen_by)
            if pue is not None:
                self._pending["pue"] = pue
            return None
        changed: dict[str, Footprint] = {}
        if region is not None:
            changed.update((fp.id, fp) for fp in self.session.set_region(region, chosen_by))
        if pue is not None:
            changed.update((fp.id, fp) for fp in self.session.set_pue(pue))
        for notice in self.session.take_notices():  # a listener that failed: said now, not later
            print(notice, file=sys.stderr)
        return list(changed.values())

    def _apply_pending(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        region, chosen_by = pending.get("region", (None, "command"))
        self.change_pricing(region, pending.get("pue"), chosen_by)
        if self.dashboard is not None:
            self.dashboard.applied()

    # -- the dashboard -----------------------------------------------------------------------
    def open_dashboard(self) -> Any:
        """A new live panel; the previous one, if any, is closed (one live thread at most)."""
        from .panel import Dashboard

        if self.dashboard is not None:
            self.dashboard.close()

        def set_pricing(**change: Any) -> list[Footprint] | None:
            return self.change_pricing(**change, chosen_by="dashboard")

        def forget(dash: Any) -> None:
            if self.dashboard is dash:
                self.dashboard = None

        self.dashboard = Dashboard(self.session, set_pricing, on_close=forget)
        return self.dashboard

    # -- the nested path ---------------------------------------------------------------------
    def run_body(self, cell: str, options: CellOptions) -> Any:
        """Run a cell body measured, for ``%%carbon`` nested in another cell magic.

        Inside a cell the kernel is running, the cell has one window, closed by
        ``post_run_cell`` with the cell's own status: opened here on the first call if the cell
        is not measured yet, and shared by every later call (``%%timeit`` runs this thousands of
        times; ``%%carbon`` twice is one measurement). Outside any cell (called directly) the
        body gets its own window.
        """
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame in tracebacks
        if self._frames:
            frame = self._frames[-1]
            if frame.window is None:
                try:
                    frame.window = self.session.begin(options.label, options.region, options.pue,
                                                      top=len(self._frames) == 1)
                    frame.options = options
                except Exception as exc:  # noqa: BLE001 - a Ctrl-C here interrupts the cell
                    _not_measured("starting", exc)
            elif frame.options is not None and frame.options.compact and not options.compact:
                try:  # auto mode measures the cell already: the magic's options name that window
                    frame.window = self.session.adopt(frame.window, options.label, options.region,
                                                      options.pue)
                    frame.options = options
                except Exception as exc:  # noqa: BLE001
                    _not_measured("labelling", exc)
            return self._execute(cell)
        try:
            window: Window | None = self.session.begin(options.label, options.region, options.pue)
        except Exception as exc:  # noqa: BLE001 - a Ctrl-C here interrupts the cell before it runs
            _not_measured("starting", exc)
            window = None
        status = "error"
        try:
            value = self._execute(cell)
            status = "ok"
            return value
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            if window is not None:
                try:
                    count = self.shell.execution_count - 1 if self.shell.execution_count else None
                    self.show(self.session.end(window, status, count), options.compact)
                except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the user's outcome stands
                    self.session.abandon(window)
                    _not_measured("closing", exc)

    def _execute(self, cell: str) -> Any:
        """Run ``cell`` in the user's namespace; the value of a last expression is returned."""
        __tracebackhide__ = True  # noqa: F841
        body, last = _compiled(self.shell, cell)
        exec(body, self.shell.user_ns)
        return eval(last, self.shell.user_ns) if last is not None else None


def _compiled(shell: Any, cell: str) -> tuple[CodeType, CodeType | None]:
    """The cell's statements and its last expression, compiled once per cell text.

    ``%%timeit`` calls the magic in its timing loop: compiling there would be timed too.
    """
    cache: dict[str, tuple[CodeType, CodeType | None]] = shell.__dict__.setdefault(
        "_nbcarbon_compiled", {})
    found = cache.get(cell)
    if found is not None:
        return found
    code = shell.transform_cell(cell)
    filename = shell.compile.cache(code)
    tree = ast.parse(code, filename)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = compile(ast.Expression(tree.body.pop().value), filename, "eval",
                       flags=shell.compile.flags)
    found = (compile(tree, filename, "exec", flags=shell.compile.flags), last)
    if len(cache) >= 64:
        cache.pop(next(iter(cache)))
    cache[cell] = found
    return found


def _full_readout(fp: Footprint) -> tuple[dict[str, str], dict[str, Any]]:
    return readout.mimebundle(fp, False)


def _compact_readout(fp: Footprint) -> tuple[dict[str, str], dict[str, Any]]:
    return readout.mimebundle(fp, True)


def _not_measured(doing: str, exc: BaseException) -> None:
    """One line on stderr when nbcarbon itself fails around a cell; the cell's outcome is untouched.

    Used where a traceback would land in the user's notebook (IPython prints one for a failing
    event callback) or replace the user's own exception (the nested magic's ``finally``).
    """
    if isinstance(exc, KeyboardInterrupt):
        why = f"interrupted while {doing} the measurement"
    else:
        detail = (str(exc).splitlines() or [""])[0][:200]
        why = f"{type(exc).__name__} while {doing} the measurement" + (f": {detail}" if detail else "")
    print(f"nbcarbon: this cell is not measured ({why}); the cell itself is unaffected and "
          "the next cell is measured again.", file=sys.stderr)


def load_line(ext: CarbonExtension) -> str:
    found = ext.session.probe_result
    parts = [f"{m.channel.component} ({readout.METHOD_LABEL[m.channel.method]})"
             for m in found.meters]
    r = ext.session.region
    # Two short lines: one of 150 characters was broken mid-word by a narrow output area.
    return (f"nbcarbon: measuring {', '.join(parts) or 'nothing'}\n"
            f"  region {r.code} {r.g_per_kwh:.4g} g/kWh ({r.chosen_by}); %carbon status for details")


def load(shell: Any, quiet: bool = False) -> None:
    """Attach to ``shell`` once; a second load is harmless and prints the same line.

    ``quiet``: attach without the line (``nbcarbon run`` sets the kernel up this way, outside
    IPython's extension manager, so the notebook's own ``%load_ext nbcarbon`` prints its usual
    line rather than "already loaded").
    """
    if id(shell) in _extensions:
        if not quiet:
            print(load_line(_extensions[id(shell)]))
        return
    try:
        session = default_session()
    except NbcarbonError as exc:  # a bad NBCARBON_* value: one line naming it, not a traceback
        raise UsageError(str(exc)) from None
    session.start()
    ext = CarbonExtension(shell, session)
    ext.attach()
    _extensions[id(shell)] = ext
    if not quiet:
        print(load_line(ext))


def open_dashboard(shell: Any) -> Any:
    """``nbcarbon.dashboard()``: load the extension into ``shell`` if needed, return a new panel."""
    if shell is None:
        raise NbcarbonError("nbcarbon.dashboard() needs IPython or Jupyter (ipywidgets show in Jupyter)")
    if id(shell) not in _extensions:
        load(shell)
    return _extensions[id(shell)].open_dashboard()


def unload(shell: Any) -> None:
    """Detach from ``shell`` and stop the sampler thread."""
    ext = _extensions.pop(id(shell), None)
    if ext is not None:
        ext.detach()
    close_default_session()
