"""Predict a loop's total energy and time from its first iterations. Pure: numbers in, numbers out.

Carbontracker's idea is to measure the first epoch and multiply by the number of epochs. That
is wrong in the common cases, so :func:`predict` does four things instead:

1. **Warm-up.** The first iterations of a training loop are often slow (JIT compilation, CUDA
   context and cuDNN autotuning, caches and the data loader filling). Leading iterations whose
   duration or energy is more than :data:`WARMUP_RATIO` times the median of the iterations after
   them (and more than :data:`WARMUP_MIN_EXCESS` above it) are set apart as warm-up, one at a
   time from the start (at most half of those seen).
   They count in the total as spent, but say nothing about the iterations still to come.
2. **Steady state.** The cost of each remaining iteration is the mean of the steady (post
   warm-up) iterations. The mean and not the median, because the total is a sum: an occasional
   slow iteration (validation, checkpointing) recurs and counts.
3. **Drift.** With at least :data:`TREND_MIN` steady iterations, a least-squares line over the
   iteration index is fitted; if its slope is significant (two-sided t-test at 1%: a spurious
   trend extrapolated over many iterations does more harm than a missed one) and would move the
   per-iteration cost by more than :data:`TREND_MATERIAL` of its level by the end of the loop,
   the remaining iterations follow the line instead (never below half the cheapest iteration
   seen, so a falling trend cannot reach zero). A slope significant at 5% but not at 1% keeps
   the flat prediction but widens the interval to cover the line's interval too.
4. **Interval.** A 95% prediction interval for the sum of the remaining iterations, from the
   spread of the steady iterations: Student t with ``m - 1`` (level) or ``m - 2`` (trend)
   degrees of freedom over the variance of the future iterations' own noise plus the
   uncertainty of the fitted level (and slope). The iterations are assumed independent around
   the level or line; autocorrelated noise makes the interval too narrow. With a single steady
   iteration there is no spread to use: the interval is a stated rule of thumb instead
   (:data:`ROUGH_FIRST`, :data:`ROUGH_ONE`).

Duration and energy are predicted alike, each with its own trend test; the warm-up is decided
once for both, since a warm-up iteration is one whose time or energy is unrepresentative.
Every :class:`Prediction` carries a ``method`` sentence saying which of these steps applied.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean, median

#: A leading iteration costing more than this times the median of the later ones is warm-up.
WARMUP_RATIO = 1.5
#: ... and by more than this much (seconds, joules): a few milliseconds of jitter on a tiny
#: iteration is not a warm-up.
WARMUP_MIN_EXCESS = (0.01, 1.0)
#: Fewest steady iterations before a trend is tested (a line through 3 points fits noise).
TREND_MIN = 5
#: A significant trend is used only if it moves the per-iteration cost by more than this share.
TREND_MATERIAL = 0.05
#: Interval factors (low, high) on the remaining cost when only the first iteration is known:
#: later iterations may be 3x cheaper (the first was a warm-up) or 1.5x dearer.
ROUGH_FIRST = (1 / 3, 1.5)
#: The same when a warm-up was set apart and one steady iteration remains.
ROUGH_ONE = (2 / 3, 1.5)
LEVEL = 0.95

# Student t quantiles for 1 to 30 degrees of freedom, and the normal quantile beyond them.
_T_TABLE = {
    0.975: (1.959964, (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                       2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                       2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)),
    0.995: (2.575829, (63.657, 9.925, 5.841, 4.604, 4.032, 3.707, 3.499, 3.355, 3.250, 3.169,
                       3.106, 3.055, 3.012, 2.977, 2.947, 2.921, 2.898, 2.878, 2.861, 2.845,
                       2.831, 2.819, 2.807, 2.797, 2.787, 2.779, 2.771, 2.763, 2.756, 2.750)),
}


def t_quantile(dof: int, q: float = 0.975) -> float:
    """Student's t quantile ``q`` (0.975 or 0.995): a table to 30 dof, then Cornish-Fisher."""
    if dof < 1:
        raise ValueError("degrees of freedom must be at least 1")
    z, table = _T_TABLE[q]
    if dof <= len(table):
        return table[dof - 1]
    return z + (z**3 + z) / (4 * dof) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * dof**2)


