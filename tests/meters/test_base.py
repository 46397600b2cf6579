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


def test_wrapping_counter_implausible_wrap_is_a_reset() -> None:
    c = WrappingCounter(first_raw=500_000, range_raw=1_000_000, joules_per_unit=1e-6)
    c.update(10, max_delta_raw=1000)  # a wrap would mean 500_010 units: far beyond plausible
    assert c.resets == 1 and c.wraps == 0 and c.total_j == 0
    c.update(999_990, max_delta_raw=None)
    c.update(5, max_delta_raw=1000)  # 15 units: a genuine wrap
    assert c.wraps == 1


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
