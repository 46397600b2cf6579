"""Predict a loop's total energy and time from its first iterations. Pure: numbers in, numbers out.

Carbontracker's idea is to measure the first epoch and multiply by the number of epochs. That
is wrong in the common cases, so :func:`predict` does five things instead:

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
   seen, so a falling trend cannot reach zero).
4. **Interval.** The point estimate takes an insignificant trend for no trend; the interval
   must not. Measured on real loops, a level-only interval missed the final total in most
   updates while epochs slowed from 2.5 to 3.4 s: a drift of a few % per iteration hides in the
   noise of five iterations and still moves the total of fifty by a fifth. So the 95% interval
   of the remaining cost is the union of four Student t prediction intervals, each over the
   future iterations' own noise plus the uncertainty of what was fitted:

   - the point's own (the level with ``m - 1`` degrees of freedom, or the significant line);
   - the least-squares line *whatever its significance*, its slope's uncertainty included
     (``m - 2`` degrees of freedom): it covers every trend the spread of the iterations allows,
     so it is wide while few iterations are seen and many are to come, as it should be;
   - the trend stopping now: the rest at the current level, the value at the last iteration
     of a line through the latest half of them (:data:`RECENT`). A slow-down or speed-up that
     levels off (a cache filling, a warm-up too mild to be set apart) ends near this, not on
     the line;
   - and its mirror, the trend steepening as much as it might flatten: the line's distance
     from "stops now" once more beyond the line. Nothing says trends only flatten: in the
     recorded loop whose training set grows, epochs grew faster later than early on (a larger
     working set, more contention for the caches).

   Four corrections widen it where the textbook interval assumes too much. Iterations are
   rarely independent (a machine shared with other work, a curve the line only approximates):
   the variances are multiplied by ``(1 + r) / (1 - r)``, the variance of a sum of AR(1) noise
   against independent noise, for the lag-1 autocorrelation ``r`` of the line's residuals
   (bias-corrected, from :data:`AUTOCORR_MIN` steady iterations, at most
   :data:`AUTOCORR_MAX`). Noise is not normal (a validation epoch every 5th is a second mode
   2 standard deviations out): each future iteration may stray as far as the farthest one seen.
   Costs vary in proportion to their size, so where the line rises, the future iterations'
   noise rises with it. And what no iteration seen can show, the machine changing under the
   loop, is added as :data:`SHIFT` of the remaining cost, in quadrature.
   With a single steady iteration there is no spread to use: the interval is a stated rule of
   thumb instead (:data:`ROUGH_FIRST`, :data:`ROUGH_ONE`).
5. **Not bounded yet.** Where the iterations seen cannot bound the rest, the prediction says so
   instead of showing an interval it cannot stand behind: ``bounded`` is False and
   ``why_unbounded`` says why, when fewer than :data:`BOUND_MIN` steady iterations were seen,
   or when the interval reaches further from the estimate than :data:`MAX_HALF_WIDTH` of the
   remaining cost. The numbers are still filled in, for callers that want them.

Duration and energy are predicted alike, each with its own trend test and its own ``bounded``
flag (``bounded`` for energy, hence CO2e; ``duration_bounded`` for time: wall time on a busy
machine varies more than the energy of the work); the warm-up is decided once for both, since a
warm-up iteration is one whose time or energy is unrepresentative. Every :class:`Prediction`
carries a ``method`` sentence saying which of these steps applied.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import fmean, median

#: A leading iteration costing more than this times the median of the later ones is warm-up.
WARMUP_RATIO = 1.5
#: ... and by more than this much (seconds, joules): a few milliseconds of jitter on a tiny
#: iteration is not a warm-up.
WARMUP_MIN_EXCESS = (0.01, 1.0)
#: Fewest steady iterations before a trend may move the point estimate (a line through 3 points
#: fits noise). The interval considers the line from :data:`LINE_MIN` on regardless.
TREND_MIN = 5
#: A significant trend is used only if it moves the per-iteration cost by more than this share.
TREND_MATERIAL = 0.05
#: Fewest steady iterations through which a line and a spread around it can be fitted.
LINE_MIN = 3
#: Fewest steady iterations for a bounded prediction. With 3 or 4 the line's spread rests on 1
#: or 2 degrees of freedom, and 5 cannot tell a line from a curve: in the recorded traces of a
#: loop whose training set grows, the line through the first 5 epochs (the first one a little
#: slow, the growth a little faster later) put the total outside its interval in half the runs.
#: The interval is computed all the same, but its width is itself a guess.
BOUND_MIN = 6
#: A prediction whose 95% interval reaches further from the estimate than this share of the
#: remaining cost is not bounded: at 1, below zero or above twice the estimate, the interval
#: no longer says even whether the rest of the loop costs anything.
MAX_HALF_WIDTH = 1.0
#: What the iterations seen cannot show, as a share of the remaining cost: the machine's other
#: work, frequency and thermal limits change the cost of the same iteration, often for many
#: iterations in a row. Added (in quadrature) to the interval's reach on each side, so the
#: interval of the remaining cost is never narrower than +-15% of it. Why 15%: in the traces
#: recorded for the benchmark (``benchmarks/traces``, a 2-core machine shared with other work)
#: an epoch's CPU time shifted by 10-40% for 3-10 epochs at a time, also in runs whose first
#: epochs were calm; a dedicated machine with energy counters varies less and pays for this
#: with a wider interval than it needs.
SHIFT = 0.15
#: The "trend stops now" level is that of a line through this latest share of the steady
#: iterations (at least :data:`BOUND_MIN` of them), not through all: a trend that is levelling
#: off has a current level that the line through all of them misses.
RECENT = 0.5
#: Fewest steady iterations before the residuals' autocorrelation is estimated (the lag-1
#: correlation of fewer is mostly noise), and the most it is taken to be (variance x9).
AUTOCORR_MIN = 6
AUTOCORR_MAX = 0.8
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
    ``energy_j - spent_energy_j`` is what the rest of the loop should cost. When ``bounded`` is
    False the iterations seen cannot bound the total energy (and CO2e) yet: ``why_unbounded``
    says why, in a sentence to show after "cannot bound the total yet: ". The ``energy_low_j``
    and ``energy_high_j`` fields still hold the computed numbers, but a display should not
    present them as a 95% interval. ``duration_bounded`` is the same for the time fields.
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
    bounded: bool = True
    why_unbounded: str | None = None
    duration_bounded: bool = True

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
    inflation: float = 1.0  # variance factor for autocorrelated residuals
    why_unbounded: str | None = None


@dataclass(frozen=True)
class _Fit:
    """The least-squares line ``intercept + slope * x`` through the steady iterations."""

    xs: tuple[int, ...]
    ys: tuple[float, ...]
    x_mean: float
    y_mean: float
    sxx: float
    slope: float
    intercept: float
    s: float  # residual standard deviation, m - 2 degrees of freedom
    rho: float  # lag-1 autocorrelation of the residuals, clipped to [0, AUTOCORR_MAX]
    e_max: float  # largest absolute residual


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


def _s(n: int, word: str = "iteration") -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _project(steady: Sequence[float], first_index: int, done: int, total: int,
             rough: tuple[float, float]) -> _Projection:
    """The sum of iterations ``done .. total-1`` from the steady ones (indices from ``first_index``)."""
    remaining_n = total - done
    m = len(steady)
    level = fmean(steady)
    point = level * remaining_n
    if m == 1:
        why = ("1 iteration cannot tell a warm-up or a trend from noise" if done == 1
               else "1 steady iteration cannot tell a trend from noise")
        return _Projection(point, point * rough[0], point * rough[1], why_unbounded=why)
    seen = _s(m, "steady iteration" if first_index else "iteration")
    if m < LINE_MIN:
        s_flat = math.sqrt(sum((y - level) ** 2 for y in steady) / (m - 1))
        half = t_quantile(m - 1) * s_flat * math.sqrt(remaining_n + remaining_n**2 / m)
        return _Projection(point, point - half, point + half,
                           why_unbounded=f"{seen} cannot tell a trend from noise")
    p = _union(steady, first_index, range(done, total))
    # The machine's share: independent of the iterations' own spread, so added in quadrature.
    shift = SHIFT * p.remaining
    p = replace(p, low=p.remaining - math.hypot(p.remaining - p.low, shift),
                high=p.remaining + math.hypot(p.high - p.remaining, shift))
    why = None
    if m < BOUND_MIN:
        why = f"{seen} are too few to tell a trend from noise (it takes {BOUND_MIN})"
    elif max(p.high - p.remaining, p.remaining - p.low) > MAX_HALF_WIDTH * p.remaining:
        why = f"{seen} vary too much to bound the {remaining_n} still to come"
    return replace(p, why_unbounded=why)


def _union(steady: Sequence[float], first_index: int, future: range) -> _Projection:
    """The point and the union of the intervals of the module docstring (3+ iterations)."""
    m = len(steady)
    remaining_n = len(future)
    fit = _fit([first_index + i for i in range(m)], steady)
    inflation = (1 + fit.rho) / (1 - fit.rho)
    point = fit.y_mean * remaining_n
    s_flat = math.sqrt(sum((y - fit.y_mean) ** 2 for y in steady) / (m - 1))
    t = t_quantile(m - 1)
    per = max(t * s_flat, max(abs(y - fit.y_mean) for y in steady))
    half = math.sqrt(inflation * (remaining_n * per**2 + t**2 * s_flat**2 * remaining_n**2 / m))
    flat = _Projection(point, point - half, point + half)
    line = _line_projection(fit, future, inflation)
    h = max(BOUND_MIN, math.ceil(m * RECENT))
    recent = _fit(fit.xs[-h:], fit.ys[-h:]) if h < m else fit
    stop = _stop_projection(recent, remaining_n, inflation, fit.y_mean)
    base = line if m >= TREND_MIN and _strong_trend(fit, future) else flat
    # The trend steepening as much as it might flatten: the line's distance from "stops now"
    # once more beyond the line (never below half the cheapest iteration, as the line).
    steeper = max(2 * line.remaining - stop.remaining, remaining_n * 0.5 * min(steady))
    reach = (stop.high - stop.low) / 2
    parts = (base, line, stop, _Projection(steeper, steeper - reach, steeper + reach))
    low = min(p.low for p in parts)
    high = max(p.high for p in parts)
    return _Projection(base.remaining, low, high, base.slope_share if base is line else None,
                       inflation)


def _fit(xs: Sequence[int], ys: Sequence[float]) -> _Fit:
    """Least squares of ``ys`` on ``xs`` (at least 3 points), with the residuals' autocorrelation."""
    m = len(xs)
    x_mean, y_mean = fmean(xs), fmean(ys)
    sxx = sum((x - x_mean) ** 2 for x in xs)
    slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = y_mean - slope * x_mean
    residuals = [y - intercept - slope * x for x, y in zip(xs, ys, strict=True)]
    ss = sum(e * e for e in residuals)
    rho = 0.0
    if m >= AUTOCORR_MIN and ss > 0:
        r1 = sum(a * b for a, b in zip(residuals[:-1], residuals[1:], strict=True)) / ss
        # r1 underestimates the autocorrelation of a short series by about (1 + 4 rho) / m.
        r1 += (1 + 4 * max(0.0, r1)) / m
        rho = min(AUTOCORR_MAX, max(0.0, r1))
    return _Fit(tuple(xs), tuple(ys), x_mean, y_mean, sxx, slope, intercept,
                math.sqrt(ss / (m - 2)), rho, max(abs(e) for e in residuals))


