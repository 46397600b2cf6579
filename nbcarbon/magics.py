"""The IPython layer: ``%%carbon``, ``%carbon`` and the cell hooks. The only module that talks to IPython.

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
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import MagicArgumentParser
from IPython.display import display, update_display
from IPython.utils.process import arg_split

from . import intensity, readout, summary
from . import session as session_module
from .api import close_default_session, default_session
from .errors import NbcarbonError
from .footprint import Footprint
from .session import Session, Window, priced
from .settings import parse_pue
from .status import region_brief, regions_text, session_status

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


@functools.lru_cache(maxsize=1)
def _cell_parser() -> MagicArgumentParser:
    parser = MagicArgumentParser(prog="%%carbon", add_help=False)
    parser.add_argument("--label", help="a name for this cell's footprint")
    parser.add_argument("--region", help="price this cell for this region (e.g. SE, US-CA)")
    parser.add_argument("--pue", help="price this cell with this PUE (1.0 to 3.0)")
    parser.add_argument("--quiet", action="store_true", help="a one-line readout")
    return parser


@functools.lru_cache(maxsize=64)
def parse_cell_options(argline: str) -> CellOptions:
    """Parse and validate the ``%%carbon`` line; a bad value is a one-line ``UsageError``."""
    args = _cell_parser().parse_args(arg_split(argline, posix=True))
    try:
        if args.region is not None:
            intensity.lookup(args.region)
        pue = parse_pue(args.pue, "--pue") if args.pue is not None else None
    except NbcarbonError as exc:
        raise UsageError(str(exc)) from None
    return CellOptions(args.label, args.region, pue, args.quiet)


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
        self._executing = False
        self._open: tuple[Window, CellOptions] | None = None
        self._shown: dict[str, bool] = {}  # record id -> compact readout shown
        self._summaries: dict[str, tuple[tuple[str, ...], str]] = {}  # id -> (cell ids, created_at)
        self._pending: dict[str, Any] = {}  # pricing changes asked for while a measured cell runs
        self.dask_auto: Any = None  # nbcarbon.cluster.AutoAttach while `%carbon dask on`
        self.dashboard: Any = None  # the live panel, at most one (nbcarbon.panel.Dashboard)
        self._unsubscribe = session.on_reprice(self._update_readouts)

    # -- wiring ------------------------------------------------------------------------------
    def attach(self) -> None:
        self.shell.events.register("pre_run_cell", self.pre_run_cell)
        self.shell.events.register("post_run_cell", self.post_run_cell)
        self.shell.input_transformers_cleanup.append(self._strip)
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
        if self._executing or not lines:
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

    def pre_run_cell(self, info: Any) -> None:
        self._executing = True
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
            window = self.session.begin(options.label, options.region, options.pue, source=source)
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - never the user's cell's problem
            _not_measured("starting", exc)
            return
        self._open = (window, options)

    def post_run_cell(self, result: Any) -> None:
        self._executing = False
        if self._open is None:
            return
        (window, options), self._open = self._open, None
        if isinstance(result.error_in_exec, KeyboardInterrupt):
            status = "interrupted"
        elif result.error_in_exec is not None or result.error_before_exec is not None:
            status = "error"
        else:
            status = "ok"
        cell_id = getattr(result.info, "cell_id", None)
        try:
            fp = self.session.end(window, status, result.execution_count, cell_id)
            self.show(fp, options.compact)
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the cell has run: keep it so
            _not_measured("closing", exc)
        finally:
            try:
                self._apply_pending()
            except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001
                _not_measured("re-pricing", exc)

    # -- readouts ----------------------------------------------------------------------------
    def show(self, fp: Footprint, compact: bool) -> None:
        data, metadata = readout.mimebundle(fp, compact)
        display(data, raw=True, metadata=metadata, display_id=fp.id)
        self._shown[fp.id] = compact
        while len(self._shown) > session_module.RECORDS_KEPT:  # the session re-prices no older ones
            del self._shown[next(iter(self._shown))]
        for notice in self.session.take_notices():
            print(notice, file=sys.stderr)

    def _update_readouts(self, changed: list[Footprint]) -> None:
        """Re-render every readout and summary shown, in place, through their display ids.

        This also runs outside any cell (the dashboard's selector is handled as a comm message):
        the frontend applies ``update_display_data`` by display id whichever message caused it.
        """
        for fp in changed:
            compact = self._shown.get(fp.id)
            if compact is None:
                continue
            data, metadata = readout.mimebundle(fp, compact)
            update_display(data, raw=True, metadata=metadata, display_id=fp.id)
        if changed and self._summaries:
            by_id = {fp.id: fp for fp in self.session.records}
            for summary_id, (cells, created_at) in self._summaries.items():
                if all(c in by_id for c in cells):  # after %carbon reset a summary keeps its prices
                    self._show_summary([by_id[c] for c in cells], summary_id, created_at)

    def show_summary(self) -> None:
        """``%carbon summary``: the static table of the session's cells, with its own record.

        It is re-priced in place like the readouts, as long as the session holds its cells.
        """
        records = list(self.session.records)
        record = self._show_summary(records)
        self._summaries[record["id"]] = (tuple(fp.id for fp in records), record["created_at"])
        while len(self._summaries) > _SUMMARIES_KEPT:
            del self._summaries[next(iter(self._summaries))]

    def _show_summary(self, records: list[Footprint], summary_id: str | None = None,
                      created_at: str | None = None) -> dict[str, Any]:
        from . import __version__

        data, metadata = summary.mimebundle(records, self.session.region, self.session.pue,
                                            __version__, summary_id, created_at)
        record: dict[str, Any] = metadata["nbcarbon"]
        if summary_id is None:
            display(data, raw=True, metadata=metadata, display_id=record["id"])
        else:
            update_display(data, raw=True, metadata=metadata, display_id=summary_id)
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
        if self._open is not None:
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
        """Run a cell body measured, for ``%%carbon`` nested in another cell magic."""
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame in tracebacks
        shell = self.shell
        code = shell.transform_cell(cell)
        filename = shell.compile.cache(code)
        tree = ast.parse(code, filename)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        try:
            window: Window | None = self.session.begin(options.label, options.region, options.pue)
        except Exception as exc:  # noqa: BLE001 - a Ctrl-C here interrupts the cell before it runs
            _not_measured("starting", exc)
            window = None
        status = "error"
        try:
            exec(compile(tree, filename, "exec", flags=shell.compile.flags), shell.user_ns)
            value = None
            if last is not None:
                value = eval(compile(last, filename, "eval", flags=shell.compile.flags),
                             shell.user_ns)
            status = "ok"
            return value
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            if window is not None:
                try:
                    count = shell.execution_count - 1 if shell.execution_count else None
                    self.show(self.session.end(window, status, count), options.compact)
                except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the user's outcome stands
                    _not_measured("closing", exc)


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


@magics_class
class CarbonMagics(Magics):
    """``%carbon`` and ``%%carbon``."""

    def __init__(self, shell: Any, extension: CarbonExtension) -> None:
        super().__init__(shell)
        self.ext = extension

    @line_cell_magic
    def carbon(self, line: str, cell: str | None = None) -> Any:
        """Measure the energy and carbon of notebook cells.

        %%carbon [--label TEXT] [--region CODE] [--pue X] [--quiet]
            Measure this cell and show its footprint under it (kept in the saved notebook).

        %carbon                  the same as %carbon status
        %carbon status           meters and how they measure, region, PUE, session totals
        %carbon region CODE      price the session in another region (SE, US-CA, aws:eu-north-1)
        %carbon regions [TEXT]   list regions matching TEXT with intensity, year and source
        %carbon pue X            set the PUE (1.0 to 3.0)
        %carbon auto on|off      measure every cell, with a one-line readout
        %carbon dashboard        a live panel: totals, power now, region and PUE, last cells
        %carbon summary          a static table of the session's cells and totals (with a record)
        %carbon live on|off      price cells with live grid intensity (UK, Denmark, Electricity Maps)
        %carbon forecast [HOURS] [--job H]  intensity ahead and the greenest start for an H-hour job
        %carbon dask on|off      include the default Dask client's workers in every measured cell
        %carbon compare CODE...  the session's work priced in each region (table + bar chart)
        %carbon plot [cells]     energy per cell, stacked by component (returns the figure)
        %carbon plot timeline    power over time, measured cells shaded (returns the figure)
        %carbon reset            forget the session's records (notebooks keep theirs)

        A region or PUE change re-prices every readout and total shown; made while a measured
        cell runs (e.g. from the dashboard), it applies when that cell finishes.
        """
        if cell is not None:
            options = parse_cell_options(line)
            return self.ext.run_body(cell, options)
        words = arg_split(line, posix=True)
        command, rest = (words[0], words[1:]) if words else ("status", [])
        try:
            return self._command(command, rest)
        except NbcarbonError as exc:
            raise UsageError(str(exc)) from None

    def _forecast(self, rest: list[str]) -> Any:
        """``%carbon forecast [HOURS] [--job H]``: the intensity ahead and the greenest start."""
        from .live.commands import forecast_report

        hours, job_h, words = 24.0, 1.0, list(rest)
        try:
            if "--job" in words:
                i = words.index("--job")
                job_h = float(words[i + 1])
                del words[i:i + 2]
            if len(words) > 1:
                raise ValueError
            if words:
                hours = float(words[0])
            report = forecast_report(self.ext.session, hours, job_h)
        except (ValueError, IndexError) as exc:
            detail = f": {exc}" if str(exc) else ""
            raise UsageError("usage: %carbon forecast [HOURS] [--job H] (hours ahead, job length)"
                             + detail) from None
        print(report.text)
        return report.figure() if report.series else None

    def _command(self, command: str, rest: list[str]) -> Any:
        session = self.ext.session
        later = "; applies when this cell finishes"
        if command == "status" and not rest:
            print(session_status(session, self.ext.auto))
        elif command == "region" and len(rest) == 1:
            changed = self.ext.change_pricing(region=rest[0])
            if changed is None:
                print(f"nbcarbon: region {region_brief(priced(intensity.lookup(rest[0]), 'command'))}"
                      f"{later}")
            else:
                print(f"nbcarbon: region {region_brief(session.region)}; "
                      f"{len(changed)} readout(s) re-priced")
        elif command == "regions" and len(rest) <= 1:
            print(regions_text(rest[0] if rest else ""))
        elif command == "pue" and len(rest) == 1:
            changed = self.ext.change_pricing(pue=rest[0])
            if changed is None:
                print(f"nbcarbon: PUE {parse_pue(rest[0], 'PUE'):g}{later}")
            else:
                print(f"nbcarbon: PUE {session.pue:g}; {len(changed)} readout(s) re-priced")
        elif command == "dashboard" and not rest:
            display(self.ext.open_dashboard().widget)
        elif command == "summary" and not rest:
            self.ext.show_summary()
        elif command == "live" and rest in (["on"], ["off"]):
            from .live.commands import set_live

            print(set_live(session, rest == ["on"]))
        elif command == "forecast":
            return self._forecast(rest)
        elif command == "dask" and rest in (["on"], ["off"]):
            from .cluster import auto

            if self.ext.dask_auto is not None:
                self.ext.dask_auto.detach()
                self.ext.dask_auto = None
            if rest == ["on"]:
                self.ext.dask_auto = auto(session)
            state = "on: cells include the default Dask client's workers" if rest == ["on"] else "off"
            print(f"nbcarbon: dask {state}")
        elif command == "compare" and rest:
            from .compare import compare, compare_figure, compare_table, outermost

            rows = compare(outermost(session.records), rest)
            text, html = compare_table(rows)
            display({"text/plain": text, "text/html": html}, raw=True)
            return compare_figure(rows)
        elif command == "plot" and rest in ([], ["cells"], ["timeline"]):
            return self._plot(rest[0] if rest else "cells")
        elif command == "auto" and rest in (["on"], ["off"]):
            self.ext.auto = rest[0] == "on"
            print(f"nbcarbon: auto {'on: every cell is measured' if self.ext.auto else 'off'}")
        elif command == "reset" and not rest:
            session.reset()
            if self.ext.dashboard is not None:
                self.ext.dashboard.refresh()
            print("nbcarbon: session records forgotten (saved readouts and the ledger keep theirs)")
        else:
            raise UsageError(
                f"%carbon {' '.join([command, *rest])}: unknown command; use one of: status, "
                "region CODE, regions [TEXT], pue X, auto on|off, dashboard, summary, "
                "compare CODE..., live on|off, forecast [HOURS], dask on|off, plot [cells|timeline], reset "
                "(see %carbon?)"
            )
        return None

    def _plot(self, what: str) -> Any:
        from . import plots

        session = self.ext.session
        if what == "cells":
            return plots.cells_figure(list(session.records))
        sampler = session.sampler
        timeline = list(sampler.timeline) if sampler is not None else []
        channels = [m.channel for m in sampler.meters] if sampler is not None else []
        return plots.timeline_figure(timeline, channels, list(session.records))


def load_line(ext: CarbonExtension) -> str:
    found = ext.session.probe_result
    parts = [f"{m.channel.component} ({readout.METHOD_LABEL[m.channel.method]})"
             for m in found.meters]
    r = ext.session.region
    return (f"nbcarbon: measuring {', '.join(parts) or 'nothing'}; region {r.code} "
            f"{r.g_per_kwh:.4g} g/kWh ({r.chosen_by}). %carbon status for details")


def load(shell: Any) -> None:
    """Attach to ``shell`` once; a second load is harmless."""
    if id(shell) in _extensions:
        return
    try:
        session = default_session()
    except NbcarbonError as exc:  # a bad NBCARBON_* value: one line naming it, not a traceback
        raise UsageError(str(exc)) from None
    session.start()
    ext = CarbonExtension(shell, session)
    ext.attach()
    _extensions[id(shell)] = ext
    print(load_line(ext))


def open_dashboard(shell: Any) -> Any:
    """``nbcarbon.dashboard()``: load the extension into ``shell`` if needed, return a new panel."""
    if shell is None:
        raise NbcarbonError("nbcarbon.dashboard() needs IPython or Jupyter (ipywidgets show in Jupyter)")
    load(shell)
    return _extensions[id(shell)].open_dashboard()


def unload(shell: Any) -> None:
    """Detach from ``shell`` and stop the sampler thread."""
    ext = _extensions.pop(id(shell), None)
    if ext is not None:
        ext.detach()
    close_default_session()
