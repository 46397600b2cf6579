"""Great Britain's grid from the National Grid ESO Carbon Intensity API (no key; half-hourly, 48 h forecast).

Documented shapes (https://carbon-intensity.github.io/api-definitions/):

* national ``GET /intensity/{from}/{to}`` and ``/intensity/{from}/fw48h``:
  ``{"data": [{"from": "2018-01-20T12:00Z", "to": "2018-01-20T12:30Z",
  "intensity": {"forecast": 266, "actual": 263, "index": "moderate"}}]}``; ``actual`` is ``null``
  until the half hour is over, and then the forecast is used and said to be one;
* regional ``GET /regional/intensity/{from}/{to}/regionid/{id}`` (and ``.../fw48h/...``):
  ``{"data": {"regionid": 13, "shortname": "London", "data": [{"from", "to",
  "intensity": {"forecast": 180, "index": "low"}}]}}``; regional values are always modelled, so
  they count as forecasts.

The service covers Great Britain (not Northern Ireland) and counts direct (operational) CO2, so
records priced from it say ``basis: direct``. ``GB`` uses the national series; the cloud regions
in London and Cardiff use their DNO region.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from .base import PARSE_ERRORS, IntensityInterval, LiveError, Provider, merge, number, parse_utc, utc

DEFAULT_BASE_URL = "https://api.carbonintensity.org.uk"

#: The API's region ids (``/regional``), for callers that want one explicitly.
REGION_IDS = {
    1: "North Scotland", 2: "South Scotland", 3: "North West England", 4: "North East England",
    5: "Yorkshire", 6: "North Wales & Merseyside", 7: "South Wales", 8: "West Midlands",
    9: "East Midlands", 10: "East England", 11: "South West England", 12: "South England",
    13: "London", 14: "South East England", 15: "England", 16: "Scotland", 17: "Wales",
}

#: Bundled region codes -> regional id (``None``: the national series).
CODES: dict[str, int | None] = {
    "GB": None,
    "aws:eu-west-2": 13, "gcp:europe-west2": 13, "azure:uksouth": 13, "azure:uk": 13,
    "azure:ukwest": 7,
}


def _stamp(dt: datetime) -> str:
    return utc(dt).strftime("%Y-%m-%dT%H:%MZ")


class UKGrid(Provider):
    name = "ukgrid"
    title = "UK Carbon Intensity API"
    source = "National Grid ESO Carbon Intensity API"
    basis = "direct"
    has_forecast = True

    def __init__(self, base_url: str = DEFAULT_BASE_URL, timeout_s: float = 5.0,
                 region_ids: dict[str, int | None] | None = None) -> None:
        super().__init__(base_url, timeout_s)
        self.codes = dict(CODES if region_ids is None else region_ids)

    def supports(self, region_code: str) -> bool:
        return region_code in self.codes

    def _path(self, region_code: str, span: str) -> str:
        if region_code not in self.codes:
            raise self._unsupported(region_code)
        regionid = self.codes[region_code]
        if regionid is None:
            return f"/intensity/{span}"
        return f"/regional/intensity/{span}/regionid/{regionid}"

    def intervals(self, region_code: str, start: datetime, end: datetime) -> list[IntensityInterval]:
        path = self._path(region_code, f"{_stamp(start)}/{_stamp(end + timedelta(minutes=1))}")
        return _clip(self._parse(self.get_json(path), regional=self.codes[region_code] is not None),
                     utc(start), utc(end))

    def forecast(self, region_code: str, start: datetime, hours: float) -> list[IntensityInterval]:
        path = self._path(region_code, f"{_stamp(start)}/fw48h")
        series = self._parse(self.get_json(path), regional=self.codes[region_code] is not None)
        return _clip(series, utc(start), utc(start) + timedelta(hours=hours))

    def _parse(self, body: Any, regional: bool) -> list[IntensityInterval]:
        try:
            rows = _rows(body, regional)
            out = []
            for i, row in enumerate(rows):
                if not isinstance(row, dict) or not isinstance(row.get("intensity"), dict):
                    raise ValueError(f"data[{i}] has no 'intensity' object")
                values = row["intensity"]
                actual = values.get("actual")
                predicted = values.get("forecast")
                if actual is None and predicted is None:
                    continue
                value = number(actual if actual is not None else predicted, f"data[{i}].intensity")
                out.append(IntensityInterval(parse_utc(row.get("from")), parse_utc(row.get("to")), value,
                                             forecast=regional or actual is None))
        except PARSE_ERRORS as exc:
            raise LiveError(self.title, "malformed", f"unexpected answer: {exc}") from None
        return merge(out)


def _rows(body: Any, regional: bool) -> list[Any]:
    if not isinstance(body, dict) or "data" not in body:
        raise ValueError("no 'data' field")
    data = body["data"]
    if regional:
        if isinstance(data, list) and len(data) == 1:  # some endpoints wrap the region in a list
            data = data[0]
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise ValueError("no region object with a 'data' list")
        return data["data"]
    if not isinstance(data, list):
        raise ValueError("'data' is not a list")
    return data


def _clip(series: list[IntensityInterval], start: datetime, end: datetime) -> list[IntensityInterval]:
    return [iv for iv in series if iv.end > start and iv.start < end]