def _strong_trend(fit: _Fit, future: range) -> bool:
    """Whether the point follows the line: slope significant at 1% and material (step 3)."""
    material = abs(fit.slope) * (future[-1] - fit.x_mean) > TREND_MATERIAL * abs(fit.y_mean)
    if not material or fit.y_mean <= 0:
        return False
    se_slope = fit.s / math.sqrt(fit.sxx)
    t_stat = abs(fit.slope) / se_slope if se_slope > 0 else math.inf
    return t_stat > t_quantile(len(fit.xs) - 2, 0.995)


def _line_projection(fit: _Fit, future: range, inflation: float) -> _Projection:
    """The rest along the line (never below half the cheapest iteration), slope uncertain."""
    remaining_n = len(future)
    floor = 0.5 * min(fit.ys)
    point = sum(max(floor, fit.intercept + fit.slope * x) for x in future)
    # Costs vary in proportion to their size: where the line rises, so does the noise.
    rise = max(1.0, point / remaining_n / fit.y_mean) ** 2 if fit.y_mean > 0 else 1.0
    fitted = _line_var(fit.s, len(fit.xs), fit.x_mean, fit.sxx, remaining_n, sum(future))
    half = _reach(fit, remaining_n * rise, fitted, inflation)
    share = fit.slope / fit.y_mean if fit.y_mean > 0 else None
    return _Projection(point, point - half, point + half, share)


