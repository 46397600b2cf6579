"""A cell priced at the time it ran: the time-weighted live intensity over its own interval.

:func:`time_weighted` is pure arithmetic. :class:`LivePricer` is the session's ``pricer`` hook
(``(region, started_at_utc, ended_at_utc) -> (region, warnings)``): it asks the session's
:class:`~nbcarbon.live.service.LiveService` (cached, at most 2 s), and when the provider is
unreachable, slow, rate-limited or answers nonsense (an impossible intensity, JSON nested past
the parser's depth) it keeps the bundled annual figure, adds a warning to the record and queues
ONE notice for the session.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from ..footprint import PricedRegion
from .base import IntensityInterval, LiveError, utc
from .service import PRICING_TIMEOUT_MAX_S, LiveService

#: Below this share of the cell's interval covered by live values, the record says so.
COVERAGE_WARN = 0.9


@dataclass(frozen=True)
class Weighted:
    """The mean intensity over a span, how much of it had values, and how much was forecast."""

    g_per_kwh: float
    coverage: float
    forecast_share: float

    @property
    def kind(self) -> str:
        if self.forecast_share <= 0.0:
            return "actual"
        return "forecast" if self.forecast_share >= 1.0 else "actual and forecast"


def time_weighted(series: Sequence[IntensityInterval], start: datetime, end: datetime) -> Weighted | None:
    """The time-weighted mean of ``series`` over ``[start, end]``, over the covered part only.

    A zero-length span takes the interval holding that instant. ``None`` when nothing covers it.
    """
    start, end = utc(start), utc(end)
    span_s = (end - start).total_seconds()
    if span_s <= 0:
        holding = [iv for iv in series if iv.start <= start < iv.end]
        if not holding:
            return None
        iv = holding[0]
        return Weighted(iv.g_per_kwh, 1.0, 1.0 if iv.forecast else 0.0)
    # Deviations from the first value are summed, so a steady intensity comes back exactly as
    # published (333, not 333.00000000000006) however the span is cut.
    base: float | None = None
    deviation = covered = forecast = 0.0
    for iv in series:
        overlap_s = (min(iv.end, end) - max(iv.start, start)).total_seconds()
        if overlap_s <= 0:
            continue
        if base is None:
            base = iv.g_per_kwh
        deviation += (iv.g_per_kwh - base) * overlap_s
        covered += overlap_s
        if iv.forecast:
            forecast += overlap_s
    if covered <= 0 or base is None:
        return None
    return Weighted(base + deviation / covered, min(1.0, covered / span_s), forecast / covered)


class LivePricer:
    """The session's pricer when live data is on; see the module docstring."""

    def __init__(self, service: LiveService, notify: Callable[[str], None],
                 timeout_s: float = PRICING_TIMEOUT_MAX_S) -> None:
        self.service = service
        self.notify = notify
        self.timeout_s = min(float(timeout_s), PRICING_TIMEOUT_MAX_S)
        self._told: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, region: PricedRegion, started: datetime,
                 ended: datetime) -> tuple[PricedRegion, list[str]]:
        try:
            try:
                provider, series = self.service.intervals(region.code, started, ended, self.timeout_s)
                weighted = time_weighted(series, started, ended)
            except LiveError:
                raise
            except Exception as exc:  # noqa: BLE001 - live pricing must never cost the cell its record
                raise LiveError("live", "malformed", f"pricing failed ({type(exc).__name__})") from None
            if weighted is None:
                raise LiveError(provider.title, "no-data", "no value covers the cell's interval")
        except LiveError as exc:
            if exc.kind == "unsupported" and exc.provider == "live":
                self._tell_once("unsupported:" + region.code,
                                f"nbcarbon: {exc}; the bundled annual figure for {region.code} is used.")
                return region, []
            self._tell_once("failed", f"nbcarbon: live intensity unavailable ({exc}); cells are priced with "
                                      "the bundled annual figure until it answers again.")
            return region, [f"live intensity unavailable ({exc}); priced with the bundled annual figure"]
        warnings = []
        if weighted.coverage < COVERAGE_WARN:
            warnings.append(f"live intensity covered {weighted.coverage:.0%} of the cell's interval; "
                            "the mean of the covered part is used")
        priced = replace(region, g_per_kwh=weighted.g_per_kwh, year=utc(started).year,
                         source=f"{provider.source} ({weighted.kind})", basis=provider.basis,
                         chosen_by=f"live:{provider.name}")
        return priced, warnings

    def _tell_once(self, key: str, message: str) -> None:
        with self._lock:
            if key in self._told:
                return
            self._told.add(key)
        self.notify(message)
