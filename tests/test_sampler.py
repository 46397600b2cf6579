"""The sampler with meters faked at their interface (the meters' own tests use fake hardware)."""

from __future__ import annotations

import threading
import time

from nbcarbon.errors import MeterError
from nbcarbon.meters.base import NO_ANOMALIES, Anomalies, Channel, Meter, WrappingCounter
from nbcarbon.sampler import MIN_PERIOD_S, Sampler


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


def wait_for(condition, timeout_s: float = 60.0) -> None:
    """Waits for the sampler thread to do something, however busy the machine; the timeout
    only turns a thread that never runs into a failure instead of a hang."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the sampler thread never got there"
        time.sleep(0.01)


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
    wait_for(lambda: len(s.timeline) >= 3 and meter.background_calls >= 1)
    s.stop()
    assert threading.active_count() == before


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
    wait_for(lambda: s.error_counts()[0] >= 2)  # the thread's reads fail, and upkeep raises
    assert s.running
    r = s.read_all()[0]
    assert r.total_j is not None and "ZeroDivisionError" in r.error
    meter.failing = False
    assert s.read_all()[0].error is None
    s.stop()


class Nonsense(Ramp):
    def __init__(self, clock, limit: float) -> None:
        super().__init__(clock)
        self.limit = limit

    def max_poll_interval_s(self):
        return self.limit


def test_a_meters_nonsense_poll_interval_does_not_make_the_thread_spin() -> None:
    clock = Clock()
    for limit in (0.0, -1e-6, float("nan"), float("-inf")):
        assert Sampler([Nonsense(clock, limit)], interval_s=1.0).period_s() == 1.0
    assert Sampler([Nonsense(clock, 0.001)], interval_s=1.0).period_s() == MIN_PERIOD_S


class Glitchy(Meter):
    """A counter that refuses some reads, as RaplMeter does (its tally via read_with_anomalies)."""

    def __init__(self, clock) -> None:
        self.channel = Channel("cpu", "package-0", "rapl-counter", "machine")
        self.clock = clock
        self.counter = WrappingCounter(0, None, 1.0, max_power_w=10.0, slack_s=0.0, t_s=0.0)
        self.raw = 0
        self.failing = False

    def read(self) -> float:
        if self.failing:
            raise MeterError("gone")
        return self.counter.update(self.raw, self.clock(), self.clock())

    def anomalies(self) -> Anomalies:
        return self.counter.anomalies


def test_readings_carry_the_tally_and_a_refused_read_the_last_good_time() -> None:
    clock = Clock()
    meter = Glitchy(clock)
    s = Sampler([meter], clock=clock)
    clock.t, meter.raw = 1.0, 10
    good = s.read_all()[0]
    assert (good.total_j, good.t_s, good.anomalies) == (10.0, 1.0, NO_ANOMALIES)
    clock.t, meter.raw = 2.0, 10_000  # 9990 J in 1 s from a 10 W zone: refused
    held = s.read_all()[0]
    assert (held.total_j, held.t_s, held.error) == (10.0, 1.0, None)
    assert held.anomalies.held and held.anomalies.jumps == 1
    meter.failing = True
    clock.t = 3.0
    failed = s.read_all()[0]
    assert failed.error == "gone" and failed.anomalies == held.anomalies  # never a smaller tally
    meter.failing = False
    clock.t, meter.raw = 4.0, 30
    after = s.read_all()[0]
    assert (after.total_j, after.t_s) == (30.0, 4.0) and not after.anomalies.held
    assert after.anomalies.jumps == 1
