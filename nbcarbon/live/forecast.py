"""When to run: the greenest start for a job of a given length in an intensity forecast (pure).

The mean intensity of a window sliding over a step series only changes slope where the window's
start or end crosses a step boundary, so the best window starts either now, at a boundary, or one
job length before a boundary. Those candidates are all tried (exact, no time grid), each mean in
O(log n) from prefix integrals. Ties go to the earliest start. A forecast too short for the job is
an answer that says so (``covered=False`` with a ``reason``), not an error.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from .base import IntensityInterval, utc

#: Two windows whose means differ by less than this (relative) are a tie.
TIE_REL = 1e-9
#: A gap between intervals longer than this ends the usable forecast.
GAP_S = 1.0


@dataclass(frozen=True)
class GreenWindow:
    """The greenest start for a ``duration_h`` job finishing within ``within_h`` hours of now.

    When ``covered`` is false, ``reason`` says why there is no advice and the other fields
    may be ``None``. ``saving_pct`` compares with starting now (0 when now is the best).
    """

    covered: bool
    duration_h: float
    within_h: float
    now: datetime
    start: datetime | None = None
    end: datetime | None = None
    mean_g_per_kwh: float | None = None
    now_g_per_kwh: float | None = None
    saving_pct: float | None = None
    provider: str | None = None
    region: str | None = None
    reason: str | None = None

    def advice(self, tz: tzinfo | None = None) -> str:
        """One sentence, times in ``tz`` (default: the machine's local time zone)."""
        job = f"a {self.duration_h:g} h run"
        if not self.covered or self.start is None or self.mean_g_per_kwh is None:
            return f"No advice for {job}: {self.reason}."
        assert self.now_g_per_kwh is not None and self.saving_pct is not None
        if self.start <= self.now or self.saving_pct < 0.5:
            return (f"Now is the greenest time to start {job} in the next {self.within_h:g} h "
                    f"({self.now_g_per_kwh:.0f} g/kWh).")
        when = _clock(self.start, self.now, tz)
        return (f"{job[0].upper()}{job[1:]} starting at {when} would emit {self.saving_pct:.0f}% less "
                f"than starting now ({self.mean_g_per_kwh:.0f} vs {self.now_g_per_kwh:.0f} g/kWh).")

    def to_dict(self) -> dict[str, Any]:
        def iso(dt: datetime | None) -> str | None:
            return dt.isoformat(timespec="minutes") if dt is not None else None

        return {"covered": self.covered, "duration_h": self.duration_h, "within_h": self.within_h,
                "now": iso(self.now), "start": iso(self.start), "end": iso(self.end),
                "mean_g_per_kwh": self.mean_g_per_kwh, "now_g_per_kwh": self.now_g_per_kwh,
                "saving_pct": self.saving_pct, "provider": self.provider, "region": self.region,
                "reason": self.reason}


def _clock(dt: datetime, now: datetime, tz: tzinfo | None) -> str:
    local, local_now = dt.astimezone(tz), now.astimezone(tz)
    if local.date() == local_now.date():
        return local.strftime("%H:%M")
    if local.date() == local_now.date() + timedelta(days=1):
        return local.strftime("%H:%M tomorrow")
    return local.strftime("%a %d %b %H:%M")


def _positive(value: float, name: str) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive number of hours, not {value!r}")
    return v


def greenest_window(series: Sequence[IntensityInterval], duration_h: float, within_h: float = 24.0,
                    now: datetime | None = None, *, provider: str | None = None,
                    region: str | None = None) -> GreenWindow:
    """The start in ``[now, now + within_h - duration_h]`` with the lowest mean forecast intensity.

    ``series`` need not be sorted; values before ``now`` are ignored. Raises ``ValueError`` only
    for a non-positive length or a search window shorter than the job.
    """
    duration_h = _positive(duration_h, "the job's duration")
    within_h = _positive(within_h, "the search window")
    if within_h < duration_h:
        raise ValueError(f"the search window ({within_h:g} h) is shorter than the job ({duration_h:g} h)")
    now = utc(now or datetime.now(timezone.utc))
    result = GreenWindow(False, duration_h, within_h, now, provider=provider, region=region)
    ahead = sorted((iv for iv in series if iv.end > now), key=lambda iv: iv.start)
    if not ahead:
        return replace(result, reason="the forecast has no values after now")
    first = ahead[0]
    if (first.start - now).total_seconds() > max(GAP_S, first.duration_s):
        return replace(result, reason=f"the forecast starts only at {first.start:%Y-%m-%d %H:%M} UTC")
    origin = max(now, first.start)
    # the contiguous run of intervals from the origin, as seconds from it
    starts: list[float] = []
    ends: list[float] = []
    values: list[float] = []
    for iv in ahead:
        s = max(0.0, (iv.start - origin).total_seconds())
        e = (iv.end - origin).total_seconds()
        if ends and s > ends[-1] + GAP_S:
            break
        if ends and s < ends[-1]:  # overlapping values: keep the earlier one's span
            s = ends[-1]
            if e <= s:
                continue
        starts.append(s)
        ends.append(e)
        values.append(iv.g_per_kwh)
    job_s = duration_h * 3600.0
    horizon_s = min(within_h * 3600.0 - (origin - now).total_seconds(), ends[-1])
    if horizon_s + 1e-6 < job_s:
        covered_h = ends[-1] / 3600.0
        return replace(result, reason=f"the forecast covers {covered_h:.3g} h from now, less than the "
                                       f"{duration_h:g} h job")
    cumulative = [0.0]
    for s, e, v in zip(starts, ends, values, strict=True):
        cumulative.append(cumulative[-1] + v * (e - s))

    def integral(t: float) -> float:
        i = max(0, bisect.bisect_right(starts, t) - 1)
        return cumulative[i] + values[i] * (min(t, ends[i]) - starts[i])

    last_start = horizon_s - job_s
    candidates = {0.0, max(0.0, last_start)}
    for b in (*starts, *ends):
        for c in (b, b - job_s):
            if 0.0 < c < last_start:
                candidates.add(c)
    best_t, best_mean = 0.0, math.inf
    now_mean = (integral(job_s) - integral(0.0)) / job_s
    for t in sorted(candidates):
        mean = (integral(t + job_s) - integral(t)) / job_s
        if mean < best_mean - TIE_REL * max(1.0, abs(best_mean)) or best_mean == math.inf:
            best_t, best_mean = t, mean
    start = origin + timedelta(seconds=best_t)
    saving = (now_mean - best_mean) / now_mean * 100.0 if now_mean > 0 else 0.0
    return replace(result, covered=True, start=start, end=start + timedelta(seconds=job_s),
                    mean_g_per_kwh=best_mean, now_g_per_kwh=now_mean, saving_pct=max(0.0, saving))
