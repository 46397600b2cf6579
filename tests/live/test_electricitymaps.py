"""Electricity Maps v3 against a local server; the token goes in its header and nowhere else."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from nbcarbon.live.base import LiveError
from nbcarbon.live.electricitymaps import ElectricityMaps
from tests.live.server import FakeProvider, Reply

TOKEN = "em-Tok3n-f4c5e1b0-never-shown"
NOW = datetime(2024, 5, 21, 12, 20, tzinfo=timezone.utc)


def point(t: datetime, value: float | None, estimated: bool = False) -> dict:
    return {"zone": "DE", "carbonIntensity": value, "datetime": t.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "updatedAt": "2024-05-21T12:05:00.000Z", "createdAt": "2024-05-18T12:00:00.000Z",
            "emissionFactorType": "lifecycle", "isEstimated": estimated, "estimationMethod": None}


def provider(server: FakeProvider) -> ElectricityMaps:
    return ElectricityMaps(TOKEN, server.base_url, timeout_s=2, now=lambda: NOW)


def hour(i: int) -> datetime:
    return NOW.replace(minute=0) + timedelta(hours=i)


def test_history_covers_recent_cells_and_the_token_is_a_header(server: FakeProvider) -> None:
    server.route("/v3/carbon-intensity/history",
                 Reply({"zone": "DE", "history": [point(hour(-2), 300), point(hour(-1), 320),
                                                  point(hour(0), 340, estimated=True)]}))
    got = provider(server).intervals("DE", hour(-1), NOW)
    assert [(iv.g_per_kwh, iv.forecast) for iv in got] == [(320, False), (340, True)]
    seen = server.requests[0]
    assert seen.query == {"zone": "DE"} and seen.headers.get("auth-token") == TOKEN
    assert TOKEN not in repr(provider(server))


def test_latest_fills_in_when_history_lags(server: FakeProvider) -> None:
    server.route("/v3/carbon-intensity/history", Reply({"zone": "DE", "history": [point(hour(-1), 320)]}))
    server.route("/v3/carbon-intensity/latest", Reply(point(hour(0), 333)))
    got = provider(server).intervals("DE", NOW - timedelta(minutes=5), NOW)
    assert [iv.g_per_kwh for iv in got] == [333]


def test_older_spans_use_past_range_and_sub_national_zones_are_mapped(server: FakeProvider) -> None:
    old = NOW - timedelta(days=3)
    server.route("/v3/carbon-intensity/past-range", Reply({"zone": "US-CAL-CISO", "data": [
        point(old.replace(minute=0), 210)]}))
    got = provider(server).intervals("US-CA", old, old + timedelta(minutes=10))
    assert [iv.g_per_kwh for iv in got] == [210]
    assert server.requests[0].query["zone"] == "US-CAL-CISO"
    assert not provider(server).supports("WORLD") and not provider(server).supports("aws:eu-west-2")


def test_forecast(server: FakeProvider) -> None:
    values = [{"carbonIntensity": 300 - i, "datetime": hour(i).strftime("%Y-%m-%dT%H:%M:%S.000Z")}
              for i in range(30)]
    server.route("/v3/carbon-intensity/forecast",
                 Reply({"zone": "DE", "forecast": values, "updatedAt": "2024-05-21T12:00:00.000Z"}))
    got = provider(server).forecast("DE", NOW, 5)
    assert [iv.g_per_kwh for iv in got] == [300, 299, 298, 297, 296, 295]
    assert all(iv.forecast for iv in got)


@pytest.mark.parametrize("reply, kind", [
    (Reply({"status": "error", "message": f"Invalid token {TOKEN}"}, status=401), "refused"),
    (Reply({"message": "Too many requests"}, status=429), "rate-limited"),
    (Reply({"zone": "DE", "history": [point(hour(0), 1) | {"datetime": TOKEN}]}), "malformed"),
    (Reply(f"<{TOKEN}".encode()), "malformed"),
])
def test_no_error_message_ever_contains_the_token(server: FakeProvider, reply: Reply, kind: str) -> None:
    server.route("/v3/", reply)
    with pytest.raises(LiveError) as info:
        provider(server).intervals("DE", hour(-1), NOW)
    assert info.value.kind == kind
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)


def test_a_token_is_required() -> None:
    with pytest.raises(ValueError, match="NBCARBON_ELECTRICITYMAPS_TOKEN"):
        ElectricityMaps("")