def _stop_projection(fit: _Fit, remaining_n: int, inflation: float, y_all: float) -> _Projection:
    """The rest at the value of ``fit`` at its last iteration: a trend that stops now.

    ``y_all`` is the mean of all steady iterations, against which a higher level is noisier.
    """
    last = fit.xs[-1]
    level = max(0.5 * min(fit.ys), fit.intercept + fit.slope * last)
    point = remaining_n * level
    rise = max(1.0, level / y_all) ** 2 if y_all > 0 else 1.0
    # Var(R * (a + b x_last)), the fitted level's share.
    fitted = fit.s**2 * remaining_n**2 * (1 / len(fit.xs) + (last - fit.x_mean) ** 2 / fit.sxx)
    half = _reach(fit, remaining_n * rise, fitted, inflation)
    return _Projection(point, point - half, point + half)


def _reach(fit: _Fit, own_n: float, fitted_var: float, inflation: float) -> float:
    """Half-width of a 95% interval: ``own_n`` future iterations' own noise plus what was fitted.

    The fitted part is Student t over its variance. For the future iterations' own noise the
    normal shape behind t is not assumed: each may stray as far as the farthest seen did (a
    validation epoch every 5th is 2 standard deviations out, on a t interval's very edge when
    one iteration is left), growing with the square root of their count like independent noise.
    """
    t = t_quantile(len(fit.xs) - 2)
    per = max(t * fit.s, fit.e_max)
    return math.sqrt(inflation * (own_n * per**2 + t**2 * fitted_var))


