"""Plain-text answers to "what is measured, how, and priced where?" for ``%carbon`` and the CLI."""

from __future__ import annotations

from collections.abc import Mapping

from . import intensity
from .footprint import PricedRegion
from .meters.base import METHOD_KIND
from .readout import METHOD_LABEL, format_energy, format_mass
from .session import Session
from .settings import Settings


def region_brief(r: PricedRegion) -> str:
    year = f" {r.year}" if r.year and str(r.year) not in r.source else ""
    return f"{r.code} {r.name}, {r.g_per_kwh:.4g} g/kWh ({r.source}{year}, {r.basis})"


def regions_text(text: str = "") -> str:
    """The regions matching ``text`` with intensity, year, basis and source, one per line."""
    found = intensity.search(text)
    if not found:
        return f"no region matches {text!r}; `%carbon regions` with no text lists them all"
    lines = [f"{'code':<26} {'name':<34} {'g/kWh':>8}  year  {'basis':<10} source"]
    for r in found:
        lines.append(f"{r.code:<26} {r.name[:34]:<34} {r.g_per_kwh:8.4g}  {r.year or '':<4}  "
                     f"{r.basis:<10} {r.source}")
    return "\n".join(lines)


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
    return lines


def session_status(session: Session, auto: bool | None = None, probe_live: bool = False) -> str:
    """Meters and their methods, region and why, PUE, live data, sampler, session totals.

    ``probe_live`` lets ``nbcarbon status`` ask the live provider once (at most 2 s); ``%carbon
    status`` never waits on the network.
    """
    from . import __version__
    from .live.commands import live_status_lines

    lines = [f"nbcarbon {__version__}", "meters:", *meter_lines(session)]
    lines.append(f"region: {region_brief(session.region)}; chosen by {session.region.chosen_by}")
    lines.append(f"PUE: {session.pue:g}")
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
    return "\n".join(lines)


def machine_status(settings: Settings, environ: Mapping[str, str]) -> str:
    """What this machine can measure, for ``nbcarbon status`` (probes, then stops again)."""
    session = Session(settings, environ)
    try:
        session.start()
        lines = session_status(session, probe_live=True).splitlines()
        return "\n".join(line for line in lines if not line.startswith("session:"))
    finally:
        session.close()
