"""What the outer layers call: ``%carbon live on|off``, ``%carbon forecast``, status lines, the API.

Each function takes a :class:`~nbcarbon.session.Session` and returns text or data, so the magics
and the command line stay a few lines each and nothing here imports IPython.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from .. import intensity
from ..status import LIVE_OFF_LINE, live_off
from .base import IntensityInterval, LiveError, Provider
from .forecast import GreenWindow
from .forecast import greenest_window as _greenest
from .pricing import LivePricer
from .service import LiveService

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..session import Session

DEFAULT_HORIZON_H = 24.0
DEFAULT_JOB_H = 1.0


def _service(session: "Session", base_urls: Mapping[str, str] | None = None) -> LiveService:
    """The session's live service when live is on (shared cache), else a new one for this call."""
    from . import make_service

    pricer = session.pricer
    if isinstance(pricer, LivePricer) and base_urls is None:
        return pricer.service
    return make_service(session.settings, base_urls)


def set_live(session: "Session", on: bool, base_urls: Mapping[str, str] | None = None) -> str:
    """``%carbon live on|off``: install or remove the live pricer; returns the line to print."""
    from . import make_pricer

    if not on:
        return live_off(session)
    session.settings = session.settings.with_changes(live=True)
    if not isinstance(session.pricer, LivePricer) or base_urls is not None:
        session.pricer = make_pricer(session.settings, session.add_notice, base_urls)
    assert isinstance(session.pricer, LivePricer)
    return "live intensity on: " + _describe(session.pricer.service, session.region.code)


def _describe(service: LiveService, code: str) -> str:
    provider = service.provider_for(code)
    if provider is None:
        hint = "" if service.has_electricitymaps() else \
            " (set NBCARBON_ELECTRICITYMAPS_TOKEN to use Electricity Maps)"
        return f"no live source for {code}{hint}; the bundled annual figure is used"
    return (f"{provider.title} ({provider.name}) for {code}; the bundled annual figure when it "
            "does not answer")


def _ago(then: datetime, now: datetime) -> str:
    s = max(0.0, (now - then).total_seconds())
    if s < 90:
        return f"{s:.0f} s ago"
    if s < 5400:
        return f"{s / 60:.0f} min ago"
    return f"{s / 3600:.1f} h ago"


def live_status_lines(session: "Session", probe: bool = False) -> list[str]:
    """``live: ...`` lines for ``%carbon status`` and ``nbcarbon status``.

    ``probe`` (the command line) fetches the current value once, so a fresh process can show
    the age of the data; the magic shows what the session already has and never waits.
    """
    pricer = session.pricer
    if not isinstance(pricer, LivePricer):
        return [LIVE_OFF_LINE]
    service = pricer.service
    code = session.region.code
    lines = [f"live: on, {_describe(service, code)}"]
    probe_error: LiveError | None = None
    if probe and service.provider_for(code) is not None:
        now = service.now()
        try:
            service.intervals(code, now, now, pricer.timeout_s)
        except LiveError as exc:  # shown below; status never fails for a provider's sake
            probe_error = exc
    last, error = service.last, probe_error or service.last_error
    if last is not None:
        iv = last.interval
        kind = "forecast" if iv.forecast else "actual"
        fetched = _ago(last.fetched_at, service.now())
        lines.append(f"  last value: {iv.g_per_kwh:.0f} g/kWh ({kind}) for {iv.start:%H:%M}-"
                     f"{iv.end:%H:%M} UTC from {last.provider}, fetched {fetched}")
    elif error is None:
        lines.append("  last value: none fetched yet in this process")
    if error is not None:
        lines.append(f"  last error: {error}")
    return lines


