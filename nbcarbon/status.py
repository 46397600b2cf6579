"""Plain-text answers to "what is measured, how, and priced where?" for ``%carbon`` and the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from . import intensity
from .footprint import PricedRegion
from .meters.base import METHOD_KIND
from .readout import METHOD_LABEL, escape_controls, format_energy, format_mass
from .session import Session
from .settings import Settings

#: The status line when live data is off. Kept here, not in :mod:`nbcarbon.live`, so that
#: ``%carbon status`` with live off imports no network code (the README promises it).
LIVE_OFF_LINE = "live: off (%carbon live on, or NBCARBON_LIVE=1, prices cells at the time they ran)"


def live_off(session: Session) -> str:
    """``%carbon live off``: no live pricer any more; returns the line to print.

    Here rather than in :mod:`nbcarbon.live` for the same reason as :data:`LIVE_OFF_LINE`:
    turning live data off, or saying it is off, must not import the network code.
    """
    session.settings = session.settings.with_changes(live=False)
    session.pricer = None
    return "live intensity off: cells are priced with the bundled annual figure"


def region_brief(r: PricedRegion) -> str:
    year = f" {r.year}" if r.year and str(r.year) not in r.source else ""
    return f"{r.code} {r.name}, {r.g_per_kwh:.4g} g/kWh ({r.source}{year}, {r.basis})"


def regions_text(text: str = "") -> str:
    """The regions matching ``text`` with intensity, year, basis and source, one per line."""
    found = intensity.search(text)
    if not found:
        close = [r for r in intensity.suggestions(text) if intensity.has_figure(r)]
        near = f" Closest: {', '.join(intensity.label(r) for r in close)}." if close else ""
        return (f"no region matches {text!r}.{near} `nbcarbon regions` (in a notebook, "
                "`%carbon regions`) with no text lists them all")
    code_w = max(len("code"), *(len(r.code) for r in found))
    rows = [["code", "name", "g/kWh", "year", "basis", "source"]] + [
        [r.code, r.name, f"{r.g_per_kwh:.4g}", str(r.year or ""), r.basis, r.source] for r in found]
    return wrapped_table(rows, [code_w, 28, 6, 4, 9, 36], right={2})


def wrapped_table(rows: list[list[str]], widths: list[int], right: frozenset[int] | set[int] = frozenset(),
                  gap: str = "  ") -> str:
    """Rows as fixed-width columns, a long value wrapped at spaces onto lines of its own column.

    Why: notebook front ends wrap a too-long output line anywhere, mid-word ("Data 202" / "4");
    lines that fit (under 100 characters here) are never broken, and a word is never split
    (one longer than its column overflows it instead).
    """
    import textwrap

    out = []
    for row in rows:
        parts = [textwrap.wrap(v, w, break_long_words=False, break_on_hyphens=False) or [""]
                 for v, w in zip(row, widths, strict=True)]
        for i in range(max(map(len, parts))):
            cells = [(p[i] if i < len(p) else "") for p in parts]
            cells = [c.rjust(w) if j in right else c.ljust(w)
                     for j, (c, w) in enumerate(zip(cells, widths, strict=True))]
            out.append(gap.join(cells).rstrip())
    return "\n".join(out)


def meter_lines(session: Session) -> list[str]:
    found = session.probe_result
    lines = []
    for meter in found.meters:
        ch = meter.channel
        describe = getattr(meter, "describe", None)
        extra = f" ({describe()})" if callable(describe) else ""
        lines.append(f"  {ch.component:<7} {ch.device:<14} {METHOD_KIND[ch.method]}: "
                     f"{METHOD_LABEL[ch.method]}{extra}")
    if not found.meters:
        lines.append("  none")
    lines.extend(f"  note: {n}" for n in found.notes)
    from .meters.platform_notes import platform_lines

    lines.extend(f"  {line}" for line in platform_lines(found))
    return lines


def attribution_line(session: Session) -> str:
    """Which attribution mode is on, what it splits and by what, and why this mode."""
    found = session.probe_result
    machine = [m.channel for m in found.meters if m.channel.attribution == "machine"]
    why = f"chosen by {session.attribution_chosen_by}"
    if session.attribution == "machine":
        return (f"attribution: machine ({why}): cells are charged all that machine-wide counters "
                "measured, whoever used the machine; `%carbon attribution share` charges their share")
    if not machine:
        return (f"attribution: share ({why}): nothing measured here is machine-wide; the models "
                "follow this kernel's own processes")
    split = []
    whole = []
    for ch in machine:
        share = next((s for s in found.shares if s.covers(ch)), None)
        name = f"{ch.component} {ch.device}"
        if share is None:
            whole.append(name)
        else:
            split.append(f"{name} by {SHARE_BASIS_TEXT.get(share.basis, share.basis)}")
    text = f"attribution: share ({why}): cells are charged their process tree's share"
    if split:
        text += " of " + ", ".join(split)
    if whole:
        text += ("; charged whole (no per-process use read): " if split else
                 "; but no per-process use is read here, so charged whole: ") + ", ".join(whole)
    return text


#: How each share basis reads in ``%carbon status``.
SHARE_BASIS_TEXT = {"cpu-time": "CPU time", "gpu-utilization": "GPU utilisation",
                    "gpu-processes": "processes on the GPU"}


def session_status(session: Session, auto: bool | None = None, probe_live: bool = False) -> str:
    """Meters and their methods, region and why, PUE, live data, sampler, session totals.

    ``probe_live`` lets ``nbcarbon status`` ask the live provider once (at most 2 s); ``%carbon
    status`` never waits on the network.
    """
    from . import __version__

    lines = [f"nbcarbon {__version__}", "meters:", *meter_lines(session)]
    lines.append(f"region: {region_brief(session.region)}; chosen by {session.region.chosen_by}")
    lines.append(f"PUE: {session.pue:g}")
    lines.append(attribution_line(session))
    if session.pricer is None:  # live off: said without importing nbcarbon.live (urllib, ssl...)
        lines.append(LIVE_OFF_LINE)
    else:
        from .live.commands import live_status_lines

        lines.extend(live_status_lines(session, probe=probe_live))
    sampler = session.sampler
    if sampler is not None:
        lines.append(f"sampler: every {sampler.period_s():g} s "
                     f"({'running' if sampler.running else 'stopped'})")
    t = session.totals()
    lines.append(f"session: {t.cells} measured cell(s), {format_energy(t.energy_j)}, "
                 f"{format_mass(t.co2e_g)} CO2e")
    if auto is not None:
        lines.append(f"auto: {'on' if auto else 'off'}")
    from .frontends import status_line  # small, imports nothing

    reprice = status_line()
    if reprice is not None:
        lines.append(reprice)
    # %carbon status lands in notebooks that get shared: it says whether, never where.
    lines.append("history: off (NBCARBON_LEDGER=off)" if session.settings.ledger is None else
                 "history: kept in the local ledger (`nbcarbon status` in a terminal shows where)")
    return "\n".join(_wrap(line) for line in lines)


def _wrap(line: str, width: int = 100) -> str:
    """A long status line wrapped at spaces, continued under its own indentation plus two:
    a notebook would otherwise break it anywhere, mid-word."""
    import textwrap

    indent = " " * (len(line) - len(line.lstrip()) + 2)
    return "\n".join(textwrap.wrap(line, width, subsequent_indent=indent, break_long_words=False,
                                    break_on_hyphens=False, drop_whitespace=True)) or line


def ledger_line(path: Path | None) -> str:
    """Where the history ledger is and what is there, for ``nbcarbon status`` (a terminal only).

    Reads without writing: a file that is not nbcarbon's is named as such and left alone.
    """
    from .ledger import Ledger, LedgerError

    if path is None:
        return "history: off (NBCARBON_LEDGER=off)"
    where = escape_controls(str(path))
    try:
        if not path.exists():
            return f"history: {where} (not created yet: the first measured cell creates it)"
        ledger = Ledger.open(path, create=False)
        try:
            return f"history: {where} ({ledger.count()} record(s))"
        finally:
            ledger.close()
    except (LedgerError, OSError) as exc:
        return f"history: {where} (cannot be used: {exc})"
    except Exception as exc:  # noqa: BLE001 - sqlite3.DatabaseError and kin: status must still print
        return f"history: {where} (cannot be read: {type(exc).__name__}: {exc})"


def machine_status(settings: Settings, environ: Mapping[str, str]) -> str:
    """What this machine can measure, for ``nbcarbon status`` (probes, then stops again)."""
    session = Session(settings, environ)
    try:
        session.start()
        lines = [ledger_line(settings.ledger) if line.startswith("history:") else line
                 for line in session_status(session, probe_live=True).splitlines()
                 if not line.startswith("session:")]
        return "\n".join(lines)
    finally:
        session.close()
