"""The loop predictor on synthetic sequences: warm-up, steady state, drift, and its interval.

The interval tests hold it to the issue's bar: the truth inside in at least 90% of the bounded
predictions, from 3 iterations seen on, for drifting, slowing and speeding loops at the rates
measured on real runs (where the level-only interval missed in 6 and 5 of 9 updates), and
``bounded`` False where the iterations seen cannot support an interval.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nbcarbon.predict import (
    BOUND_MIN,
    SHIFT,
    Prediction,
    mean_extrapolation,
    predict,
    t_quantile,
    warmup_count,
)


def seq(costs: list[float], seconds_per_joule: float = 0.01) -> list[tuple[float, float]]:
    """(duration_s, energy_j) pairs where time is proportional to energy."""
    return [(c * seconds_per_joule, c) for c in costs]


def noisy(n: int, level: float, sd: float, rng: random.Random, slope: float = 0.0) -> list[float]:
    return [max(0.0, level + slope * i + rng.gauss(0, sd)) for i in range(n)]


def inside(p: Prediction, truth_j: float) -> bool:
    return p.energy_low_j <= truth_j <= p.energy_high_j


def test_slow_first_epoch_is_set_apart_and_beats_naive_extrapolation() -> None:
    rng = random.Random(1)
    costs = [500.0] + noisy(49, 100.0, 3.0, rng)  # JIT/data-loading epoch 5x the steady ones
    truth = sum(costs)
    p = predict(seq(costs[:4]), 50)
    naive = mean_extrapolation(costs[:4], 50)
    assert p.warmup == 1 and "warm-up" in p.method
    assert abs(p.energy_j - truth) / truth < 0.03
    assert abs(naive - truth) / truth > 0.5  # the plain mean is off by more than half
    assert inside(p, truth)
    assert p.duration_s == pytest.approx(truth * 0.01, rel=0.03)


def test_two_slow_warmup_iterations() -> None:
    costs = [900.0, 300.0] + [100.0, 102.0, 98.0, 101.0, 99.0, 100.0]
    p = predict(seq(costs), 100)
    assert p.warmup == 2
    assert p.energy_j == pytest.approx(1200 + 100 * 98, rel=0.01)
    assert "first 2 iterations set apart" in p.method


def test_steady_state_is_exact_and_interval_narrows_as_epochs_are_seen() -> None:
    # Before the issue this test wanted a +-6% interval after 10 of 50 iterations: a level-only
    # interval, which missed most totals once epochs drifted. The honest interval must leave
    # room for a trend 10 iterations cannot rule out, so it is wider early and narrows as the
    # iterations seen pin the trend down.
    rng = random.Random(2)
    costs = noisy(50, 200.0, 2.0, rng)
    widths = []
    for k in (10, 20, 40):
        p = predict(seq(costs[:k]), 50)
        assert p.warmup == 0 and p.trend == () and p.bounded
        assert abs(p.energy_j - sum(costs)) / sum(costs) < 0.01
        assert inside(p, sum(costs))
        assert "mean of" in p.method and "95% interval" in p.method
        widths.append((p.energy_high_j - p.energy_low_j) / p.energy_j)
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] < 0.3 and widths[2] < 0.07


def test_constant_sequence_leaves_only_the_machine_share() -> None:
    # No spread at all: the interval is the stated share for the machine changing under the
    # loop, +-SHIFT of the remaining cost (it was zero-width before the issue).
    p = predict(seq([50.0] * 6), 20)
    assert p.bounded
    assert p.energy_j == pytest.approx(1000.0)
    assert p.remaining_energy_j == pytest.approx(700.0)
    assert p.energy_low_j == pytest.approx(300 + 700 * (1 - SHIFT))
    assert p.energy_high_j == pytest.approx(300 + 700 * (1 + SHIFT))


def test_upward_drift_is_followed_and_beats_the_mean() -> None:
    rng = random.Random(3)
    costs = noisy(60, 100.0, 1.0, rng, slope=2.0)  # e.g. a growing replay buffer
    truth = sum(costs)
    p = predict(seq(costs[:12]), 60)
    naive = mean_extrapolation(costs[:12], 60)
    assert p.trend == ("energy", "time") and "trend" in p.method
    assert abs(p.energy_j - truth) / truth < 0.03
    assert abs(naive - truth) / truth > 0.25
    assert inside(p, truth)


def test_falling_trend_never_predicts_below_half_the_cheapest_iteration() -> None:
    costs = [100.0 - 9 * i for i in range(8)]  # 100 .. 37, a line that would cross zero
    p = predict(seq(costs), 40)
    assert p.trend
    assert p.remaining_energy_j >= 32 * 0.5 * min(costs) - 1e-9


def test_insignificant_slope_is_not_used() -> None:
    rng = random.Random(4)
    costs = noisy(10, 100.0, 10.0, rng)
    p = predict(seq(costs), 30)
    assert p.trend == ()


def test_one_iteration_gives_a_stated_rough_range() -> None:
    p = predict([(2.0, 300.0)], 10)
    assert p.energy_j == pytest.approx(3000.0)
    assert p.energy_low_j == pytest.approx(300 + 2700 / 3)
    assert p.energy_high_j == pytest.approx(300 + 2700 * 1.5)
    assert "from 1 iteration only" in p.method
    assert not p.bounded and p.why_unbounded is not None and "1 iteration" in p.why_unbounded


def test_warmup_needs_a_real_excess_not_jitter() -> None:
    # 3 ms against 1 ms is 3x but not a warm-up worth setting apart.
    assert warmup_count([0.003, 0.001, 0.001], [5.0, 5.0, 5.0]) == 0
    assert warmup_count([3.0, 1.0, 1.0], [5.0, 5.0, 5.0]) == 1


def test_interval_coverage_on_steady_noise() -> None:
    """Over many noisy runs the interval holds the true total, and is still an interval."""
    # Before the issue: coverage between 88% and 99.5% after 8 of 40 iterations with 15% noise.
    # The honest interval allows for a trend and for the machine changing, so it covers more
    # than 95% of steady loops (the cost of also covering drifting ones); with 15% noise and 8
    # iterations it mostly says it cannot bound the total yet, so this runs at 5% noise and
    # bounds the width instead.
    rng = random.Random(5)
    hits, half_widths = 0, []
    trials = 300
    for _ in range(trials):
        costs = noisy(40, 100.0, 5.0, rng)
        p = predict(seq(costs[:10]), 40)
        assert p.bounded
        hits += inside(p, sum(costs))
        half_widths.append((p.energy_high_j - p.energy_low_j) / 2 / p.energy_j)
    assert hits / trials >= 0.95
    assert sorted(half_widths)[trials // 2] < 0.3


def test_finished_loop_is_exact() -> None:
    p = predict(seq([10.0, 20.0]), 2)
    assert p.energy_j == p.energy_low_j == p.energy_high_j == 30.0 and p.remaining_energy_j == 0
    assert p.bounded and p.duration_bounded and p.why_unbounded is None


Trace = list[tuple[float, float]]


def replay(first_s: float, last_s: float, n: int, rng: random.Random,
           shape: Callable[[float], float] = lambda f: f) -> Trace:
    """``n`` epochs going from ``first_s`` to ``last_s`` seconds (``shape`` maps the fraction of
    the way, 0 to 1, to the fraction of the change), 3% noise in time and 2% in power."""
    out = []
    for i in range(n):
        d = (first_s + (last_s - first_s) * shape(i / (n - 1))) * (1 + rng.gauss(0, 0.03))
        out.append((d, d * 250.0 * (1 + rng.gauss(0, 0.02))))
    return out


def coverage(make: Callable[[random.Random], Trace], ks: range | tuple[int, ...],
             trials: int = 200, seed: int = 7) -> dict[int, tuple[float, float]]:
    """Per ``k``: (share of predictions bounded, share of the bounded holding the truth)."""
    rng = random.Random(seed)
    counts = {k: [0, 0] for k in ks}
    for _ in range(trials):
        t = make(rng)
        truth = sum(e for _, e in t)
        for k in ks:
            p = predict(t[:k], len(t))
            if p.bounded:
                counts[k][0] += 1
                counts[k][1] += p.energy_low_j <= truth <= p.energy_high_j
    return {k: (b / trials, c / b if b else 1.0) for k, (b, c) in counts.items()}


@pytest.mark.parametrize(("first_s", "last_s"), [(2.5, 3.4), (4.1, 2.7)])
def test_the_issues_slowing_and_speeding_runs_are_covered(first_s: float, last_s: float) -> None:
    """10 epochs slowing from 2.5 to 3.4 s, or speeding up from 4.1 to 2.7 s: the real runs of
    the issue, where the level-only interval missed the total in 6 and 5 of 9 updates."""
    result = coverage(lambda rng: replay(first_s, last_s, 10, rng), range(3, 10))
    for k, (bounded, covered) in result.items():
        assert covered >= 0.9, (k, covered)
        assert bounded == (1.0 if k >= BOUND_MIN else 0.0), (k, bounded)


def test_a_speed_up_that_levels_off_is_covered() -> None:
    """A speed-up that levels off (caches filling): the line would go on falling, the truth
    does not; the "trend stops now" level keeps it inside."""
    def level_off(rng: random.Random) -> Trace:
        return replay(4.1, 2.7, 30, rng, lambda f: 1 - math.exp(-10 * f))
    result = coverage(level_off, (6, 8, 10, 15, 20, 25))
    assert all(covered >= 0.9 for _, covered in result.values()), result
    assert result[15][0] > 0.9


def test_slow_drift_not_yet_significant_is_inside_the_interval() -> None:
    """+1% per epoch over 50 (the benchmark's drifting shape): after 6-10 epochs the drift is
    not significant, the point is flat and ~16% low, and the interval must still hold the
    truth (its coverage was 10% after 5 epochs before the issue)."""
    result = coverage(lambda rng: replay(60.0, 60.0 * 1.49, 50, rng), (6, 8, 10, 15, 20, 30))
    for k, (_, covered) in result.items():
        assert covered >= 0.9, (k, covered)
    assert result[8][0] > 0.9


def test_autocorrelated_noise_widens_the_interval() -> None:
    """AR(1) noise (each iteration 0.7 of the previous one's deviation): a sum of such
    iterations varies far more than independent ones, and the interval must know it."""
    def ar1(rng: random.Random) -> Trace:
        out, e = [], 0.0
        for _ in range(40):
            e = 0.7 * e + rng.gauss(0, 0.05)
            out.append((60 * (1 + e), 15000 * (1 + e)))
        return out
    result = coverage(ar1, (8, 10, 20, 30))
    assert all(covered >= 0.9 for _, covered in result.values()), result
    p = predict(ar1(random.Random(3))[:20], 40)
    assert "autocorrelated" in p.method


@pytest.mark.parametrize("n", [1, 2, 3, BOUND_MIN - 1])
def test_too_few_iterations_are_not_bounded(n: int) -> None:
    p = predict(seq([100.0, 101.0, 99.0, 100.5, 100.0][:n]), 50)
    assert not p.bounded and not p.duration_bounded
    assert p.why_unbounded is not None and p.why_unbounded.startswith(f"{n} iteration")
    assert "not bounded yet" in p.method
    # The numbers are still there for callers that want them.
    assert p.energy_low_j <= p.energy_j <= p.energy_high_j


def test_warmup_iterations_do_not_count_towards_bounding() -> None:
    steady = [100.0, 101.0, 99.0, 100.5, 100.0, 99.5]
    short = predict(seq([500.0] + steady[:BOUND_MIN - 1]), 50)
    assert short.warmup == 1 and not short.bounded
    assert f"{BOUND_MIN - 1} steady iterations" in (short.why_unbounded or "")
    enough = predict(seq([500.0] + steady[:BOUND_MIN]), 50)
    assert enough.warmup == 1 and enough.bounded and enough.why_unbounded is None


def test_too_noisy_to_bound_says_so() -> None:
    # Costs jumping between 20 and 180: 10 iterations allow trends from nothing to double.
    costs = [20.0, 180.0, 60.0, 150.0, 30.0, 170.0, 90.0, 25.0, 160.0, 110.0]
    p = predict(seq(costs), 100)
    assert not p.bounded and "vary too much" in (p.why_unbounded or "")
    later = predict(seq(costs * 5), 100)  # 50 seen, 50 to come: the same spread now bounds
    assert later.bounded


def test_time_and_energy_are_bounded_separately() -> None:
    # Energy steady (CPU-time model of the work), wall time wild (a busy machine).
    durations = [1.0, 9.0, 1.0, 8.0, 1.0, 9.0, 1.0, 1.0]
    p = predict([(d, 100.0 + i % 2) for i, d in enumerate(durations)], 60)
    assert p.bounded and not p.duration_bounded
    assert "time not bounded yet" in p.method


@pytest.mark.parametrize(("obs", "total", "match"), [
    ([], 5, "at least one"),
    ([(1.0, 1.0)] * 3, 2, "smaller"),
    ([(1.0, -1.0)], 3, "energy_j"),
    ([(float("nan"), 1.0)], 3, "duration_s"),
])
def test_bad_input(obs: list[tuple[float, float]], total: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        predict(obs, total)


def test_t_quantiles() -> None:
    assert t_quantile(1) == pytest.approx(12.706)
    assert t_quantile(30) == pytest.approx(2.042)
    assert t_quantile(60) == pytest.approx(2.000, abs=0.002)
    assert t_quantile(120) == pytest.approx(1.980, abs=0.002)
    assert t_quantile(5, 0.995) == pytest.approx(4.032)
    assert t_quantile(100, 0.995) == pytest.approx(2.626, abs=0.003)


costs_st = st.lists(st.floats(min_value=0.0, max_value=1e6, allow_nan=False), min_size=1, max_size=30)


@given(costs=costs_st, extra=st.integers(min_value=0, max_value=500))
def test_prediction_invariants(costs: list[float], extra: int) -> None:
    p = predict(seq(costs), len(costs) + extra)
    tol = 1e-9 * (1 + p.energy_j)
    assert p.spent_energy_j - tol <= p.energy_low_j <= p.energy_j + tol
    assert p.energy_j <= p.energy_high_j + tol
    assert p.duration_low_s <= p.duration_s + tol <= p.duration_high_s + 2 * tol
    assert p.energy_j >= p.spent_energy_j - tol
    assert p.method
    assert p.bounded == (p.why_unbounded is None)


# Costs from 200 J (2 s): the warm-up's absolute floor (10 ms, 1 J) then never decides.
@given(costs=st.lists(st.floats(min_value=200.0, max_value=1e4), min_size=2, max_size=15),
       scale=st.floats(min_value=0.1, max_value=100.0))
def test_prediction_scales_with_its_input(costs: list[float], scale: float) -> None:
    a = predict(seq(costs), 40)
    b = predict(seq([c * scale for c in costs]), 40)
    assert b.energy_j == pytest.approx(a.energy_j * scale, rel=1e-6)
    assert b.energy_high_j == pytest.approx(a.energy_high_j * scale, rel=1e-6)
    assert b.bounded == a.bounded
