"""The live providers of one session: which one serves a region, cached answers, and their status.

Providers are tried in a fixed order: the free national services for their own grid first
(``ukgrid`` for Great Britain, ``energidataservice`` for Denmark), then Electricity Maps for any
zone when a token is set. Nothing here runs until a cell is priced or a forecast is asked for.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .base import MAX_G_PER_KWH, IntensityInterval, LiveError, Provider, floor_hour, utc
from .cache import FAILURE_TTL_S, FORECAST_TTL_S, RATE_LIMITED_TTL_S, RECENT_TTL_S, SETTLED_TTL_S, TTLCache

#: Never keep a cell waiting longer than this for a live value, whatever NBCARBON_LIVE_TIMEOUT says.
PRICING_TIMEOUT_MAX_S = 2.0
SETTLED_AFTER = timedelta(hours=2)
PROVIDER_NAMES = ("ukgrid", "energidataservice", "electricitymaps")


def default_providers(token: str | None = None, timeout_s: float = 5.0,
                      base_urls: Mapping[str, str] | None = None) -> list[Provider]:
    """The providers, in order; Electricity Maps only with a token. ``base_urls`` maps a provider
    name to another server (tests use a local one)."""
    from .electricitymaps import ElectricityMaps
    from .energidataservice import EnergiDataService
    from .ukgrid import UKGrid

    urls = dict(base_urls or {})
    out: list[Provider] = []
    out.append(UKGrid(urls["ukgrid"], timeout_s) if "ukgrid" in urls else UKGrid(timeout_s=timeout_s))
    out.append(EnergiDataService(urls["energidataservice"], timeout_s) if "energidataservice" in urls
               else EnergiDataService(timeout_s=timeout_s))
    if token:
        out.append(ElectricityMaps(token, urls["electricitymaps"], timeout_s) if "electricitymaps" in urls
                   else ElectricityMaps(token, timeout_s=timeout_s))
    return out


@dataclass(frozen=True)
class LastValue:
    """What ``status`` shows: the newest interval a provider gave, and when it was fetched."""

    provider: str
    region_code: str
    interval: IntensityInterval
    fetched_at: datetime


class LiveService:
    """Providers + cache + what happened last, shared by the pricer and the forecast command."""

    def __init__(self, providers: Sequence[Provider], cache: TTLCache | None = None,
                 now: Callable[[], datetime] | None = None) -> None:
        self.providers = list(providers)
        self.cache = cache or TTLCache()
        self._now = now or (lambda: datetime.now(timezone.utc))
        self.last: LastValue | None = None
        self.last_error: LiveError | None = None
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return utc(self._now())

    def provider_for(self, region_code: str) -> Provider | None:
        return next((p for p in self.providers if p.supports(region_code)), None)

    def has_electricitymaps(self) -> bool:
        return any(p.name == "electricitymaps" for p in self.providers)

    def intervals(self, region_code: str, start: datetime, end: datetime,
                  timeout_s: float | None = None) -> tuple[Provider, list[IntensityInterval]]:
        """Intervals covering ``[start, end]`` from the region's provider (whole hours, cached).

        ``timeout_s`` (the provider's own when ``None``) bounds the whole call, all requests together.
        """
        provider = self._provider(region_code)
        first, last = floor_hour(utc(start)), floor_hour(utc(end)) + timedelta(hours=1)
        settled = last < self.now() - SETTLED_AFTER
        key = (provider.name, region_code, "intervals", first, last)
        series = self._cached(key, provider, timeout_s, settled,
                              lambda p: p.intervals(region_code, first, last))
        return provider, series

    def forecast(self, region_code: str, hours: float,
                 timeout_s: float | None = None) -> tuple[Provider, list[IntensityInterval]]:
        """The region's forecast from now for ``hours`` (cached for 15 min per hour of asking)."""
        provider = self._provider(region_code)
        if not provider.has_forecast:
            raise LiveError(provider.title, "unsupported", "this provider publishes no forecast")
        now = self.now()
        key = (provider.name, region_code, "forecast", floor_hour(now), float(hours))
        series = self._cached(key, provider, timeout_s, None, lambda p: p.forecast(region_code, now, hours))
        return provider, [iv for iv in series if iv.end > now]

    def _provider(self, region_code: str) -> Provider:
        provider = self.provider_for(region_code)
        if provider is None:
            hint = "" if self.has_electricitymaps() else \
                "; set NBCARBON_ELECTRICITYMAPS_TOKEN to use Electricity Maps"
            raise LiveError("live", "unsupported", f"no live source for region {region_code}{hint}")
        return provider

    def _cached(self, key: tuple[object, ...], provider: Provider, timeout_s: float | None,
                settled: bool | None, fetch: Callable[[Provider], list[IntensityInterval]]
                ) -> list[IntensityInterval]:
        entry = self.cache.get(key) or self.cache.get((provider.name, "failed"))
        if entry is not None:
            if entry.error is not None:
                raise entry.error
            return list(entry.value)
        # One budget for the whole call, on a copy (calls from other threads keep theirs): a
        # provider that asks twice (measured, then forecast) shares it, so a cell priced with
        # ``timeout_s=2`` waits at most 2 s in all, not 2 s per request.
        p = copy.copy(provider)
        if timeout_s is not None:
            p.timeout_s = timeout_s
        budget_end = time.monotonic() + p.timeout_s
        p.deadline = budget_end if provider.deadline is None else min(provider.deadline, budget_end)
        try:
            series = fetch(p)
            _check(provider, series)
        except Exception as raised:  # noqa: BLE001 - see below
            # Anything else a provider raises (a parser's RecursionError or MemoryError on an
            # absurd answer, a third-party provider's bug) is a failed answer too: remembered and
            # backed off like one, so it costs one cell a warning instead of every later cell.
            exc = raised if isinstance(raised, LiveError) else LiveError(
                provider.title, "malformed", f"the answer could not be read ({type(raised).__name__})")
            ttl = exc.retry_after_s or (RATE_LIMITED_TTL_S if exc.kind == "rate-limited" else FAILURE_TTL_S)
            self.cache.put_error((provider.name, "failed"), exc, ttl)
            with self._lock:
                self.last_error = exc
            if exc is raised:
                raise
            raise exc from None
        ttl = FORECAST_TTL_S if settled is None else SETTLED_TTL_S if settled else RECENT_TTL_S
        self.cache.put(key, tuple(series), ttl)
        if series:
            now = self.now()
            newest = max((iv for iv in series if iv.start <= now), key=lambda iv: iv.start, default=series[0])
            with self._lock:
                self.last = LastValue(provider.name, key[1], newest, self.now())  # type: ignore[arg-type]
                self.last_error = None
        return series


def _check(provider: Provider, series: list[IntensityInterval]) -> None:
    """Rejects a series no grid could produce, whichever provider made it.

    The bundled providers already check each value as they parse; this also holds for a provider
    written elsewhere (``Provider`` is public), so nothing past this point ever prices a cell at
    NaN, a negative or an absurd intensity.
    """
    for iv in series:
        g = iv.g_per_kwh
        if not (isinstance(g, (int, float)) and 0.0 <= g <= MAX_G_PER_KWH):
            raise LiveError(provider.title, "malformed",
                            f"an intensity of {g!r} g/kWh is not plausible (0 to {MAX_G_PER_KWH:g})")
