"""Denmark from Energinet's Energi Data Service (no key; 5-minute values and a forecast).

``GET /dataset/CO2Emis`` (measured) and ``/dataset/CO2EmisProg`` (forecast) with ``start``,
``end`` (``YYYY-MM-DDTHH:MM``, here in UTC through ``timezone=UTC``), ``filter`` and ``sort``;
the answer is ``{"total": n, "dataset": "CO2Emis", "records": [{"Minutes5UTC":
"2022-01-01T00:00:00", "Minutes5DK": "...", "PriceArea": "DK1", "CO2Emission": 120.0}]}``, each
record covering the five minutes from ``Minutes5UTC``. ``DK`` is the mean of the two price areas
(West DK1, East DK2) per five minutes; ``DK1`` and ``DK2`` are accepted as codes too. The figures
are direct emissions of the electricity consumed, so records say ``basis: direct``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from .base import PARSE_ERRORS, IntensityInterval, LiveError, Provider, merge, number, parse_utc, utc

DEFAULT_BASE_URL = "https://api.energidataservice.dk"
STEP = timedelta(minutes=5)
AREAS = {"DK": ("DK1", "DK2"), "DK1": ("DK1",), "DK2": ("DK2",)}


def _stamp(dt: datetime) -> str:
    return utc(dt).strftime("%Y-%m-%dT%H:%M")


class EnergiDataService(Provider):
    name = "energidataservice"
    title = "Energi Data Service"
    source = "Energinet Energi Data Service CO2Emis"
    basis = "direct"
    has_forecast = True

    def __init__(self, base_url: str = DEFAULT_BASE_URL, timeout_s: float = 5.0) -> None:
        super().__init__(base_url, timeout_s)

    def supports(self, region_code: str) -> bool:
        return region_code in AREAS

    def _dataset(self, dataset: str, region_code: str, start: datetime, end: datetime,
                 forecast: bool) -> list[IntensityInterval]:
        if region_code not in AREAS:
            raise self._unsupported(region_code)
        areas = AREAS[region_code]
        params = {"start": _stamp(start), "end": _stamp(end + STEP), "timezone": "UTC",
                  "filter": json.dumps({"PriceArea": list(areas)}, separators=(",", ":")),
                  "sort": "Minutes5UTC ASC", "limit": "0"}
        body = self.get_json(f"/dataset/{dataset}", params)
        try:
            return _average(body, areas, forecast)
        except PARSE_ERRORS as exc:
            raise LiveError(self.title, "malformed", f"unexpected answer from {dataset}: {exc}") from None

    def intervals(self, region_code: str, start: datetime, end: datetime) -> list[IntensityInterval]:
        start, end = utc(start), utc(end)
        measured = self._dataset("CO2Emis", region_code, start, end, forecast=False)
        covered_to = measured[-1].end if measured else start
        if covered_to < end:  # measured values lag a few minutes: the forecast fills the rest
            later = self._dataset("CO2EmisProg", region_code, covered_to, end, forecast=True)
            measured = merge(measured, later)
        return [iv for iv in measured if iv.end > start and iv.start < end]

    def forecast(self, region_code: str, start: datetime, hours: float) -> list[IntensityInterval]:
        start = utc(start)
        end = start + timedelta(hours=hours)
        series = self._dataset("CO2EmisProg", region_code, start - STEP, end, forecast=True)
        return [iv for iv in series if iv.end > start and iv.start < end]


def _average(body: Any, areas: tuple[str, ...], forecast: bool) -> list[IntensityInterval]:
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise ValueError("no 'records' list")
    by_time: dict[datetime, dict[str, float]] = {}
    for i, rec in enumerate(body["records"]):
        if not isinstance(rec, dict):
            raise ValueError(f"records[{i}] is not an object")
        area = rec.get("PriceArea")
        if area not in areas:
            continue
        value = rec.get("CO2Emission")
        if value is None:  # not yet published
            continue
        by_time.setdefault(parse_utc(rec.get("Minutes5UTC")), {})[area] = number(
            value, f"records[{i}].CO2Emission")
    out = []
    for t in sorted(by_time):
        values = by_time[t]
        if len(values) == len(areas):  # a national mean needs both areas
            out.append(IntensityInterval(t, t + STEP, sum(values.values()) / len(values), forecast))
    return out
