"""The ``nbcarbon`` command: a thin layer over the runner, the notebook reader, the ledger and the session.

Exit status: 0 on success, 1 when the work failed (a cell failed, a file could not be read, a
notebook had no readable records, so the table is not the whole story), 2 for a usage error
(argparse's own convention). Expected failures are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nbcarbon", description=(
        "Energy and carbon footprint of notebooks: run them measured, report saved ones."))
    p.add_argument("--version", action="version", version=f"nbcarbon {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="execute a notebook with every cell measured")
    run.add_argument("notebook", type=Path)
    run.add_argument("-o", "--output", type=Path, help="output notebook (default NB.carbon.ipynb)")
    run.add_argument("--region", help="region code to price in (e.g. SE, US-CA)")
    run.add_argument("--pue", type=str, help="PUE, 1.0 to 3.0")
    run.add_argument("--timeout", type=float, default=None, help="seconds per cell")
    run.add_argument("--kernel", default=None, help="kernel name (default: the notebook's)")

    rep = sub.add_parser("report", help="report the footprints saved in notebooks")
    rep.add_argument("notebooks", type=Path, nargs="+")
    rep.add_argument("--region", help="re-price for this region")
    rep.add_argument("--pue", type=str, help="re-price with this PUE")
    rep.add_argument("--format", choices=("table", "json", "csv", "markdown"), default="table")
    rep.add_argument("--compare", nargs="+", metavar="CODE",
                     help="price the records in each region side by side (e.g. SE PL), not per cell")
    rep.add_argument("--plot", type=Path, metavar="PNG", help="with --compare: save the bar chart")

    reg = sub.add_parser("regions", help="list regions and their carbon intensity")
    reg.add_argument("text", nargs="?", default="")

    sub.add_parser("status", help="what this machine can measure, and why not")

    his = sub.add_parser("history", help="totals over time from the ledger (NBCARBON_LEDGER)")
    his.add_argument("--since", default="30d",
                     help="how far back: 30d, 12h, 2w, 90m, or a date like 2024-05-01 (default 30d)")
    his.add_argument("--by", choices=("notebook", "day"), default="notebook",
                     help="group by notebook name or by UTC day (default notebook)")
    his.add_argument("--format", choices=("table", "json", "csv", "markdown"), default="table")
    return p


def _usage_error(parser: argparse.ArgumentParser, message: str) -> int:
    parser.print_usage(sys.stderr)
    print(f"nbcarbon: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    from .errors import NbcarbonError

    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return {"run": cmd_run, "report": cmd_report, "regions": cmd_regions,
                "status": cmd_status, "history": cmd_history}[args.command](args)
    except NbcarbonError as exc:
        return _usage_error(parser, str(exc))


def _validate_pricing(region: str | None, pue: str | None) -> float | None:
    from . import intensity
    from .settings import parse_pue

    if region:
        intensity.lookup(region)
    return parse_pue(pue, "--pue") if pue is not None else None


def _fail(message: str) -> int:
    print(f"nbcarbon: {message}", file=sys.stderr)
    return 1


def cmd_run(args: argparse.Namespace) -> int:
    from . import report
    from .notebook import NotebookError, load_json

    pue = _validate_pricing(args.region, args.pue)
    if args.timeout is not None and not args.timeout > 0:
        raise _usage(f"--timeout must be a number of seconds > 0, not {args.timeout:g}")
    try:
        load_json(args.notebook)  # a clear message for a file that is not a notebook
    except NotebookError as exc:
        return _fail(str(exc))
    try:
        import nbclient  # noqa: F401

        from .runner import run_notebook, terminal_progress
    except ImportError as exc:
        return _fail(f"`nbcarbon run` needs nbclient and ipykernel ({exc}); "
                     "pip install 'nbcarbon[run]'")
    output = args.output or args.notebook.with_name(args.notebook.stem + ".carbon.ipynb")
    try:
        result = run_notebook(args.notebook, output, region=args.region, pue=pue,
                              timeout_s=args.timeout, kernel_name=args.kernel,
                              progress=terminal_progress())
    except (RuntimeError, OSError, ValueError) as exc:  # no kernel, a kernel without nbcarbon
        return _fail(f"could not run {args.notebook}: {exc}")
    print(report.render(report.rows(args.notebook.name, result.records), "table"))
    print(f"wrote {output}")
    failure = result.failure()
    if failure is not None:
        return _fail(f"{args.notebook.name}: {failure}; {output} has the records of every cell run, "
                     "this one included")
    return 0


def _usage(message: str) -> Exception:
    from .errors import SettingsError

    return SettingsError(message)


def _grouped(problems: list[str]) -> list[str]:
    """``path: cell N: why`` problems, one line per distinct ``why`` (5,000 future records: one line)."""
    import re

    groups: dict[tuple[str, str], list[str]] = {}
    for problem in problems:
        m = re.match(r"(.*): cell (\d+): (.*)", problem, re.S)
        path, cell, why = m.groups() if m else ("", "", problem)
        groups.setdefault((path, why), []).append(cell)
    out = []
    for (path, why), cells in groups.items():
        if not path:
            out.append(why)
            continue
        shown = ", ".join(cells[:5]) + (", ..." if len(cells) > 5 else "")
        out.append(f"{path}: skipped {len(cells)} record(s) (cell {shown}): {why}")
    return out


def cmd_report(args: argparse.Namespace) -> int:
    from . import intensity, report
    from .notebook import NotebookError, load_records
    from .session import priced

    pue = _validate_pricing(args.region, args.pue)
    for code in args.compare or ():
        intensity.lookup(code)
    region = priced(intensity.lookup(args.region), "report --region") if args.region else None
    all_rows = []
    all_records = []
    failed = False
    for path in args.notebooks:
        try:
            found = load_records(path)
        except NotebookError as exc:
            _fail(str(exc))
            failed = True
            continue
        for line in _grouped(found.problems):
            _fail(line)
        if not found.records:
            _fail(f"{path}: no readable nbcarbon records"
                  + ("" if found.problems else "; measure it with `nbcarbon run`"))
        failed = failed or bool(found.problems) or not found.records
        records = [fp.repriced(region, pue) for fp in found.records]
        all_records.extend(records)
        all_rows.extend(report.rows(path.name, records))
    if args.compare:
        from .compare import cli_compare

        if not all_records:
            return 1
        print(cli_compare(all_records, args.compare, args.format, pue,
                          str(args.plot) if args.plot else None))
        return 1 if failed else 0
    print(report.render(all_rows, args.format))
    return 1 if failed else 0


def cmd_regions(args: argparse.Namespace) -> int:
    from .status import regions_text

    print(regions_text(args.text))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .settings import Settings
    from .status import machine_status

    print(machine_status(Settings.from_environ(os.environ), os.environ))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    import sqlite3

    from . import report
    from .ledger import Ledger, LedgerError, parse_since
    from .settings import Settings

    try:
        since = parse_since(args.since)
    except ValueError as exc:
        raise _usage(str(exc)) from None
    path = Settings.from_environ(os.environ).ledger
    if path is None:
        return _fail("the ledger is off (NBCARBON_LEDGER=off), so there is no history")
    if not path.is_file():
        print(f"nbcarbon: no history yet: nothing has been recorded in {path}", file=sys.stderr)
        print(report.render_history([], args.by, args.format))
        return 0
    try:
        ledger = Ledger.open(path, create=False)
        try:
            groups = ledger.totals(since, args.by)
        finally:
            ledger.close()
    except (LedgerError, sqlite3.DatabaseError) as exc:
        return _fail(f"cannot read the ledger {path}: {exc}")
    print(report.render_history(groups, args.by, args.format))
    return 0