def greenest_window(duration_h: float, within_h: float = DEFAULT_HORIZON_H, region: str | None = None,
                    *, session: "Session | None" = None, base_urls: Mapping[str, str] | None = None,
                    now: datetime | None = None) -> GreenWindow:
    """``nbcarbon.greenest_window``: the greenest start from the region's live forecast.

    ``region`` defaults to the session's. When no provider has a forecast for it or the provider
    does not answer, the result has ``covered=False`` and the reason, rather than an exception
    (bad arguments and unknown region codes still raise).
    """
    if session is None:
        from ..api import default_session

        session = default_session()
    code = intensity.lookup(region).code if region else session.region.code
    series, provider, reason = _forecast(session, code, within_h, base_urls)
    if reason is not None:
        result = _greenest([], duration_h, within_h, now, region=code)
        return replace(result, reason=reason, provider=provider.name if provider else None)
    assert provider is not None
    return _greenest(series, duration_h, within_h, now or _now_of(session, base_urls),
                     provider=provider.name, region=code)


def _now_of(session: "Session", base_urls: Mapping[str, str] | None) -> datetime:
    return _service(session, base_urls).now()


def _forecast(session: "Session", code: str, hours: float, base_urls: Mapping[str, str] | None
              ) -> tuple[list[IntensityInterval], Provider | None, str | None]:
    service = _service(session, base_urls)
    try:
        provider, series = service.forecast(code, hours)
    except LiveError as exc:
        return [], service.provider_for(code), str(exc)
    return series, provider, None


@dataclass(frozen=True)
class ForecastReport:
    """``%carbon forecast``'s output: a text table with the advice, and the figure on demand."""

    region: str
    provider: Provider | None
    series: tuple[IntensityInterval, ...]
    window: GreenWindow
    text: str

    def figure(self, tz: tzinfo | None = None) -> "Figure":
        from .chart import forecast_figure

        source = self.provider.title if self.provider else "no provider"
        return forecast_figure(self.series, self.window,
                               f"nbcarbon: forecast intensity, {self.region} ({source})", tz)


def forecast_report(session: "Session", hours: float = DEFAULT_HORIZON_H, job_h: float = DEFAULT_JOB_H,
                    region: str | None = None, tz: tzinfo | None = None,
                    base_urls: Mapping[str, str] | None = None) -> ForecastReport:
    """``%carbon forecast [HOURS] [--job H]``: hourly table and the greenest start of a ``job_h`` run.

    Raises ``ValueError`` for a bad length; a missing or failing provider is a report saying so.
    """
    code = intensity.lookup(region).code if region else session.region.code
    series, provider, reason = _forecast(session, code, hours, base_urls)
    now = _now_of(session, base_urls)
    window = _greenest(series, job_h, max(hours, job_h), now,
                       provider=provider.name if provider else None, region=code)
    if reason is not None:
        return ForecastReport(code, provider, (), window, f"No forecast for {code}: {reason}.")
    return ForecastReport(code, provider, tuple(series), window,
                          forecast_table(series, window, code, provider, tz))


def forecast_table(series: Sequence[IntensityInterval], window: GreenWindow, code: str,
                   provider: Provider | None, tz: tzinfo | None = None) -> str:
    """One row per hour (mean of the intervals in it), the greenest window marked, then the advice."""
    source = f"{provider.title}, {provider.basis}" if provider else "no provider"
    lines = [f"forecast intensity for {code} ({source}); times are local"]
    hours: dict[datetime, list[tuple[float, float]]] = {}
    for iv in series:
        key = iv.start.astimezone(tz).replace(minute=0, second=0, microsecond=0)
        hours.setdefault(key, []).append((iv.g_per_kwh, iv.duration_s))
    top = max((iv.g_per_kwh for iv in series), default=0.0) or 1.0
    for hour, values in sorted(hours.items()):
        mean = sum(v * d for v, d in values) / (sum(d for _, d in values) or 1.0)
        in_best = (window.covered and window.start is not None and window.end is not None
                   and window.start < hour + timedelta(hours=1) and hour < window.end)
        bar = "#" * max(1, round(20 * mean / top))
        lines.append(f"  {hour:%a %H:%M}  {mean:6.0f} g/kWh  {bar:<20}{'  <- greenest' if in_best else ''}")
    lines.append(window.advice(tz))
    return "\n".join(lines)