@dataclass(frozen=True)
class Prediction:
    """Predicted totals for the whole loop (iterations done plus those to come).

    ``*_low``/``*_high`` bound a 95% interval; ``spent_*`` are the measured sums so far, so
    ``energy_j - spent_energy_j`` is what the rest of the loop should cost.
    """

    done: int
    total: int
    energy_j: float
    energy_low_j: float
    energy_high_j: float
    duration_s: float
    duration_low_s: float
    duration_high_s: float
    spent_energy_j: float
    spent_duration_s: float
    warmup: int
    trend: tuple[str, ...]
    method: str

    @property
    def remaining_energy_j(self) -> float:
        return self.energy_j - self.spent_energy_j

    @property
    def remaining_duration_s(self) -> float:
        return self.duration_s - self.spent_duration_s

    @property
    def steady(self) -> int:
        """How many iterations the steady-state estimate rests on."""
        return self.done - self.warmup


@dataclass(frozen=True)
class _Projection:
    remaining: float
    low: float
    high: float
    slope_share: float | None = None  # per-iteration change / level, when a trend is followed
    widened: bool = False  # the interval also covers a possible (weakly significant) trend


def mean_extrapolation(values: Sequence[float], total: int) -> float:
    """The naive prediction (mean of all iterations so far times the count), for comparison."""
    return fmean(values) * total


