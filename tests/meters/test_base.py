"""The meter interface's shared arithmetic: wrap-around, resets, power integration, locking."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nbcarbon.errors import MeterError
from nbcarbon.meters.base import METHOD_KIND, Channel, LockedMeter, PowerIntegrator, WrappingCounter


def test_channel_rejects_unknown_values() -> None:
    Channel("cpu", "package-0", "rapl-counter", "machine")
    with pytest.raises(ValueError, match="component"):
        Channel("disk", "sda", "rapl-counter", "machine")
    with pytest.raises(ValueError, match="method"):
        Channel("cpu", "package-0", "guess", "machine")
    with pytest.raises(ValueError, match="attribution"):
        Channel("cpu", "package-0", "rapl-counter", "user")


def test_every_method_has_a_kind() -> None:
    assert set(METHOD_KIND.values()) <= {"measured", "sampled", "estimated"}


def test_wrapping_counter_carries_a_wrap() -> None:
    c = WrappingCounter(first_raw=900, range_raw=1000, joules_per_unit=1.0)
    assert c.update(950) == 50
    assert c.update(30) == 130  # 950 -> 1000 == 0 -> 30
    assert c.wraps == 1 and c.resets == 0


def test_wrapping_counter_without_range_treats_backwards_as_reset() -> None:
    c = WrappingCounter(first_raw=100, range_raw=None, joules_per_unit=0.5)
    assert c.update(300) == 100
    assert c.update(10) == 100
    assert c.update(50) == 120
    assert c.resets == 1


RANGE_UJ = 262_143_328_850  # a real package counter's range: 262 kJ
NEAR_200_KJ = 200_000_000_000


def test_wrapping_counter_implausible_wrap_is_refused_not_counted() -> None:
    c = WrappingCounter(500_000_000, 1_000_000_000, 1e-6, max_power_w=100.0, t_s=0.0)
    # A wrap would mean 500 J in 1 ms: far beyond 100 W, so it is not energy.
    assert c.update(10, 0.001, 0.001) == 0.0
    assert c.held and c.anomalies.jumps == 1 and c.wraps == 0 and c.resets == 0
    assert c.update(999_990_000, 6.0, 6.0) == pytest.approx(499.99)  # 83 W for 6 s: counted
    assert c.update(5, 6.1, 6.1) == pytest.approx(500.000005)  # 10 mJ across the wrap: genuine
    assert c.wraps == 1 and not c.held


def test_bad_reads_of_a_counter_near_200_kj_are_skipped_and_the_good_ones_bracket() -> None:
    """The issue's case: 0, then -5, then beyond the range for part of a window, at 20 W."""
    c = WrappingCounter(NEAR_200_KJ, RANGE_UJ, 1e-6, max_power_w=1000.0, t_s=0.0)
    t, true_uj = 0.0, NEAR_200_KJ
    for shown in ["good"] * 5 + ["0"] * 5 + ["-5"] * 5 + [str(RANGE_UJ + 10**6)] * 5 + ["good"] * 5:
        t += 0.1
        true_uj += 2_000_000  # 20 W for 0.1 s
        c.update(true_uj if shown == "good" else int(shown), t, t)
    assert c.total_j == pytest.approx(2.0 * 25, abs=1e-6)  # every joule, none invented
    a = c.anomalies
    assert (a.jumps, a.below_zero, a.beyond_range, a.resets, a.held) == (5, 5, 5, 0, False)
    assert a.last_jump == "counter read 0 J after 200 kJ"


def test_a_bad_value_at_the_end_holds_the_last_good_total() -> None:
    c = WrappingCounter(NEAR_200_KJ, RANGE_UJ, 1e-6, max_power_w=1000.0, t_s=0.0)
    c.update(NEAR_200_KJ + 20_000_000, 1.0, 1.0)
    # 50 kJ in 2 s is 25 kW: not this zone. The window ends on it: the total stays.
    assert c.update(NEAR_200_KJ + 50 * 10**9, 2.0, 2.0) == pytest.approx(20.0)
    assert c.held and c.anomalies.jumps == 1
    assert c.update(NEAR_200_KJ + 40_000_000, 3.0, 3.0) == pytest.approx(40.0)
    assert not c.held and c.resets == 0


def test_a_stuck_bad_value_never_confirms_a_reset() -> None:
    c = WrappingCounter(NEAR_200_KJ, RANGE_UJ, 1e-6, max_power_w=1000.0, t_s=0.0)
    for i in range(1, 30):
        c.update(0, i * 0.1, i * 0.1)  # the file reads 0 for 3 s
    assert c.resets == 0 and c.anomalies.jumps == 29
    assert c.update(NEAR_200_KJ + 60_000_000, 3.0, 3.0) == pytest.approx(60.0)


def test_a_counter_that_restarts_is_rebased_and_the_reset_named() -> None:
    c = WrappingCounter(NEAR_200_KJ, RANGE_UJ, 1e-6, max_power_w=100.0, t_s=0.0)
    c.update(NEAR_200_KJ + 10_000_000, 1.0, 1.0)  # 10 J
    c.update(3_000_000, 1.2, 1.2)  # restarted from 0; 3 J since: a candidate, not yet counted
    assert c.total_j == pytest.approx(10.0) and c.held and c.resets == 0
    c.update(5_000_000, 1.3, 1.3)  # goes on from the candidate: a restart, 2 J counted
    assert c.total_j == pytest.approx(12.0) and c.resets == 1 and not c.held
    assert c.anomalies.last_reset == "counter went from 200 kJ to 3 J"
    c.update(7_000_000, 1.4, 1.4)
    assert c.total_j == pytest.approx(14.0)


