"""The UK Carbon Intensity API provider against a local server serving the documented shapes."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from nbcarbon.live.base import IntensityInterval, LiveError
from nbcarbon.live.ukgrid import UKGrid
from tests.live.server import FakeProvider, Reply, closed_port_url

T0 = datetime(2018, 1, 20, 12, 0, tzinfo=timezone.utc)


def half_hours(values: list[tuple[int | None, int | None]], start: datetime = T0) -> dict:
    rows = []
    for i, (forecast, actual) in enumerate(values):
        a, b = start + timedelta(minutes=30 * i), start + timedelta(minutes=30 * (i + 1))
        rows.append({"from": a.strftime("%Y-%m-%dT%H:%MZ"), "to": b.strftime("%Y-%m-%dT%H:%MZ"),
                     "intensity": {"forecast": forecast, "actual": actual, "index": "moderate"}})
    return {"data": rows}


def test_national_actuals_and_forecasts(server: FakeProvider) -> None:
    server.route("/intensity/", Reply(half_hours([(266, 263), (250, None), (None, None)])))
    got = UKGrid(server.base_url, timeout_s=2).intervals("GB", T0, T0 + timedelta(hours=1))
    assert got == [
        IntensityInterval(T0, T0 + timedelta(minutes=30), 263.0, forecast=False),
        IntensityInterval(T0 + timedelta(minutes=30), T0 + timedelta(hours=1), 250.0, forecast=True),
    ]
    assert server.paths() == ["/intensity/2018-01-20T12:00Z/2018-01-20T13:01Z"]


def test_regional_series_for_a_london_cloud_region_are_forecasts(server: FakeProvider) -> None:
    body = {"data": {"regionid": 13, "dnoregion": "UKPN London", "shortname": "London",
                     "data": [{"from": "2018-01-20T12:00Z", "to": "2018-01-20T12:30Z",
                               "intensity": {"forecast": 180, "index": "low"}, "generationmix": []}]}}
    server.route("/regional/intensity/", Reply(body))
    got = UKGrid(server.base_url, timeout_s=2).intervals("aws:eu-west-2", T0, T0 + timedelta(minutes=10))
    assert got == [IntensityInterval(T0, T0 + timedelta(minutes=30), 180.0, forecast=True)]
    assert server.paths()[0].endswith("/regionid/13")


def test_forecast_uses_fw48h_and_clips_to_the_hours_asked(server: FakeProvider) -> None:
    server.route("/intensity/", Reply(half_hours([(100 + i, None) for i in range(96)])))
    got = UKGrid(server.base_url, timeout_s=2).forecast("GB", T0, 3)
    assert server.paths() == ["/intensity/2018-01-20T12:00Z/fw48h"]
    assert len(got) == 6 and got[0].g_per_kwh == 100 and all(iv.forecast for iv in got)


def test_supports_great_britain_and_its_cloud_regions_only() -> None:
    p = UKGrid(closed_port_url())
    assert p.supports("GB") and p.supports("azure:ukwest")
    assert not p.supports("SE") and not p.supports("DK")
    with pytest.raises(LiveError, match="no live data for region SE"):
        p.intervals("SE", T0, T0)


@pytest.mark.parametrize("reply, kind, text", [
    (Reply(b"{not json"), "malformed", "not JSON"),
    (Reply({"data": "nope"}), "malformed", "'data' is not a list"),
    (Reply({"data": [{"from": "x", "to": "y", "intensity": {"forecast": 1, "actual": 2}}]}), "malformed",
     "unexpected answer"),
    (Reply({"data": [{"from": "2018-01-20T12:00Z", "to": "2018-01-20T12:30Z",
                      "intensity": {"forecast": "high", "actual": None}}]}), "malformed", "must be a number"),
    (Reply({"error": {"code": "500", "message": "boom"}}, status=500), "http", "HTTP 500"),
    (Reply({"error": "slow down"}, status=429, headers={"Retry-After": "30"}), "rate-limited", "HTTP 429"),
])
def test_errors_become_one_live_error(server: FakeProvider, reply: Reply, kind: str, text: str) -> None:
    server.route("/intensity/", reply)
    with pytest.raises(LiveError, match=text) as info:
        UKGrid(server.base_url, timeout_s=2).intervals("GB", T0, T0)
    assert info.value.kind == kind
    assert server.base_url not in str(info.value) and "/intensity" not in str(info.value)
    if kind == "rate-limited":
        assert info.value.retry_after_s == 30


@pytest.mark.parametrize("reply", [
    Reply(half_hours([(1, 1)]), delay_s=3.0),  # silent server
    Reply(half_hours([(1, 1)] * 20), trickle_s=0.05),  # one byte every 50 ms: never a socket timeout
])
def test_slow_or_trickling_server_never_holds_the_caller_past_the_timeout(server: FakeProvider,
                                                                          reply: Reply) -> None:
    server.route("/intensity/", reply)
    t0 = time.monotonic()
    with pytest.raises(LiveError, match="within 0.5 s") as info:
        UKGrid(server.base_url, timeout_s=0.5).intervals("GB", T0, T0)
    assert time.monotonic() - t0 < 0.8
    assert info.value.kind == "timeout"


def test_unreachable_is_quick_and_says_so() -> None:
    t0 = time.monotonic()
    with pytest.raises(LiveError, match="unreachable") as info:
        UKGrid(closed_port_url(), timeout_s=1).intervals("GB", T0, T0)
    assert info.value.kind == "unreachable" and time.monotonic() - t0 < 1.2
