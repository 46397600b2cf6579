"""The one background thread of a session: keeps counters exact across wraps and draws the timeline.

Cell boundaries do not wait for this thread: :meth:`Sampler.read_all` reads every meter directly
(counters are exact at any instant). The thread exists for what boundaries cannot do alone:
reading counters often enough to see every wrap-around, feeding power meters and models between
boundaries, slow upkeep (listing child processes), and a bounded power timeline for plots and the
live view. It never prints; read failures are counted per meter and reported through the records.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import MeterError
from .meters.base import NO_ANOMALIES, Anomalies, Meter

#: How many timeline points are kept: 2 h at the default 1 s period, a few MB at most.
TIMELINE_POINTS = 7200
#: The shortest period the thread will poll at, whatever a meter asks for.
MIN_PERIOD_S = 0.005
#: Slow upkeep (``Meter.background``) runs at most this often.
BACKGROUND_EVERY_S = 2.0


@dataclass(frozen=True)
class Reading:
    """One meter's state at an instant.

    ``total_j`` is the meter's cumulative energy (``None``: never read successfully), ``t_s`` the
    monotonic time that total belongs to (older than the read when the read just failed, or was
    refused as implausible, and the last good total stands in), ``error`` the failure message of
    this read, if it failed. ``anomalies`` is the meter's running tally of refused readings as
    of this read: the difference between a window's two readings is what its record reports.
    """

    total_j: float | None
    t_s: float
    error: str | None = None
    anomalies: Anomalies = NO_ANOMALIES


@dataclass(frozen=True)
class TimelinePoint:
    """Mean power per meter (``None``: not readable) between the previous point and ``t_s``."""

    t_s: float
    power_w: tuple[float | None, ...]


class Sampler:
    """Reads a fixed set of meters, at boundaries on demand and in the background periodically."""

    def __init__(
        self,
        meters: Sequence[Meter],
        interval_s: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        timeline_points: int = TIMELINE_POINTS,
    ) -> None:
        self.meters = tuple(meters)
        self.interval_s = interval_s
        self._clock = clock
        n = len(self.meters)
        self._last_good: list[tuple[float, float] | None] = [None] * n  # (t_s, total_j)
        self._error_counts = [0] * n
        self._last_errors: list[str | None] = [None] * n
        self._anomalies: list[Anomalies] = [NO_ANOMALIES] * n  # as of the last successful read
        self._prev_sample: list[tuple[float, float] | None] = [None] * n
        self.timeline: deque[TimelinePoint] = deque(maxlen=timeline_points)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards the bookkeeping lists, not the meters

    # -- reads -------------------------------------------------------------------------------
    def read_all(self) -> tuple[Reading, ...]:
        """Read every meter now. A failed read returns the last good total with the error."""
        return tuple(self._read(i) for i in range(len(self.meters)))

    def _read(self, i: int) -> Reading:
        meter = self.meters[i]
        try:
            total_j, anomalies = meter.read_with_anomalies()
        except Exception as exc:  # noqa: BLE001 - a meter's bug must cost its reading, not the cell
            t_s = self._clock()
            message = _describe(exc)
            with self._lock:
                self._error_counts[i] += 1
                self._last_errors[i] = message
                last = self._last_good[i]
                anomalies = self._anomalies[i]
            if last is None:
                return Reading(None, t_s, message, anomalies)
            return Reading(last[1], last[0], message, anomalies)
        t_s = self._clock()
        with self._lock:
            self._anomalies[i] = anomalies
            last = self._last_good[i]
            if anomalies.held and last is not None:
                # Refused as implausible: the meter's total is still its last good one.
                return Reading(total_j, last[0], None, anomalies)
            self._last_good[i] = (t_s, total_j)
        return Reading(total_j, t_s, None, anomalies)

    def error_counts(self) -> tuple[int, ...]:
        """Failed reads per meter since the sampler was made (boundaries and background)."""
        with self._lock:
            return tuple(self._error_counts)

    def last_errors(self) -> tuple[str | None, ...]:
        with self._lock:
            return tuple(self._last_errors)

    def power_now(self) -> tuple[float | None, ...]:
        """The latest timeline point's power per meter, or ``None`` before the first two samples."""
        if not self.timeline:
            return (None,) * len(self.meters)
        return self.timeline[-1].power_w

    # -- the thread --------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def period_s(self) -> float:
        """The configured interval, shortened where a counter would otherwise wrap unseen."""
        period = self.interval_s
        for meter in self.meters:
            limit = meter.max_poll_interval_s()
            # A meter's nonsense (zero, negative, NaN: a garbage range) must not make the
            # thread spin at MIN_PERIOD_S; it reads at the configured interval instead.
            if limit is not None and limit > 0 and math.isfinite(limit):
                period = min(period, limit)
        return max(MIN_PERIOD_S, period)

    def start(self) -> None:
        """Start the daemon thread (idempotent). Sampling starts with one read of every meter."""
        if self.running:
            return
        self._stop.clear()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="nbcarbon-sampler", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread and wait for it; safe to call twice."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def _run(self) -> None:
        next_background = 0.0
        while not self._stop.wait(self.period_s()):
            now = self._clock()
            if now >= next_background:
                for i, meter in enumerate(self.meters):
                    try:
                        meter.background()
                    except Exception as exc:  # noqa: BLE001 - the thread must outlive a bad meter
                        with self._lock:
                            self._error_counts[i] += 1
                            self._last_errors[i] = _describe(exc)
                next_background = now + BACKGROUND_EVERY_S
            self.sample()

    def sample(self) -> TimelinePoint:
        """Read every meter and append the mean power since the previous sample to the timeline."""
        readings = self.read_all()
        powers: list[float | None] = []
        for i, r in enumerate(readings):
            prev = self._prev_sample[i]
            if r.error is not None or r.total_j is None:
                powers.append(None)
                continue
            if prev is not None and r.t_s > prev[0]:
                powers.append(max(0.0, (r.total_j - prev[1]) / (r.t_s - prev[0])))
            else:
                powers.append(None)
            self._prev_sample[i] = (r.t_s, r.total_j)
        point = TimelinePoint(readings[0].t_s if readings else self._clock(), tuple(powers))
        if any(p is not None for p in powers):
            self.timeline.append(point)
        return point

    def close(self) -> None:
        """Stop the thread and release the meters."""
        self.stop()
        for meter in self.meters:
            meter.close()


#: Absolute paths (POSIX, Windows drive, UNC) in a foreign exception's text.
_PATH = re.compile(r"(?:[A-Za-z]:)?[\\/]{1,2}[^\s'\"]*[\\/][^\s'\"]*|~[\\/][^\s'\"]*")


def _describe(exc: BaseException) -> str:
    """A meter's own errors read as they are; anything else is a bug, named by its type.

    The text goes into records of shared notebooks, so a foreign exception's file name
    (``OSError.filename``) and any path in its message are left out, and it is kept short.
    """
    if isinstance(exc, MeterError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        detail = exc.strerror
    else:
        detail = _PATH.sub("<path>", str(exc))
    if len(detail) > 200:
        detail = detail[:199] + "…"
    return f"unexpected {type(exc).__name__} in the meter: {detail}".rstrip(": ")