def test_steps_are_bounded_by_the_time_since_the_last_good_reading() -> None:
    c = WrappingCounter(0, RANGE_UJ, 1e-6, max_power_w=100.0, slack_s=0.0, t_s=0.0)
    c.update(-1, 5.0, 5.0)
    # 400 J in 4.5 s since the last good read (not 0.5 s since the bad one): 89 W, plausible.
    assert c.update(400_000_000, 4.5, 4.5) == pytest.approx(400.0)
    assert c.update(400_000_000 + 101_000_000, 5.5, 5.5) == pytest.approx(400.0)  # 101 W
    assert c.held


def test_a_counter_that_opens_on_a_bad_value_starts_at_the_first_good_one() -> None:
    c = WrappingCounter(-5, RANGE_UJ, 1e-6, max_power_w=100.0, t_s=0.0)
    assert c.held and c.anomalies.below_zero == 1
    assert c.update(1_000_000, 0.1, 0.1) == 0.0  # the base
    assert c.update(2_000_000, 0.2, 0.2) == pytest.approx(1.0)


def test_anomaly_warnings_name_what_happened_in_the_window_only() -> None:
    c = WrappingCounter(NEAR_200_KJ, RANGE_UJ, 1e-6, max_power_w=1000.0, t_s=0.0)
    c.update(-5, 0.1, 0.1)
    before = c.anomalies
    c.update(0, 0.2, 0.2)
    c.update(0, 0.3, 0.3)
    c.update(RANGE_UJ + 1, 0.4, 0.4)
    c.update(NEAR_200_KJ + 10_000_000, 0.5, 0.5)
    (text,) = c.anomalies.warnings_since(before, "cpu package-0 (rapl-counter)")
    assert text == ("cpu package-0 (rapl-counter): 3 implausible reading(s) skipped, not counted "
                    "(1 beyond the counter's range; 2 step(s) more than the zone can draw "
                    "(last: counter read 0 J after 200 kJ))")
    assert c.anomalies.warnings_since(c.anomalies, "x") == []


BAD = st.sampled_from(["zero", "negative", "over", "far"])


@given(
    st.integers(min_value=0, max_value=RANGE_UJ),
    st.lists(st.one_of(st.tuples(st.just("good"), st.floats(0.001, 5.0), st.floats(0.0, 100.0)),
                       st.tuples(BAD, st.floats(0.001, 5.0), st.just(0.0))), max_size=60),
)
def test_a_counter_never_counts_more_than_the_truth(start: int, events: list) -> None:
    """Good readings at up to the power cap, bad ones of every kind, in any order: the total
    never exceeds the true energy, and equals it at a good reading unless a far value (one
    that might be a restarted counter) came before."""
    c = WrappingCounter(start, RANGE_UJ, 1e-6, max_power_w=100.0, t_s=0.0)
    t, true_uj, far_seen = 0.0, 0, False
    for kind, dt, power_w in events:
        t += dt
        true_uj += int(power_w * dt * 1e6)
        raw = (start + true_uj) % RANGE_UJ
        if kind == "good":
            c.update(raw, t, t)
            if not far_seen:
                assert c.total_j == pytest.approx(true_uj * 1e-6, abs=1e-6)
        else:
            far_seen = far_seen or kind == "far"
            bad = {"zero": 0, "negative": -5, "over": RANGE_UJ + 1,
                   "far": (raw + RANGE_UJ // 2) % RANGE_UJ}[kind]
            c.update(bad, t, t)
        assert c.total_j <= true_uj * 1e-6 + 1e-6


@given(
    st.integers(min_value=1, max_value=10**6),
    st.integers(min_value=0),
    st.lists(st.integers(min_value=0), max_size=50),
)
def test_wrapping_counter_total_equals_true_increments(range_raw: int, start: int,
                                                       steps: list[int]) -> None:
    start %= range_raw
    steps = [s % range_raw for s in steps]  # fewer than one range between reads
    c = WrappingCounter(start, range_raw, 1.0)
    cumulative = start
    for s in steps:
        cumulative += s
        c.update(cumulative % range_raw)
    assert c.total_j == cumulative - start


def test_power_integrator_trapezoid() -> None:
    p = PowerIntegrator()
    assert p.update(10.0, 100.0) == 0.0
    assert p.update(11.0, 200.0) == pytest.approx(150.0)
    assert p.update(10.5, 999.0) == pytest.approx(150.0)  # out of order: ignored
    assert p.update(12.0, 200.0) == pytest.approx(350.0)


@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0, 1000)), max_size=40))
def test_power_integrator_is_monotonic(readings: list[tuple[float, float]]) -> None:
    p = PowerIntegrator()
    last = 0.0
    for t, w in readings:
        total = p.update(t, w)
        assert total >= last
        last = total


class _Counting(LockedMeter):
    def __init__(self) -> None:
        super().__init__(Channel("cpu", "test", "cpu-time-model", "process"))
        self.n = 0
        self.inside = 0

    def _read(self) -> float:
        self.inside += 1
        assert self.inside == 1, "two reads ran at once"
        self.n += 1
        value = float(self.n)
        self.inside -= 1
        return value


def test_locked_meter_serialises_reads_and_defaults() -> None:
    m = _Counting()
    assert m.max_poll_interval_s() is None
    m.background()  # the default upkeep does nothing
    errors: list[BaseException] = []

    def hammer() -> None:
        last = 0.0
        try:
            for _ in range(2000):
                v = m.read()
                assert v > last
                last = v
        except AssertionError as err:  # collected and reported by the test thread
            errors.append(err)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert m.n == 8000


def test_meter_error_is_an_oserror() -> None:
    assert issubclass(MeterError, OSError)
