"""API calls never follow a redirect, so a credential never leaves the provider's own origin.

Two local servers: the "provider" answers every request with a 3xx pointing at the "elsewhere"
server, which would answer with perfectly good data. urllib's default handler would follow the
redirect and copy the ``auth-token`` header along; nbcarbon must send nothing at all to the
other origin (the token, the zone, the time span) and fall back like any other failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from nbcarbon import intensity
from nbcarbon.live.base import LiveError
from nbcarbon.live.electricitymaps import ElectricityMaps
from nbcarbon.live.pricing import LivePricer
from nbcarbon.live.service import LiveService
from nbcarbon.live.ukgrid import UKGrid
from nbcarbon.session import priced
from tests.live.fakeapis import ukgrid_constant
from tests.live.server import FakeProvider, Reply

TOKEN = "em-redirect-T0ken-5b9e2c71"
NOW = datetime(2024, 5, 21, 12, 20, tzinfo=timezone.utc)


@pytest.fixture
def elsewhere() -> Iterator[FakeProvider]:
    """Another origin (another port on 127.0.0.1) that answers every endpoint with good data."""
    with FakeProvider() as fake:
        hour = NOW.replace(minute=0)
        good = {"zone": "DE", "carbonIntensity": 300, "datetime": hour.strftime("%Y-%m-%dT%H:%M:%S.000Z")}
        fake.route("/v3/carbon-intensity/latest", Reply(good))
        fake.route("/v3/carbon-intensity/", Reply({"zone": "DE", "history": [good], "data": [good],
                                                   "forecast": [good]}))
        fake.route("/intensity/", ukgrid_constant(123.0))
        yield fake


def redirect_to(target: FakeProvider, status: int) -> object:
    """Every path redirects to the same path and query on ``target``."""

    def answer(path: str, query: dict[str, str]) -> Reply:
        from urllib.parse import urlencode

        where = f"{target.base_url}{path}" + (f"?{urlencode(query)}" if query else "")
        return Reply({"moved": True}, status=status, headers={"Location": where})

    return answer


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_the_token_never_reaches_another_origin(server: FakeProvider, elsewhere: FakeProvider,
                                                status: int) -> None:
    server.route("/", redirect_to(elsewhere, status))
    em = ElectricityMaps(TOKEN, server.base_url, timeout_s=2, now=lambda: NOW)
    errors: list[LiveError] = []
    for call in (lambda: em.intervals("DE", NOW - timedelta(minutes=30), NOW),
                 lambda: em.forecast("DE", NOW, 3)):
        try:
            call()
        except LiveError as exc:
            errors.append(exc)
    assert [r.path for r in elsewhere.requests if r.headers.get("auth-token") == TOKEN] == []
    assert elsewhere.requests == []  # not the token, not even the zone or the span
    assert len(errors) == 2
    for exc in errors:
        assert exc.kind == "http" and f"HTTP {status}" in str(exc) and "redirect" in str(exc)
        assert elsewhere.base_url not in str(exc) and TOKEN not in str(exc)
    assert server.requests and all(r.headers.get("auth-token") == TOKEN for r in server.requests)


def test_a_redirect_to_the_same_origin_is_not_followed_either(server: FakeProvider) -> None:
    """API endpoints do not move: a 3xx is a failure even when it stays on the provider's host."""
    server.route("/v3/carbon-intensity/history", redirect_to(server, 302))
    server.route("/v3/carbon-intensity/history-moved", Reply({"zone": "DE", "history": []}))
    em = ElectricityMaps(TOKEN, server.base_url, timeout_s=2, now=lambda: NOW)
    with pytest.raises(LiveError, match="HTTP 302"):
        em.intervals("DE", NOW - timedelta(minutes=30), NOW)
    assert len(server.requests) == 1


def test_a_redirected_cell_falls_back_to_the_bundled_figure(server: FakeProvider,
                                                            elsewhere: FakeProvider) -> None:
    """Through the pricer, for a provider without a token too: nothing goes elsewhere, one note."""
    server.route("/", redirect_to(elsewhere, 302))
    notes: list[str] = []
    pricer = LivePricer(LiveService([UKGrid(server.base_url, timeout_s=2)], now=lambda: NOW), notes.append)
    gb = priced(intensity.lookup("GB"), "env:NBCARBON_REGION")
    region, warnings = pricer(gb, NOW - timedelta(minutes=2), NOW)
    assert region == gb
    assert len(warnings) == 1 and "HTTP 302" in warnings[0] and len(notes) == 1
    assert elsewhere.requests == []
