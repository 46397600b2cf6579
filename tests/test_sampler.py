"""The sampler with meters faked at their interface (the meters' own tests use fake hardware)."""

from __future__ import annotations

import threading
import time

from nbcarbon.errors import MeterError
from nbcarbon.meters.base import Channel, Meter
from nbcarbon.sampler import Sampler


class Ramp(Meter):
    """A counter that gains ``power_w`` per second of a fake clock; can be told to fail."""

    def __init__(self, clock, power_w: float = 10.0, poll_s: float | None = None) -> None:
        self.channel = Channel("cpu", "package-0", "rapl-counter", "machine")
        self.clock, self.power_w, self.poll_s = clock, power_w, poll_s
        self.failing = False
        self.background_calls = 0

    def read(self) -> float:
        if self.failing:
            raise MeterError("gone")
        return self.clock() * self.power_w

    def max_poll_interval_s(self):
        return self.poll_s

    def background(self) -> None:
        self.background_calls += 1


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_failed_read_returns_last_good_total_and_counts() -> None:
    clock = Clock()
    meter = Ramp(clock)
    s = Sampler([meter], clock=clock)
    clock.t = 1.0
    assert s.read_all()[0].total_j == 10.0
    meter.failing = True
    clock.t = 2.0
    r = s.read_all()[0]
    assert (r.total_j, r.t_s, r.error) == (10.0, 1.0, "gone")
    assert s.error_counts() == (1,)


def test_timeline_is_power_between_samples_and_bounded() -> None:
    clock = Clock()
    s = Sampler([Ramp(clock, 25.0)], clock=clock, timeline_points=5)
    for i in range(20):
        clock.t = float(i)
        s.sample()
    assert len(s.timeline) == 5
    assert s.power_now() == (25.0,)


def test_period_follows_the_meter_that_must_be_read_more_often() -> None:
    clock = Clock()
    assert Sampler([Ramp(clock, poll_s=0.2)], interval_s=1.0).period_s() == 0.2
    assert Sampler([Ramp(clock, poll_s=None)], interval_s=1.0).period_s() == 1.0


def test_thread_starts_stops_and_does_upkeep() -> None:
    meter = Ramp(time.monotonic)
    s = Sampler([meter], interval_s=0.05)
    before = threading.active_count()
    s.start()
    s.start()  # idempotent
    assert threading.active_count() == before + 1
    time.sleep(0.3)
    s.stop()
    assert threading.active_count() == before
    assert len(s.timeline) >= 3 and meter.background_calls >= 1


class Broken(Ramp):
    def read(self) -> float:
        if self.failing:
            raise ZeroDivisionError("bug")
        return super().read()

    def background(self) -> None:
        raise RuntimeError("upkeep bug")


def test_a_meter_bug_is_a_failed_reading_and_the_thread_survives() -> None:
    meter = Broken(time.monotonic)
    s = Sampler([meter], interval_s=0.05)
    s.start()
    meter.failing = True
    time.sleep(0.2)
    assert s.running
    r = s.read_all()[0]
    assert r.total_j is not None and "ZeroDivisionError" in r.error
    meter.failing = False
    time.sleep(0.1)
    assert s.read_all()[0].error is None
    s.stop()
