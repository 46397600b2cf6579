"""Energi Data Service (Denmark) against a local server serving CO2Emis / CO2EmisProg records."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from nbcarbon.live.base import LiveError
from nbcarbon.live.energidataservice import EnergiDataService
from tests.live.server import FakeProvider, Reply

T0 = datetime(2022, 1, 1, 0, 0, tzinfo=timezone.utc)


def records(dataset: str, start: datetime, values: list[tuple[float, float]]) -> dict:
    recs = []
    for i, (dk1, dk2) in enumerate(values):
        t = start + timedelta(minutes=5 * i)
        for area, v in (("DK1", dk1), ("DK2", dk2)):
            recs.append({"Minutes5UTC": t.strftime("%Y-%m-%dT%H:%M:%S"),
                         "Minutes5DK": (t + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
                         "PriceArea": area, "CO2Emission": v})
    return {"total": len(recs), "filters": "{}", "dataset": dataset, "records": recs}


def test_denmark_is_the_mean_of_both_price_areas(server: FakeProvider) -> None:
    server.route("/dataset/CO2Emis", Reply(records("CO2Emis", T0, [(100, 200), (110, 210), (120, 220)])))
    got = EnergiDataService(server.base_url, 2).intervals("DK", T0, T0 + timedelta(minutes=15))
    assert [iv.g_per_kwh for iv in got] == [150, 160, 170]
    assert all(not iv.forecast and iv.duration_s == 300 for iv in got)
    seen = server.requests[0]
    assert seen.path == "/dataset/CO2Emis"
    assert seen.query["timezone"] == "UTC" and seen.query["start"] == "2022-01-01T00:00"
    assert json.loads(seen.query["filter"]) == {"PriceArea": ["DK1", "DK2"]}


def test_a_single_price_area(server: FakeProvider) -> None:
    server.route("/dataset/CO2Emis", Reply(records("CO2Emis", T0, [(100, 200)])))
    got = EnergiDataService(server.base_url, 2).intervals("DK2", T0, T0 + timedelta(minutes=5))
    assert [iv.g_per_kwh for iv in got] == [200]


def test_measured_values_lagging_are_completed_by_the_forecast(server: FakeProvider) -> None:
    server.route("/dataset/CO2Emis", Reply(records("CO2Emis", T0, [(100, 100), (100, 100)])))
    server.route("/dataset/CO2EmisProg", Reply(records("CO2EmisProg", T0, [(90, 90)] * 6)))
    got = EnergiDataService(server.base_url, 2).intervals("DK", T0, T0 + timedelta(minutes=30))
    assert [(iv.g_per_kwh, iv.forecast) for iv in got] == [(100, False)] * 2 + [(90, True)] * 4
    assert server.paths() == ["/dataset/CO2Emis", "/dataset/CO2EmisProg"]
    assert server.requests[1].query["start"] == "2022-01-01T00:10"


def test_forecast_reads_the_prognosis_dataset(server: FakeProvider) -> None:
    server.route("/dataset/CO2EmisProg", Reply(records("CO2EmisProg", T0, [(50, 70)] * 24)))
    got = EnergiDataService(server.base_url, 2).forecast("DK", T0, 1)
    assert len(got) == 12 and {iv.g_per_kwh for iv in got} == {60} and all(iv.forecast for iv in got)


@pytest.mark.parametrize("body, text", [
    (b"<html>maintenance</html>", "not JSON"),
    ({"records": {"a": 1}}, "no 'records' list"),
    ({"records": [{"Minutes5UTC": "yesterday", "PriceArea": "DK1", "CO2Emission": 1}]}, "unexpected answer"),
    ({"records": [{"Minutes5UTC": "2022-01-01T00:00:00", "PriceArea": "DK1", "CO2Emission": -4}]},
     "finite number >= 0"),
])
def test_malformed_answers(server: FakeProvider, body: object, text: str) -> None:
    server.route("/dataset/", Reply(body))
    with pytest.raises(LiveError, match=text) as info:
        EnergiDataService(server.base_url, 2).intervals("DK", T0, T0)
    assert info.value.kind == "malformed"


def test_supports_denmark_only(server: FakeProvider) -> None:
    p = EnergiDataService(server.base_url, 2)
    assert p.supports("DK") and p.supports("DK1") and not p.supports("GB") and not p.supports("SE")