def warmup_count(durations: Sequence[float], energies: Sequence[float]) -> int:
    """How many leading iterations are warm-up in time or energy (see the module docstring)."""
    n = len(durations)
    limit = max(1, (n - 1) // 2) if n >= 2 else 0
    k = 0
    while k < limit:
        slow = False
        for values, min_excess in zip((durations, energies), WARMUP_MIN_EXCESS, strict=True):
            later = median(values[k + 1:])
            slow = slow or (values[k] > WARMUP_RATIO * later and values[k] - later > min_excess)
        if not slow:
            break
        k += 1
    return k


def _project(steady: Sequence[float], first_index: int, done: int, total: int,
             rough: tuple[float, float]) -> _Projection:
    """The sum of iterations ``done .. total-1`` from the steady ones (indices from ``first_index``)."""
    remaining_n = total - done
    m = len(steady)
    level = fmean(steady)
    point = level * remaining_n
    if m == 1:
        return _Projection(point, point * rough[0], point * rough[1])
    s = math.sqrt(sum((y - level) ** 2 for y in steady) / (m - 1))
    half = t_quantile(m - 1) * s * math.sqrt(remaining_n + remaining_n**2 / m)
    flat = _Projection(point, point - half, point + half)
    if m < TREND_MIN:
        return flat
    line, evidence = _line([first_index + i for i in range(m)], steady, range(done, total))
    if line is None or evidence is None:
        return flat
    if evidence == "strong":
        return line
    # Weak evidence: keep the flat point but let the interval cover the line's too.
    return _Projection(point, min(flat.low, line.low), max(flat.high, line.high), widened=True)


def _line(xs: Sequence[int], ys: Sequence[float], future: range) -> tuple[_Projection | None, str | None]:
    """The least-squares line's projection and the evidence for its slope.

    Evidence is ``"strong"`` (significant at 1%), ``"weak"`` (at 5% only) or None (neither, or
    a change over the rest of the loop below :data:`TREND_MATERIAL` of the level).
    """
    m = len(xs)
    x_mean, y_mean = fmean(xs), fmean(ys)
    sxx = sum((x - x_mean) ** 2 for x in xs)
    slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = y_mean - slope * x_mean
    residual = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    s = math.sqrt(residual / (m - 2))
    se_slope = s / math.sqrt(sxx)
    material = abs(slope) * (future[-1] - x_mean) > TREND_MATERIAL * abs(y_mean)
    if not material or y_mean <= 0:
        return None, None
    t_stat = abs(slope) / se_slope if se_slope > 0 else math.inf
    if t_stat > t_quantile(m - 2, 0.995):
        evidence = "strong"
    elif t_stat > t_quantile(m - 2, 0.975):
        evidence = "weak"
    else:
        return None, None
    remaining_n = len(future)
    floor = 0.5 * min(ys)
    point = sum(max(floor, intercept + slope * x) for x in future)
    # Var(sum of future) = R s^2 (their own noise) + Var(R a + b sum(x)) (the fitted line's).
    variance = remaining_n * s**2 + _line_var(s, m, x_mean, sxx, remaining_n, sum(future))
    half = t_quantile(m - 2) * math.sqrt(variance)
    return _Projection(point, point - half, point + half, slope / y_mean), evidence


def _line_var(s: float, m: int, x_mean: float, sxx: float, remaining_n: int, sum_x: float) -> float:
    """Variance of ``R*a + b*sum(x)`` for the OLS intercept ``a`` and slope ``b``."""
    # R*a + b*sum_x = R*y_mean + b*(sum_x - R*x_mean); y_mean and b are uncorrelated.
    return s**2 * (remaining_n**2 / m + (sum_x - remaining_n * x_mean) ** 2 / sxx)


def predict(observations: Sequence[tuple[float, float]], total: int) -> Prediction:
    """Predict the whole loop from ``(duration_s, energy_j)`` of the iterations done so far.

    ``total`` is the loop's number of iterations (at least ``len(observations)``, which must be
    at least 1). See the module docstring for the method; ``Prediction.method`` says which parts
    of it applied.
    """
    done = len(observations)
    if done < 1:
        raise ValueError("predict() needs at least one measured iteration")
    if total < done:
        raise ValueError(f"total ({total}) is smaller than the iterations measured ({done})")
    durations = [float(d) for d, _ in observations]
    energies = [float(e) for _, e in observations]
    for name, values in (("duration_s", durations), ("energy_j", energies)):
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise ValueError(f"every {name} must be a finite number >= 0")
    spent_e, spent_t = sum(energies), sum(durations)
    if total == done:
        return Prediction(done, total, spent_e, spent_e, spent_e, spent_t, spent_t, spent_t,
                          spent_e, spent_t, 0, (), f"all {total} iterations measured")
    k = warmup_count(durations, energies)
    rough = ROUGH_FIRST if done == 1 else ROUGH_ONE
    energy = _project(energies[k:], k, done, total, rough)
    duration = _project(durations[k:], k, done, total, rough)
    trend = tuple(name for name, p in (("energy", energy), ("time", duration))
                  if p.slope_share is not None)
    return Prediction(
        done=done, total=total,
        energy_j=spent_e + energy.remaining,
        energy_low_j=spent_e + max(0.0, energy.low),
        energy_high_j=spent_e + energy.high,
        duration_s=spent_t + duration.remaining,
        duration_low_s=spent_t + max(0.0, duration.low),
        duration_high_s=spent_t + duration.high,
        spent_energy_j=spent_e, spent_duration_s=spent_t,
        warmup=k, trend=trend,
        method=_method(done, k, energy, duration),
    )


def _method(done: int, warmup: int, energy: _Projection, duration: _Projection) -> str:
    steady = done - warmup
    parts = []
    if warmup:
        parts.append(f"first {warmup} iteration{'s' if warmup > 1 else ''} set apart as warm-up "
                     f"(over {WARMUP_RATIO:g}x the median of later ones)")
    if done == 1:
        low, high = ROUGH_FIRST
        parts.append("from 1 iteration only: the rest at its cost, range allowing them to be "
                     f"{1 / low:.3g}x cheaper (if it was a warm-up) to {high:g}x dearer")
        return "; ".join(parts)
    if steady == 1:
        low, high = ROUGH_ONE
        parts.append(f"the rest at the cost of the 1 steady iteration, range {low:.2g}x to {high:g}x")
        return "; ".join(parts)
    trends = [f"{name} {p.slope_share * 100:+.2g}%/iteration"
              for name, p in (("energy", energy), ("time", duration)) if p.slope_share is not None]
    if trends:
        parts.append(f"the rest along a least-squares line through {steady} steady iterations "
                     f"(significant trend: {', '.join(trends)})")
    else:
        parts.append(f"the rest at the mean of {steady} steady iterations")
    widened = [name for name, p in (("energy", energy), ("time", duration)) if p.widened]
    parts.append("95% interval from their spread (Student t)" + (
        f", widened to cover a possible trend in {' and '.join(widened)}" if widened else ""))
    return "; ".join(parts)
