"""The ``nbcarbon`` command: a thin layer over the runner, the notebook reader, the ledger and the session.

Exit status: 0 on success, 1 when the work failed (a cell failed, a file could not be read, a
notebook had no readable records, so the table is not the whole story, or the reader of the
output went away: ``nbcarbon report X | head``), 2 for a usage error (argparse's own
convention). Expected failures are one line on stderr, never a traceback.

Everything printed goes through :func:`nbcarbon.readout.escape_controls`: file names, labels and
messages are arbitrary text, and a terminal must show them, never obey them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from . import __version__


class _Parser(argparse.ArgumentParser):
    """argparse, with its error line escaped: it quotes the arguments it did not understand."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        _say(f"{self.prog}: error: {' '.join(message.split())}", sys.stderr)
        self.exit(2)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="nbcarbon", description=(
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
    run.add_argument("--allow-errors", action="store_true",
                     help="run every cell even when some fail (as nbconvert --allow-errors); the "
                          "failing cells are listed and the exit status is 0. A cell tagged "
                          "raises-exception may always fail")

    rep = sub.add_parser("report", help="report the footprints saved in notebooks")
    rep.add_argument("notebooks", type=Path, nargs="+")
    rep.add_argument("--region", help="re-price for this region")
    rep.add_argument("--pue", type=str, help="re-price with this PUE")
    rep.add_argument("--format", choices=("table", "json", "csv", "markdown", "latex", "svg"),
                     default="table", help="markdown and latex add a methods paragraph for papers; "
                     "svg is a README badge")
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


def _say(text: str, stream: TextIO | None = None) -> None:
    """Print ``text`` with control and bidi characters escaped (newlines between lines kept)."""
    from .readout import escape_controls

    print(escape_controls(text, keep="\n"), file=stream or sys.stdout)


def _usage_error(parser: argparse.ArgumentParser, message: str) -> int:
    parser.print_usage(sys.stderr)
    _say(f"nbcarbon: error: {' '.join(message.split())}", sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    from .errors import NbcarbonError

    parser = _parser()
    args = parser.parse_args(argv)
    for name in ("since", "region", "pue", "text", "kernel"):
        if isinstance(getattr(args, name, None), list):  # argparse makes `--since=--` an empty list
            setattr(args, name, "--")
    try:
        code = {"run": cmd_run, "report": cmd_report, "regions": cmd_regions,
                "status": cmd_status, "history": cmd_history}[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, where it can be caught, not at exit
        return code
    except NbcarbonError as exc:
        return _usage_error(parser, str(exc))
    except BrokenPipeError:
        # `nbcarbon report X | head`: the reader has what it wanted. No traceback, and no
        # "Exception ignored" when Python flushes stdout at exit: it now writes to /dev/null.
        _discard_stdout()
        return 1


def _discard_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (tests capture stdout)
        pass


def _validate_pricing(region: str | None, pue: str | None) -> float | None:
    from . import intensity
    from .settings import parse_pue

    if region:
        intensity.lookup(region)
    return parse_pue(pue, "--pue") if pue is not None else None


def _fail(message: str) -> int:
    """One line on stderr (a message with newlines, e.g. an exception's, is joined into one)."""
    _say(f"nbcarbon: {' '.join(message.split())}", sys.stderr)
    return 1


def _note(message: str) -> None:
    """One line on stderr that is not a failure (the exit status stays 0)."""
    _fail(message)


def _check_output(output: Path) -> None:
    """Refuse, before anything runs, an output file that could not be written afterwards.

    A run can take hours; finding out at the end that ``-o`` named a missing directory would
    lose every result.
    """
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise _usage(f"cannot write {output}: the directory {parent} does not exist")
    if output.exists() and not output.is_file():
        raise _usage(f"cannot write {output}: it exists and is not a regular file")
    if not os.access(parent, os.W_OK) or (output.exists() and not os.access(output, os.W_OK)):
        raise _usage(f"cannot write {output}: permission denied")


def cmd_run(args: argparse.Namespace) -> int:
    from . import report
    from .notebook import NotebookError, load_json
    from .settings import max_notebook_bytes

    if args.region is not None and not args.region.strip():
        raise _usage("--region needs a code (e.g. SE); leave it out to use the detected region")
    pue = _validate_pricing(args.region, args.pue)
    _validate_environment()
    if args.timeout is not None and not (args.timeout >= 1 and float(args.timeout).is_integer()):
        # nbclient counts whole seconds; rounding 1.5 to 2 silently would not be what was asked
        raise _usage(f"--timeout must be a whole number of seconds >= 1, not {args.timeout:g}")
    try:
        nb = load_json(args.notebook, max_notebook_bytes())  # a clear message for a non-notebook
    except NotebookError as exc:
        return _fail(str(exc))
    output = args.output or args.notebook.with_name(args.notebook.stem + ".carbon.ipynb")
    _check_output(output)
    if output.exists() and output.resolve() == args.notebook.resolve():
        raise _usage(f"-o names the notebook being run ({output}): a run clears its outputs first "
                     "and marks the cells after a failure 'not run', so the notebook's own outputs "
                     "would be lost; write to another file (and move it over if you want)")
    try:
        import nbclient  # noqa: F401
        from jupyter_client.kernelspec import NoSuchKernel

        from .runner import RunResult, kernel_for, run_notebook, terminal_progress
    except ImportError as exc:
        return _fail(f"`nbcarbon run` needs nbclient and ipykernel ({exc}); "
                     "pip install 'nbcarbon[run]'")
    kernel_for(nb.get("metadata"), args.kernel)  # KernelNotFound: a usage error, before anything runs
    del nb
    stopped: list[RunResult] = []
    try:
        with _terminate_as_interrupt():
            result = run_notebook(args.notebook, output, region=args.region, pue=pue,
                                  timeout_s=int(args.timeout) if args.timeout else None,
                                  kernel_name=args.kernel, allow_errors=args.allow_errors,
                                  progress=terminal_progress(), on_stop=stopped.append)
    except NotebookError as exc:
        return _fail(str(exc))
    except (RuntimeError, OSError, ValueError, NoSuchKernel) as exc:  # a kernel without nbcarbon
        return _fail(f"could not run {args.notebook}: {exc}")
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (CI cancelling): what ran is kept and said
        if not stopped:
            _fail(f"{args.notebook.name}: stopped before any cell ran; nothing written")
            return 130
        partial = stopped[0]
        print(file=sys.stderr)
        _say(report.render(report.rows(args.notebook.name, partial.records), "table"))
        _say(f"wrote {output}")
        _fail(f"{args.notebook.name}: stopped by the user; {output} has the records of the cells "
              "that ran")
        return 130
    _say(report.render(report.rows(args.notebook.name, result.records), "table"))
    raised = [e for e in result.errors if e.index != result.failed_cell]
    if raised:
        _say("cells that raised (the run went on):")
        for e in raised:
            why = "tagged raises-exception" if e.expected else "--allow-errors"
            _say(f"  {e.describe(result.code_cells)} [{why}]")
    _say(f"wrote {output}")
    failure = result.failure()
    if failure is not None:
        later = (f"; the {result.not_run} cell(s) after it were not run (marked so in {output})"
                 if result.not_run else "")
        if result.stopped_by == "died":
            return _fail(f"{args.notebook.name}: {failure} (the kernel died, so this cell has no "
                         f"record); {output} has the records of the cells before it{later}")
        hint = "" if result.stopped_by else ". --allow-errors runs every cell"
        return _fail(f"{args.notebook.name}: {failure}; {output} has the records of every cell run, "
                     f"this one included{later}{hint}")
    return 0


def _validate_environment() -> None:
    """Refuse bad ``NBCARBON_*`` values before a kernel starts: the kernel's session would
    refuse them anyway, after the output file was already taken."""
    from . import intensity
    from .settings import Settings

    Settings.from_environ(os.environ)
    intensity.detect({"NBCARBON_REGION": os.environ.get("NBCARBON_REGION", "")}, None)


class _terminate_as_interrupt:  # noqa: N801 - used as a context manager, like a function
    """SIGTERM (a CI job cancelled, ``timeout``) ends the run as Ctrl-C does: the output file is
    written with what ran, instead of the process dying with nothing saved."""

    def __enter__(self) -> None:
        import signal

        def interrupt(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        try:
            self._old = signal.signal(signal.SIGTERM, interrupt)
        except ValueError:  # not the main thread: leave SIGTERM alone
            self._old = None

    def __exit__(self, *exc: object) -> None:
        import signal

        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


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
    from .notebook import collector_paused

    # Tens of thousands of records and rows, and no cycle among them: the cyclic collector's
    # passes over them all (a third of the time of a 50,000-record report) would free nothing.
    with collector_paused():
        return _report(args)


def _say_table(text: str) -> None:
    """:func:`_say` for a report's table, which is long and most often has nothing to escape.

    Escaping only lengthens text, so one look over the whole of it, newlines aside, tells whether
    anything needs escaping; :func:`_say` alone would stop at every newline it keeps (750,000 in
    the JSON of 50,000 rows).
    """
    from .readout import escape_controls

    lines = text.replace("\n", " ")
    if len(escape_controls(lines)) != len(lines):
        _say(text)
    else:
        print(text)


def _report(args: argparse.Namespace) -> int:
    from . import intensity, report
    from .notebook import NotebookError, load_records
    from .session import priced
    from .settings import max_notebook_bytes

    if args.region is not None and not args.region.strip():
        raise _usage("--region needs a code (e.g. SE); leave it out to keep each record's own region")
    if args.compare and args.region:
        raise _usage("--region has no effect with --compare, which prices every record in each "
                     "region it names; add the region to --compare instead")
    pue = _validate_pricing(args.region, args.pue)
    for code in args.compare or ():
        intensity.lookup(code)
    if args.plot is not None:
        _check_plot(args.plot, bool(args.compare))
    max_bytes = max_notebook_bytes()
    region = priced(intensity.lookup(args.region), "report --region") if args.region else None
    all_rows = []
    all_records = []
    per_notebook = []
    failed = False
    if args.compare and args.format in ("latex", "svg"):
        raise _usage(f"--format {args.format} is not available with --compare; use table, json, "
                     "csv or markdown")
    seen: set[str] = set()  # record ids already counted: a notebook given twice, or a copy
    names = _names(args.notebooks)
    for path in args.notebooks:
        try:
            found = load_records(path, max_bytes)
        except NotebookError as exc:
            _fail(str(exc))
            failed = True
            continue
        for line in _grouped(found.problems):
            _fail(line)
        if not found.records:
            why = ("" if found.problems else
                   "; it was measured, but no code cell ran" if found.summaries else
                   "; measure it with `nbcarbon run`")
            _fail(f"{path}: no readable nbcarbon records{why}")
        failed = failed or bool(found.problems) or not found.records
        kept = [fp for fp in found.records if fp.id not in seen]
        if len(kept) < len(found.records):
            again = len(found.records) - len(kept)
            _note(f"{path}: {again} record(s) already counted from a notebook before it (the "
                  "same file, or a copy); each record is counted once")
        seen.update(fp.id for fp in kept)
        records = report.repriced(kept, region, pue)
        all_records.extend(records)
        per_notebook.append((names[path], records))
        all_rows.extend(report.rows(names[path], records))
    if args.compare:
        from .compare import cli_compare

        if not all_records:
            return 1
        try:
            _say(cli_compare(all_records, args.compare, args.format, pue,
                             str(args.plot) if args.plot else None))
        except OSError as exc:  # the directory was checked; a full disk can still refuse the file
            return _fail(f"cannot write {args.plot}: {exc.strerror or exc}")
        return 1 if failed else 0
    if args.format in ("latex", "svg", "markdown") and all_records:
        from . import paper

        found = paper.methods(per_notebook)
        if args.format == "markdown":
            _say_table(report.render(all_rows, "markdown") + "\n\n" + paper.markdown(found))
        else:
            _say(paper.latex(found) if args.format == "latex" else paper.badge(found))
        return 1 if failed else 0
    if not all_records and failed and args.format in ("table", "latex", "svg"):
        # Nothing read: the errors say why. JSON and CSV readers still get their shape; a
        # methods paragraph or a badge without numbers would only be mistaken for one.
        return 1
    _say_table(report.render(all_rows, "markdown" if args.format in ("latex", "svg") else args.format))
    return 1 if failed else 0


def _names(paths: Sequence[Path]) -> dict[Path, str]:
    """How each notebook is named in the report: its file name, or, where two notebooks share
    one (``runs/a/analysis.ipynb``, ``runs/b/analysis.ipynb``), as much of its path as tells
    them apart, so their rows are never merged under one name."""
    names: dict[Path, str] = {}
    for path in dict.fromkeys(paths):
        parts = path.parts
        depth = 1
        while depth < len(parts) and any(
                other != path and other.parts[-depth:] == parts[-depth:] for other in paths):
            depth += 1
        names[path] = "/".join(parts[-depth:])
    return names


def _check_plot(path: Path, comparing: bool) -> None:
    """``--plot PNG``: only with ``--compare``, into a directory that exists, in a known format."""
    if not comparing:
        raise _usage("--plot draws the --compare chart: add --compare CODE... (e.g. --compare SE PL)")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise _usage(f"--plot {path}: the directory {parent} does not exist")
    if path.exists() and not path.is_file():
        raise _usage(f"--plot {path}: it exists and is not a regular file")
    from matplotlib.figure import Figure

    formats = Figure().canvas.get_supported_filetypes()
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in formats:
        raise _usage(f"--plot {path}: name a file ending in one of "
                     f"{', '.join('.' + f for f in sorted(formats))}")


def cmd_regions(args: argparse.Namespace) -> int:
    from .status import regions_text

    _say(regions_text(args.text))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .settings import Settings
    from .status import machine_status

    _say(machine_status(Settings.from_environ(os.environ), os.environ))
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
    if not path.exists():
        _say(f"nbcarbon: no history yet: nothing has been recorded in {path}", sys.stderr)
        _say(report.render_history([], args.by, args.format))
        return 0
    try:
        ledger = Ledger.open(path, create=False)
        try:
            groups = ledger.totals(since, args.by)
        finally:
            ledger.close()
    except (LedgerError, sqlite3.DatabaseError) as exc:
        return _fail(f"cannot read the ledger {path}: {exc}")
    _say(report.render_history(groups, args.by, args.format))
    return 0