def _line_var(s: float, m: int, x_mean: float, sxx: float, remaining_n: int, sum_x: float) -> float:
    """Variance of ``R*a + b*sum(x)`` for the OLS intercept ``a`` and slope ``b``."""
    # R*a + b*sum_x = R*y_mean + b*(sum_x - R*x_mean); y_mean and b are uncorrelated.
    return s**2 * (remaining_n**2 / m + (sum_x - remaining_n * x_mean) ** 2 / sxx)


def predict(observations: Sequence[tuple[float, float]], total: int) -> Prediction:
    """Predict the whole loop from ``(duration_s, energy_j)`` of the iterations done so far.

    ``total`` is the loop's number of iterations (at least ``len(observations)``, which must be
    at least 1). See the module docstring for the method; ``Prediction.method`` says which parts
    of it applied, ``Prediction.bounded`` whether the interval can be shown as one.
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
        bounded=energy.why_unbounded is None, why_unbounded=energy.why_unbounded,
        duration_bounded=duration.why_unbounded is None,
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
    elif steady == 1:
        low, high = ROUGH_ONE
        parts.append(f"the rest at the cost of the 1 steady iteration, range {low:.2g}x to {high:g}x")
    else:
        trends = [f"{name} {p.slope_share * 100:+.2g}%/iteration"
                  for name, p in (("energy", energy), ("time", duration))
                  if p.slope_share is not None]
        if trends:
            parts.append(f"the rest along a least-squares line through {steady} steady iterations "
                         f"(significant trend: {', '.join(trends)})")
        else:
            parts.append(f"the rest at the mean of {steady} steady iterations")
        interval = "95% interval from their spread (Student t)"
        if steady >= LINE_MIN:
            interval += (", covering any trend the spread allows, the trend stopping now or "
                         "steepening as much, "
                         f"plus {SHIFT:.0%} of the rest for the machine changing under the loop")
        inflation = max(energy.inflation, duration.inflation)
        if inflation > 1:
            interval += f", variance x{inflation:.2g} for autocorrelated iterations"
        parts.append(interval)
    if energy.why_unbounded is not None:
        parts.append(f"energy not bounded yet: {energy.why_unbounded}")
    if duration.why_unbounded is not None and duration.why_unbounded != energy.why_unbounded:
        parts.append(f"time not bounded yet: {duration.why_unbounded}")
    elif duration.why_unbounded is not None:
        parts[-1] = parts[-1].replace("energy not bounded", "energy and time not bounded")
    return "; ".join(parts)
