"""The ``nbcarbon`` command: a thin layer over the runner, the notebook reader and the session.

Exit status: 0 on success, 1 when the work failed (a cell failed, a file could not be read),
2 for a usage error (argparse's own convention).
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

    reg = sub.add_parser("regions", help="list regions and their carbon intensity")
    reg.add_argument("text", nargs="?", default="")

    sub.add_parser("status", help="what this machine can measure, and why not")
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
                "status": cmd_status}[args.command](args)
    except NbcarbonError as exc:
        return _usage_error(parser, str(exc))


def _validate_pricing(region: str | None, pue: str | None) -> float | None:
    from . import intensity
    from .settings import parse_pue

    if region:
        intensity.lookup(region)
    return parse_pue(pue, "--pue") if pue is not None else None


def cmd_run(args: argparse.Namespace) -> int:
    from . import report
    from .runner import run_notebook, terminal_progress

    pue = _validate_pricing(args.region, args.pue)
    if not args.notebook.is_file():
        print(f"nbcarbon: cannot read {args.notebook}: no such file", file=sys.stderr)
        return 1
    output = args.output or args.notebook.with_name(args.notebook.stem + ".carbon.ipynb")
    result = run_notebook(args.notebook, output, region=args.region, pue=pue,
                          timeout_s=args.timeout, kernel_name=args.kernel,
                          progress=terminal_progress())
    print(report.render(report.rows(args.notebook.name, result.records), "table"))
    print(f"wrote {output}")
    if result.failed_cell is not None:
        print(f"nbcarbon: cell {result.failed_cell} failed: {result.error}", file=sys.stderr)
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from . import intensity, report
    from .notebook import NotebookError, load_records
    from .session import priced

    pue = _validate_pricing(args.region, args.pue)
    region = priced(intensity.lookup(args.region), "report --region") if args.region else None
    all_rows = []
    failed = False
    for path in args.notebooks:
        try:
            found = load_records(path)
        except NotebookError as exc:
            print(f"nbcarbon: {exc}", file=sys.stderr)
            failed = True
            continue
        for problem in found.problems:
            print(f"nbcarbon: skipped a record: {problem}", file=sys.stderr)
        if not found.records:
            print(f"nbcarbon: {path}: no nbcarbon records (run it with `nbcarbon run`)",
                  file=sys.stderr)
        records = [fp.repriced(region, pue) for fp in found.records]
        all_rows.extend(report.rows(path.name, records))
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
