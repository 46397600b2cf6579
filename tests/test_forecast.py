"""The greenest-window search on known forecast series, and the forecast report and chart around it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nbcarbon
from nbcarbon.live.base import IntensityInterval
from nbcarbon.live.chart import forecast_figure
from nbcarbon.live.commands import forecast_report
from nbcarbon.live.forecast import greenest_window
from nbcarbon.session import Session
from nbcarbon.settings import Settings
from tests.fakes.nvml import FakeNvml
from tests.live.fakeapis import ukgrid_series
from tests.live.server import FakeProvider, closed_port_url

T0 = datetime(2024, 3, 1, 0, 0, tzinfo=timezone.utc)
H = timedelta(hours=1)


def hourly(values: list[float], start: datetime = T0, step: timedelta = H) -> list[IntensityInterval]:
    return [IntensityInterval(start + i * step, start + (i + 1) * step, v, True)
            for i, v in enumerate(values)]


def test_a_known_series() -> None:
    w = greenest_window(hourly([400, 300, 120, 80, 100, 300, 200, 200]), 3, 8, now=T0, provider="ukgrid")
    assert w.covered and w.start == T0 + 2 * H and w.end == T0 + 5 * H
    assert w.mean_g_per_kwh == pytest.approx(100) and w.now_g_per_kwh == pytest.approx(820 / 3)
    assert w.saving_pct == pytest.approx((820 / 3 - 100) / (820 / 3) * 100)
    assert w.advice(timezone.utc) == ("A 3 h run starting at 02:00 would emit 63% less than starting now "
                                      "(100 vs 273 g/kWh).")
    assert w.to_dict()["start"] == "2024-03-01T02:00+00:00" and w.to_dict()["provider"] == "ukgrid"


def test_ties_go_to_the_earliest_start() -> None:
    w = greenest_window(hourly([100, 50, 50, 100, 50, 50]), 2, 6, now=T0)
    assert w.start == T0 + H and w.mean_g_per_kwh == 50
    flat = greenest_window(hourly([70] * 10), 3, 10, now=T0)
    assert flat.start == T0 and flat.saving_pct == 0
    assert flat.advice(timezone.utc) == ("Now is the greenest time to start a 3 h run in the next 10 h "
                                         "(70 g/kWh).")


def test_the_best_start_need_not_be_on_an_interval_boundary() -> None:
    # a 2.5 h job over [100, 0, 0, 100]: every start in [0.5 h, 1 h] averages 20 g/kWh; earliest wins
    w = greenest_window(hourly([100, 0, 0, 100]), 2.5, 4, now=T0)
    assert w.start == T0 + timedelta(minutes=30) and w.mean_g_per_kwh == pytest.approx(20)
    # a 1.5 h job fits entirely in the zero hours, from 01:00
    w = greenest_window(hourly([100, 0, 0, 100]), 1.5, 4, now=T0)
    assert w.start == T0 + H and w.mean_g_per_kwh == pytest.approx(0)


def test_a_series_shorter_than_the_job_is_an_answer_not_a_crash() -> None:
    w = greenest_window(hourly([100, 90]), 3, 24, now=T0)
    assert not w.covered and w.start is None and w.saving_pct is None
    assert w.reason == "the forecast covers 2 h from now, less than the 3 h job"
    assert w.advice() == "No advice for a 3 h run: the forecast covers 2 h from now, less than the 3 h job."


@pytest.mark.parametrize("series, now, reason", [
    ([], T0, "no values after now"),
    (hourly([100] * 5), T0 + 6 * H, "no values after now"),
    (hourly([100] * 5, start=T0 + 5 * H), T0, "starts only at 2024-03-01 05:00 UTC"),
    (hourly([100, 100]) + hourly([10] * 5, start=T0 + 3 * H), T0, "covers 2 h"),  # a gap ends it
])
def test_forecasts_that_cannot_advise(series: list[IntensityInterval], now: datetime, reason: str) -> None:
    w = greenest_window(series, 3, 24, now=now)
    assert not w.covered and reason in (w.reason or "")


def test_now_inside_an_interval_and_half_hour_steps() -> None:
    series = hourly([300, 300, 100, 100, 300, 300], step=timedelta(minutes=30))
    w = greenest_window(series, 1, 3, now=T0 + timedelta(minutes=10))
    assert w.start == T0 + H and w.mean_g_per_kwh == 100
    assert w.now_g_per_kwh == pytest.approx((50 * 300 + 10 * 100) / 60)


def test_values_after_the_search_window_are_not_used() -> None:
    w = greenest_window(hourly([200, 200, 200, 10, 10]), 2, 3, now=T0)
    assert w.start == T0 and w.mean_g_per_kwh == 200  # 10 g/kWh at 03:00 is past the 3 h window


@pytest.mark.parametrize("duration, within", [(0, 5), (-1, 5), (float("nan"), 5), (3, 2), (1, 0)])
def test_bad_lengths_raise(duration: float, within: float) -> None:
    with pytest.raises(ValueError):
        greenest_window(hourly([1] * 10), duration, within, now=T0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 500), min_size=1, max_size=30), st.integers(1, 12), st.integers(0, 11))
def test_no_five_minute_start_beats_the_answer(values: list[int], job_halves: int, now_5min: int) -> None:
    series = hourly([float(v) for v in values], step=timedelta(minutes=30))
    now = T0 + timedelta(minutes=5 * now_5min)
    job_h = job_halves / 2
    w = greenest_window(series, job_h, 24, now=now)
    end = series[-1].end
    if now + timedelta(hours=job_h) > end:
        assert not w.covered
        return
    assert w.covered and w.mean_g_per_kwh is not None
    t = now
    while t + timedelta(hours=job_h) <= end:
        a, b = t, t + timedelta(hours=job_h)
        mean = sum(iv.g_per_kwh * max(0.0, (min(iv.end, b) - max(iv.start, a)).total_seconds())
                   for iv in series) / (job_h * 3600)
        assert w.mean_g_per_kwh <= mean + 1e-6
        t += timedelta(minutes=5)


def test_the_chart() -> None:
    series = hourly([400, 300, 120, 80, 100, 300, 200, 200])
    w = greenest_window(series, 3, 8, now=T0)
    fig = forecast_figure(series, w, "forecast, GB", timezone.utc)
    ax = fig.axes[0]
    assert ax.get_title() == "forecast, GB" and ax.get_ylabel() == "g CO2e/kWh"
    assert "63% less" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "forecast intensity", "now", "greenest 3 h (100 g/kWh)"]


@pytest.fixture
def server() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


def live_session(tmp_path: Path) -> Session:
    s = Settings(interval_s=0.05, powercap_root=tmp_path / "none", ledger=None)
    return Session(s, {"NBCARBON_REGION": "GB"}, nvml=FakeNvml(gpus=[]))


def test_forecast_report_and_the_public_api(tmp_path: Path, server: FakeProvider) -> None:
    now = datetime.now(timezone.utc)
    start = now.replace(minute=0 if now.minute < 30 else 30, second=0, microsecond=0)
    values = [300.0] * 4 + [90.0] * 6 + [300.0] * 86
    server.route("/intensity/", ukgrid_series(start, values))
    s = live_session(tmp_path)
    urls = {"ukgrid": server.base_url}
    report = forecast_report(s, hours=24, job_h=3, tz=timezone.utc, base_urls=urls)
    assert report.window.covered and report.window.start == start + 2 * H
    assert report.window.provider == "ukgrid" and report.window.region == "GB"
    assert "forecast intensity for GB (UK Carbon Intensity API, direct)" in report.text
    assert "<- greenest" in report.text and report.text.splitlines()[-1].startswith("A 3 h run starting at")
    assert report.figure(timezone.utc).axes[0].get_title().endswith("GB (UK Carbon Intensity API)")
    w = nbcarbon.greenest_window(3, 24, "uk", session=s, base_urls=urls)
    assert w.covered and w.start == report.window.start and w.mean_g_per_kwh == pytest.approx(90)
    assert w.saving_pct == pytest.approx(report.window.saving_pct, abs=0.5)
    # "Now" falls anywhere in the current half-hour of the served series, so its intensity (and
    # the saving) depends on the clock; the saving follows from it exactly.
    assert w.saving_pct == pytest.approx((1 - w.mean_g_per_kwh / w.now_g_per_kwh) * 100, abs=1e-6)
    assert 0 <= w.saving_pct < 70
    assert server.paths()[0].endswith("/fw48h")
    s.close()


def test_no_forecast_is_data_not_an_exception(tmp_path: Path) -> None:
    s = live_session(tmp_path)
    w = nbcarbon.greenest_window(2, region="SE", session=s)
    assert not w.covered and "no live source for region SE" in (w.reason or "")
    w = nbcarbon.greenest_window(2, region="GB", session=s, base_urls={"ukgrid": closed_port_url()})
    assert not w.covered and "unreachable" in (w.reason or "") and w.provider == "ukgrid"
    report = forecast_report(s, region="SE")
    assert report.text.startswith("No forecast for SE: live: no live source for region SE")
    s.close()
