"""``%carbon`` and ``%%carbon`` as IPython sees them: argument parsing and the subcommands.

Each subcommand is a few lines that call the extension (:class:`nbcarbon.magics.CarbonExtension`)
or the session; measuring and re-pricing live there, not here. The docstring of
:meth:`CarbonMagics.carbon` is the ``%carbon?`` help, so help and commands never drift apart.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import display

from . import intensity
from .errors import NbcarbonError
from .magics import CarbonExtension, parse_cell_options, split_args, usage_line
from .session import priced
from .settings import parse_pue
from .status import attribution_line, region_brief, regions_text, session_status

#: What each command takes, for the message when it is given the wrong arguments.
USAGE = {
    "status": "%carbon status (no arguments)",
    "region": "%carbon region CODE (one code: an ISO country code or name, US-CA, aws:eu-north-1, WORLD)",
    "regions": "%carbon regions [TEXT] (at most one search text)",
    "pue": "%carbon pue X (one number from 1 to 3)",
    "dashboard": "%carbon dashboard (no arguments)",
    "summary": "%carbon summary (no arguments)",
    "live": "%carbon live on|off",
    "dask": "%carbon dask on|off",
    "compare": "%carbon compare CODE [CODE ...] (one or more regions)",
    "plot": "%carbon plot [cells|timeline]",
    "auto": "%carbon auto on|off",
    "attribution": "%carbon attribution [share|machine]",
    "reset": "%carbon reset (no arguments)",
}


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
        %carbon attribution share|machine  charge cells their share of machine-wide counters
                                 (default) or everything the machine did
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
        words = split_args(line, "%carbon")  # an unbalanced quote: a UsageError, one line
        command, rest = (words[0], words[1:]) if words else ("status", [])
        try:
            return self._command(command, rest)
        except (NbcarbonError, UsageError) as exc:  # they echo what was typed: one line, escaped
            raise UsageError(usage_line(str(exc))) from None

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
            for value, what in ((hours, "HOURS"), (job_h, "--job")):
                if not 0 < value < float("inf"):  # checked before any provider is asked
                    raise ValueError(f"{what} must be a positive number of hours, not {value:g}")
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
            display(self.ext.open_dashboard())  # the widget, with a static fallback
        elif command == "summary" and not rest:
            self.ext.show_summary()
        elif command == "live" and rest == ["off"]:
            from .status import live_off  # not nbcarbon.live: turning it off imports no network code

            print(live_off(session))
        elif command == "live" and rest == ["on"]:
            from .live.commands import set_live

            print(set_live(session, True))
        elif command == "forecast":
            return self._forecast(rest)
        elif command == "dask" and rest in (["on"], ["off"]):
            if self.ext.dask_auto is not None:
                self.ext.dask_auto.detach()
                self.ext.dask_auto = None
            if rest == ["on"]:
                try:
                    from .cluster import auto
                except ImportError as exc:  # distributed is an extra: say which, not a traceback
                    raise UsageError(f"%carbon dask on needs Dask's distributed ({exc}); install it "
                                     "with pip install 'nbcarbon[dask]'") from None
                self.ext.dask_auto = auto(session)
            state = "on: cells include the default Dask client's workers" if rest == ["on"] else "off"
            print(f"nbcarbon: dask {state}")
        elif command == "compare" and rest:
            from .compare import compare, compare_figure, compare_table

            rows = compare(session.records, rest)
            text, html = compare_table(rows)
            display({"text/plain": text, "text/html": html}, raw=True)
            return compare_figure(rows)
        elif command == "plot" and rest in ([], ["cells"], ["timeline"]):
            return self._plot(rest[0] if rest else "cells")
        elif command == "auto" and rest in (["on"], ["off"]):
            self.ext.auto = rest[0] == "on"
            print(f"nbcarbon: auto {'on: every cell is measured' if self.ext.auto else 'off'}")
        elif command == "attribution" and len(rest) <= 1:
            if rest:
                session.set_attribution(rest[0])
            print(f"nbcarbon: {attribution_line(session)}")
        elif command == "reset" and not rest:
            session.reset()
            if self.ext.dashboard is not None:
                self.ext.dashboard.refresh()
            print("nbcarbon: the session's totals start afresh (readouts already shown are still "
                  "re-priced; saved notebooks and the ledger keep every record)")
        elif command in USAGE:
            raise UsageError(f"%carbon {' '.join([command, *rest])}: usage: {USAGE[command]}")
        else:
            raise UsageError(
                f"%carbon {' '.join([command, *rest])}: unknown command; use one of: status, "
                "region CODE, regions [TEXT], pue X, auto on|off, attribution share|machine, "
                "dashboard, summary, "
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
