"""Most of the world from Electricity Maps (API v3; needs a token, ``NBCARBON_ELECTRICITYMAPS_TOKEN``).

``GET /v3/carbon-intensity/history?zone=DE`` (the last 24 h), ``/past-range?zone=&start=&end=``,
``/latest?zone=`` and ``/forecast?zone=``, with the token in the ``auth-token`` header. Each value
is ``{"zone": "DE", "carbonIntensity": 302, "datetime": "2019-05-21T00:00:00.000Z",
"emissionFactorType": "lifecycle", "isEstimated": false, "temporalGranularity": "hourly"}``, in a
``history``, ``data`` or ``forecast`` list (``latest`` is one such object). A value covers the
hour (or the stated granularity) from its ``datetime``; estimated values count as forecasts.

The token is kept in a private attribute, sent only as a header, never in a URL, a ``repr``
or a message. The zone is the region's country code, or a mapped grid zone for a few
sub-national codes (``US-CA`` -> ``US-CAL-CISO``).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from .base import PARSE_ERRORS, IntensityInterval, LiveError, Provider, merge, number, parse_utc, redact, utc

DEFAULT_BASE_URL = "https://api.electricitymaps.com"
ZONES = {"US-CA": "US-CAL-CISO", "US-TX": "US-TEX-ERCO", "US-NY": "US-NY-NYIS", "GB": "GB"}
STEPS = {"5_minutes": timedelta(minutes=5), "15_minutes": timedelta(minutes=15),
         "hourly": timedelta(hours=1)}
HISTORY_SPAN = timedelta(hours=24)


class ElectricityMaps(Provider):
    name = "electricitymaps"
    title = "Electricity Maps"
    source = "Electricity Maps API v3"
    basis = "lifecycle"
    has_forecast = True

    def __init__(self, token: str, base_url: str = DEFAULT_BASE_URL, timeout_s: float = 5.0,
                 now: Any = None) -> None:
        super().__init__(base_url, timeout_s)
        if not token:
            raise ValueError("Electricity Maps needs a token (NBCARBON_ELECTRICITYMAPS_TOKEN)")
        self.__token = token
        self._now = now or (lambda: datetime.now(timezone.utc))

    def zone(self, region_code: str) -> str | None:
        if region_code in ZONES:
            return ZONES[region_code]
        if len(region_code) == 2 and region_code.isalpha() and region_code.isupper():
            return region_code
        return None

    def supports(self, region_code: str) -> bool:
        return self.zone(region_code) is not None

    def _get(self, endpoint: str, region_code: str, **params: str) -> Any:
        zone = self.zone(region_code)
        if zone is None:
            raise self._unsupported(region_code)
        return self.get_json(f"/v3/carbon-intensity/{endpoint}", {"zone": zone, **params},
                             {"auth-token": self.__token}, secrets=(self.__token,))

    def intervals(self, region_code: str, start: datetime, end: datetime) -> list[IntensityInterval]:
        start, end = utc(start), utc(end)
        now = self._now()
        if start >= now - HISTORY_SPAN:
            series = self._series(self._get("history", region_code), "history")
        else:
            series = self._series(self._get("past-range", region_code, start=_stamp(start),
                                            end=_stamp(end)), "data")
        if not series or series[-1].end < min(end, now):
            latest = self._series({"latest": [self._get("latest", region_code)]}, "latest")
            series = merge(series, latest)
        return [iv for iv in series if iv.end > start and iv.start < end]

    def forecast(self, region_code: str, start: datetime, hours: float) -> list[IntensityInterval]:
        start = utc(start)
        series = self._series(self._get("forecast", region_code), "forecast", forecast=True)
        end = start + timedelta(hours=hours)
        return [iv for iv in series if iv.end > start and iv.start < end]

    def _series(self, body: Any, key: str, forecast: bool = False) -> list[IntensityInterval]:
        try:
            if not isinstance(body, dict) or not isinstance(body.get(key), list):
                raise ValueError(f"no '{key}' list")
            out = []
            for i, row in enumerate(body[key]):
                if not isinstance(row, dict):
                    raise ValueError(f"{key}[{i}] is not an object")
                if row.get("carbonIntensity") is None:  # a gap the service has not filled
                    continue
                t = parse_utc(row.get("datetime"))
                step = STEPS.get(str(row.get("temporalGranularity", "hourly")), STEPS["hourly"])
                value = number(row["carbonIntensity"], f"{key}[{i}].carbonIntensity")
                out.append(IntensityInterval(t, t + step, value, forecast or row.get("isEstimated") is True))
        except PARSE_ERRORS as exc:
            detail = redact(f"unexpected answer: {exc}", (self.__token,))
            raise LiveError(self.title, "malformed", detail) from None
        return merge(out)


def _stamp(dt: datetime) -> str:
    return utc(dt).strftime("%Y-%m-%dT%H:%MZ")
