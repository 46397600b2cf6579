"""Providers answering the impossible: each falls back to the bundled figure with a warning.

Every provider is served by the local HTTP server with its documented shape, one value replaced by
raw JSON text (so ``NaN``, ``Infinity`` and a 400-digit integer reach the parser exactly as a broken
feed would send them), or with an answer nested past the JSON parser's recursion limit.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from nbcarbon import intensity
from nbcarbon.live.base import MAX_G_PER_KWH, IntensityInterval, LiveError, Provider
from nbcarbon.live.electricitymaps import ElectricityMaps
from nbcarbon.live.energidataservice import EnergiDataService
from nbcarbon.live.pricing import LivePricer
from nbcarbon.live.service import LiveService
from nbcarbon.live.ukgrid import UKGrid
from nbcarbon.session import Session, priced
from nbcarbon.settings import Settings
from tests.fakes.nvml import FakeNvml
from tests.live.server import FakeProvider, Reply

T0 = datetime(2024, 5, 21, 10, 0, tzinfo=timezone.utc)
NOW = T0 + timedelta(hours=3)
TOKEN = "em-implausible-0b1c"
MARK = "__VALUE__"


def _z(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%MZ")


def ukgrid_body() -> str:
    half = timedelta(minutes=30)
    rows = [f'{{"from": "{_z(T0 + i * half)}", "to": "{_z(T0 + (i + 1) * half)}", '
            f'"intensity": {{"forecast": 200, "actual": {MARK if i == 1 else 210}, "index": "low"}}}}'
            for i in range(4)]
    return '{"data": [' + ", ".join(rows) + "]}"


def eds_body() -> str:
    recs = []
    for i in range(24):
        t = (T0 + timedelta(minutes=5 * i)).strftime("%Y-%m-%dT%H:%M:%S")
        for area in ("DK1", "DK2"):
            value = MARK if (i, area) == (5, "DK2") else "150"
            recs.append(f'{{"Minutes5UTC": "{t}", "PriceArea": "{area}", "CO2Emission": {value}}}')
    return '{"total": 48, "dataset": "CO2Emis", "records": [' + ", ".join(recs) + "]}"


def em_body() -> str:
    rows = [f'{{"zone": "DE", "carbonIntensity": {MARK if i == 0 else 300}, '
            f'"datetime": "{(T0 + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%S.000Z")}", '
            f'"isEstimated": false, "temporalGranularity": "hourly"}}' for i in range(3)]
    return '{"zone": "DE", "history": [' + ", ".join(rows) + "]}"


# name -> (region code, route prefix, body with MARK, provider factory)
PROVIDERS: dict[str, tuple[str, str, Callable[[], str], Callable[[str], Provider]]] = {
    "ukgrid": ("GB", "/intensity/", ukgrid_body, lambda url: UKGrid(url, timeout_s=5)),
    "energidataservice": ("DK", "/dataset/", eds_body, lambda url: EnergiDataService(url, timeout_s=5)),
    "electricitymaps": ("DE", "/v3/carbon-intensity/", em_body,
                        lambda url: ElectricityMaps(TOKEN, url, timeout_s=5, now=lambda: NOW)),
}

DEEP = b"[" * 200_000 + b"]" * 200_000  # 400 kB, far below the size limit, far past the depth limit
IMPOSSIBLE = {
    "1e308": "1e308", "negative": "-5", "NaN": "NaN", "Infinity": "Infinity", "-Infinity": "-Infinity",
    "above the ceiling": "2500", "huge integer": "9" * 400, "5000-digit integer": "1" * 5000,
}


def pricer(provider: Provider, notes: list[str]) -> LivePricer:
    return LivePricer(LiveService([provider], now=lambda: NOW), notes.append)


def bundled(code: str):  # noqa: ANN201 - a PricedRegion
    return priced(intensity.lookup(code), "env:NBCARBON_REGION")


def price_one(server: FakeProvider, name: str, body: bytes) -> tuple[object, list[str], list[str]]:
    code, prefix, _, make = PROVIDERS[name]
    server.route(prefix, Reply(body))
    notes: list[str] = []
    region, warnings = pricer(make(server.base_url), notes)(bundled(code), T0 + timedelta(minutes=20),
                                                            T0 + timedelta(minutes=40))
    return region, warnings, notes


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_a_plausible_answer_is_used(server: FakeProvider, name: str) -> None:
    """The control: the same bodies with a sane value price the cell live."""
    region, warnings, notes = price_one(server, name, PROVIDERS[name][2]().replace(MARK, "180").encode())
    assert region.chosen_by == f"live:{name}", warnings  # type: ignore[attr-defined]
    assert 150 <= region.g_per_kwh <= 300 and warnings == [] and notes == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", list(IMPOSSIBLE.values()), ids=list(IMPOSSIBLE))
@pytest.mark.parametrize("name", list(PROVIDERS))
def test_an_impossible_intensity_falls_back_with_a_warning(server: FakeProvider, name: str,
                                                           value: str) -> None:
    region, warnings, notes = price_one(server, name, PROVIDERS[name][2]().replace(MARK, value).encode())
    assert region == bundled(PROVIDERS[name][0])
    assert len(warnings) == 1 and "priced with the bundled annual figure" in warnings[0], warnings
    assert len(notes) == 1 and "live intensity unavailable" in notes[0]
    assert TOKEN not in warnings[0] + notes[0]


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_json_nested_past_the_parsers_depth_falls_back(server: FakeProvider, name: str) -> None:
    region, warnings, notes = price_one(server, name, DEEP)
    assert region == bundled(PROVIDERS[name][0])
    assert len(warnings) == 1 and "not JSON (RecursionError)" in warnings[0], warnings
    assert len(notes) == 1


@pytest.mark.parametrize("value", ["0", str(int(MAX_G_PER_KWH))])
def test_the_edges_of_the_plausible_range_are_used(server: FakeProvider, value: str) -> None:
    """0 (an all-hydro hour, direct basis) and the ceiling itself are possible, so they are kept."""
    body = eds_body().replace('"CO2Emission": 150', f'"CO2Emission": {value}').replace(MARK, value)
    region, warnings, _ = price_one(server, "energidataservice", body.encode())
    assert region.chosen_by == "live:energidataservice" and warnings == []  # type: ignore[attr-defined]
    assert region.g_per_kwh == float(value)  # type: ignore[attr-defined]


def test_a_time_at_the_end_of_the_calendar_is_malformed_not_a_crash(server: FakeProvider) -> None:
    """9999-12-31T23:00 plus its hour overflows ``datetime``: an OverflowError, not a ValueError."""
    body = em_body().replace(MARK, "300").replace("2024-05-21T11:00:00.000Z", "9999-12-31T23:00:00.000Z")
    server.route("/v3/carbon-intensity/", Reply(body.encode()))
    with pytest.raises(LiveError) as info:
        PROVIDERS["electricitymaps"][3](server.base_url).intervals("DE", T0, T0 + timedelta(hours=1))
    assert info.value.kind == "malformed" and "out of range" in str(info.value)


class Broken(Provider):
    """A provider written elsewhere, with a bug and no value checks of its own."""

    name, title, source, basis = "broken", "Broken", "Broken feed", "direct"

    def __init__(self, answer: Callable[[], list[IntensityInterval]]) -> None:
        super().__init__("http://127.0.0.1:9")
        self.answer = answer
        self.calls: list[str] = []  # shared with the copies the service makes for its own timeout

    def supports(self, region_code: str) -> bool:
        return region_code == "GB"

    def intervals(self, region_code: str, start: datetime, end: datetime) -> list[IntensityInterval]:
        self.calls.append(region_code)
        return self.answer()


def _raise() -> list[IntensityInterval]:
    raise KeyError("a bug")


@pytest.mark.parametrize("answer, text", [
    (lambda: [IntensityInterval(T0, T0 + timedelta(hours=1), 1e308)], "not plausible"),
    (lambda: [IntensityInterval(T0, T0 + timedelta(hours=1), float("nan"))], "not plausible"),
    (_raise, "could not be read (KeyError)"),
])
def test_any_provider_is_held_to_the_same_bounds_and_backed_off(answer, text: str) -> None:  # noqa: ANN001
    provider = Broken(answer)
    notes: list[str] = []
    p = pricer(provider, notes)
    results = [p(bundled("GB"), T0 + timedelta(minutes=i), T0 + timedelta(minutes=i + 1)) for i in range(3)]
    for region, warnings in results:
        assert region == bundled("GB") and len(warnings) == 1 and text in warnings[0], warnings
    assert provider.calls == ["GB"] and len(notes) == 1  # remembered as a failure: not asked again per cell


def test_later_cells_are_measured_after_a_deeply_nested_answer(tmp_path: Path, server: FakeProvider) -> None:
    """The issue's case end to end: the session records every cell, the first with a warning, and
    prices live again once the provider answers sensibly."""
    answers = iter([Reply(DEEP)])

    def intensity_route(path: str, query: dict[str, str]) -> Reply:
        nxt = next(answers, None)
        if nxt is not None:
            return nxt
        now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
        rows = [{"from": _z(now + timedelta(minutes=30 * i)), "to": _z(now + timedelta(minutes=30 * (i + 1))),
                 "intensity": {"forecast": 111, "actual": None}} for i in range(-4, 4)]
        return Reply({"data": rows})

    server.route("/intensity/", intensity_route)
    settings = Settings(interval_s=0.05, powercap_root=tmp_path / "none", ledger=None)
    s = Session(settings, {"NBCARBON_REGION": "GB"}, nvml=FakeNvml(gpus=[]))
    s.pricer = LivePricer(LiveService([UKGrid(server.base_url, timeout_s=5)]), s.add_notice)
    try:
        fps = []
        for _ in range(3):
            fps.append(s.end(s.begin()))
            if len(fps) == 2:
                s.pricer.service.cache.clear()  # skip the back-off instead of waiting two minutes
    finally:
        s.close()
    assert fps[0].region.chosen_by == "env:NBCARBON_REGION"
    assert any("not JSON (RecursionError)" in w for w in fps[0].warnings), fps[0].warnings
    assert fps[1].region.chosen_by == "env:NBCARBON_REGION"  # backed off, not asked again
    assert fps[2].region.chosen_by == "live:ukgrid" and fps[2].region.g_per_kwh == 111
