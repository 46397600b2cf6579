"""Cells priced over their own interval: time weighting, the cache, and the fall-back with one note."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from nbcarbon import intensity
from nbcarbon.live.base import IntensityInterval
from nbcarbon.live.pricing import LivePricer, time_weighted
from nbcarbon.live.service import LiveService
from nbcarbon.live.ukgrid import UKGrid
from nbcarbon.session import priced
from tests.live.server import FakeProvider, Reply, closed_port_url
from tests.live.test_ukgrid import half_hours

T0 = datetime(2018, 1, 20, 12, 0, tzinfo=timezone.utc)
M = timedelta(minutes=1)
SERIES = [IntensityInterval(T0, T0 + 30 * M, 300.0), IntensityInterval(T0 + 30 * M, T0 + 60 * M, 100.0, True)]


@pytest.mark.parametrize("start, end, mean, coverage, kind", [
    (T0 + 5 * M, T0 + 10 * M, 300.0, 1.0, "actual"),  # inside one interval
    (T0 + 20 * M, T0 + 40 * M, 200.0, 1.0, "actual and forecast"),  # half in each
    (T0 + 15 * M, T0 + 45 * M, 200.0, 1.0, "actual and forecast"),
    (T0 + 29 * M, T0 + 59 * M, 300 / 30 + 100 * 29 / 30, 1.0, "actual and forecast"),
    (T0 + 40 * M, T0 + 80 * M, 100.0, 0.5, "forecast"),  # runs past the data: mean of what is covered
    (T0 + 31 * M, T0 + 31 * M, 100.0, 1.0, "forecast"),  # an instant
])
def test_time_weighted(start: datetime, end: datetime, mean: float, coverage: float, kind: str) -> None:
    got = time_weighted(SERIES, start, end)
    assert got is not None
    assert got.g_per_kwh == pytest.approx(mean) and got.coverage == pytest.approx(coverage)
    assert got.kind == kind


def test_time_weighted_without_overlap_is_none() -> None:
    assert time_weighted(SERIES, T0 + 2 * 60 * M, T0 + 3 * 60 * M) is None
    assert time_weighted([], T0, T0 + M) is None


def gb() -> object:
    return priced(intensity.lookup("GB"), "env:NBCARBON_REGION")


def pricer_for(url: str, notes: list[str], now: datetime = T0 + 3 * 60 * M) -> LivePricer:
    return LivePricer(LiveService([UKGrid(url, timeout_s=5)], now=lambda: now), notes.append)


def test_a_long_cell_is_priced_over_the_intervals_it_spans(server: FakeProvider) -> None:
    server.route("/intensity/", Reply(half_hours([(266, 263), (250, None), (240, None)])))
    notes: list[str] = []
    region, warnings = pricer_for(server.base_url, notes)(gb(), T0 + 10 * M, T0 + 50 * M)
    assert region.g_per_kwh == pytest.approx((20 * 263 + 20 * 250) / 40)
    assert region.chosen_by == "live:ukgrid" and region.code == "GB" and region.name == "United Kingdom"
    assert region.source == "National Grid ESO Carbon Intensity API (actual and forecast)"
    assert region.basis == "direct" and region.year == 2018
    assert warnings == [] and notes == []


def test_cells_in_the_same_hour_share_one_request(server: FakeProvider) -> None:
    server.route("/intensity/", Reply(half_hours([(266, 263), (250, 251)])))
    p = pricer_for(server.base_url, [])
    for minute in (1, 12, 40):
        assert p(gb(), T0 + minute * M, T0 + (minute + 1) * M)[0].chosen_by == "live:ukgrid"
    assert len(server.requests) == 1


@pytest.mark.parametrize("reply", [
    Reply(b"][", status=200), Reply({"error": "x"}, status=503), Reply({}, status=429),
    Reply(half_hours([(1, 1)]), delay_s=3.0),
])
def test_fall_back_to_the_bundled_figure_with_one_note(server: FakeProvider, reply: Reply) -> None:
    server.route("/intensity/", reply)
    notes: list[str] = []
    p = LivePricer(LiveService([UKGrid(server.base_url, timeout_s=5)], now=lambda: T0), notes.append,
                   timeout_s=0.3)
    results = [p(gb(), T0 + i * M, T0 + (i + 1) * M) for i in range(3)]
    for region, warnings in results:
        assert region == gb()  # the bundled figure, the original chosen_by
        assert len(warnings) == 1 and "priced with the bundled annual figure" in warnings[0]
    assert len(notes) == 1 and "live intensity unavailable" in notes[0]
    assert len(server.requests) == 1  # backed off: the next cells did not wait again


def test_unreachable_provider_falls_back() -> None:
    notes: list[str] = []
    region, warnings = pricer_for(closed_port_url(), notes)(gb(), T0, T0 + M)
    assert region == gb() and "unreachable" in warnings[0] and len(notes) == 1


def test_a_region_without_a_provider_keeps_its_figure_and_says_so_once(server: FakeProvider) -> None:
    notes: list[str] = []
    p = pricer_for(server.base_url, notes)
    se = priced(intensity.lookup("SE"), "timezone:Europe/Stockholm")
    assert p(se, T0, T0 + M) == (se, []) and p(se, T0, T0 + M) == (se, [])
    assert len(notes) == 1 and "no live source for region SE" in notes[0]
    assert "NBCARBON_ELECTRICITYMAPS_TOKEN" in notes[0]
    assert server.requests == []


def test_partial_coverage_is_a_warning(server: FakeProvider) -> None:
    server.route("/intensity/", Reply(half_hours([(266, 263)])))
    region, warnings = pricer_for(server.base_url, [])(gb(), T0 + 10 * M, T0 + 70 * M)
    assert region.g_per_kwh == 263 and "covered 33%" in warnings[0]


def test_pricing_never_waits_more_than_two_seconds() -> None:
    assert LivePricer(LiveService([]), print, timeout_s=30).timeout_s == 2.0


def test_a_steady_intensity_is_returned_exactly_however_the_span_is_cut() -> None:
    from datetime import datetime, timedelta, timezone

    from nbcarbon.live.base import IntensityInterval
    from nbcarbon.live.pricing import time_weighted

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    series = [IntensityInterval(t0 + timedelta(minutes=30 * i), t0 + timedelta(minutes=30 * (i + 1)), 333.0,
                                False) for i in range(6)]
    for offset_s in (0.1, 7.3, 1234.567, 1799.999):
        for length_s in (0.2, 61.7, 3333.3):
            start = t0 + timedelta(seconds=offset_s)
            got = time_weighted(series, start, start + timedelta(seconds=length_s))
            assert got is not None and got.g_per_kwh == 333.0
