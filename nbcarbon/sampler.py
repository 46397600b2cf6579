"""The one background thread of a session: keeps counters exact across wraps and draws the timeline.

Cell boundaries do not wait for this thread: :meth:`Sampler.read_all` reads every meter directly
(counters are exact at any instant). The thread exists for what boundaries cannot do alone:
reading counters often enough to see every wrap-around, feeding power meters and models between
boundaries, slow upkeep (listing child processes), and a bounded power timeline for plots and the
live view. It never prints; read failures are counted per meter and reported through the records.

Two rates. While something needs the meters read often, a window open (a measured cell) or the
dashboard shown (:meth:`Sampler.hold`), the thread samples every ``interval_s`` (1 s) and does
its upkeep every :data:`BACKGROUND_EVERY_S`. Between cells nothing is measured, so it wakes only
as often as counters need to be read to see every wrap-around, at most every
:data:`IDLE_INTERVAL_S` (the models need nothing in between: CPU time and resident memory are
read again at the next window's start, and what happens between windows belongs to no record).
The full rate goes on for :data:`IDLE_AFTER_S` after the last window closed, so the processes a
cell left running are found by the upkeep before the next cell starts, and a window opened while
the thread idles wakes it for one sample at once (a timeline point at the cell's start). The
timeline is therefore sparse between cells (one point every 30 s), and a process started between
cells by something other than a cell (a background thread) is found within 30 s, not 2 s.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque, namedtuple
from collections.abc import Callable, Sequence

from .errors import MeterError
from .meters.base import NO_ANOMALIES, Anomalies, Meter
from .meters.share import ShareMeter

#: How many timeline points are kept: 2 h at the default 1 s period, a few MB at most.
TIMELINE_POINTS = 7200
#: Boundary readings queued before they are folded into the timeline on the cell's path anyway.
PENDING_NOTES = 256
#: The shortest period the thread will poll at, whatever a meter asks for.
MIN_PERIOD_S = 0.005
#: Slow upkeep (``Meter.background``) runs at most this often.
BACKGROUND_EVERY_S = 2.0
#: Between cells (nothing held) the thread wakes at most this often, or as often as a counter
#: must be read not to wrap unseen, if that is more often. 30 s: a sample and an upkeep pass
#: cost ~0.1-0.5 ms, so an idle kernel pays well under 0.01 % of a core.
IDLE_INTERVAL_S = 30.0
#: The full rate goes on this long after the last hold is released (a cell's leftovers).
IDLE_AFTER_S = 5.0


class Reading(namedtuple("Reading", ("total_j", "t_s", "error", "anomalies"),
                        defaults=(None, NO_ANOMALIES))):
    """One meter's state at an instant: ``total_j: float | None``, ``t_s: float``,
    ``error: str | None = None``, ``anomalies: Anomalies = NO_ANOMALIES``.

    ``total_j`` is the meter's cumulative energy (``None``: never read successfully), ``t_s`` the
    monotonic time that total belongs to (older than the read when the read just failed, or was
    refused as implausible, and the last good total stands in), ``error`` the failure message of
    this read, if it failed. ``anomalies`` is the meter's running tally of refused readings as
    of this read: the difference between a window's two readings is what its record reports.

    A named tuple rather than a frozen dataclass: every window makes one per meter at each
    boundary, and a tuple is built in a third of the time (immutable all the same). From
    ``collections``, not ``typing.NamedTuple``: the same class without importing ``typing``
    (see nbcarbon/session.py).
    """

    __slots__ = ()


class TimelinePoint(namedtuple("TimelinePoint", ("t_s", "power_w"))):
    """Mean power per meter (``power_w: tuple[float | None, ...]``; ``None``: not readable)
    between the previous point and ``t_s: float``.

    A named tuple, as :class:`Reading` and for the same reason: every window's two boundaries
    make one each.
    """

    __slots__ = ()


class Sampler:
    """Reads a fixed set of meters, at boundaries on demand and in the background periodically.

    ``idle_interval_s=None`` (the default: a Dask worker's meters, tests) samples at the full
    rate always; a :class:`~nbcarbon.session.Session` passes :data:`IDLE_INTERVAL_S` and holds
    the sampler while windows are open.
    """

    def __init__(
        self,
        meters: Sequence[Meter],
        interval_s: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        timeline_points: int = TIMELINE_POINTS,
        idle_interval_s: float | None = None,
        idle_after_s: float = IDLE_AFTER_S,
        shares: Sequence[ShareMeter] = (),
    ) -> None:
        self.meters = tuple(meters)
        #: What splits the machine-wide meters' energy among users (read at windows' boundaries
        #: by :meth:`read_shares`, kept up to date in the thread's upkeep).
        self.shares = tuple(shares)
        #: Whether any meter counts the whole machine (then share mode has something to split).
        self.machine_wide = any(m.channel.attribution == "machine" for m in self.meters)
        self.interval_s = interval_s
        self.idle_interval_s = idle_interval_s
        self.idle_after_s = idle_after_s
        self._clock = clock
        n = len(self.meters)
        self._last_good: list[tuple[float, float] | None] = [None] * n  # (t_s, total_j)
        self._error_counts = [0] * n
        self._last_errors: list[str | None] = [None] * n
        self._anomalies: list[Anomalies] = [NO_ANOMALIES] * n  # as of the last successful read
        self._prev_sample: list[tuple[float, float] | None] = [None] * n
        self._timeline: deque[TimelinePoint] = deque(maxlen=timeline_points)
        self._timeline_lock = threading.Lock()  # the thread and the boundaries both append
        #: Boundary readings noted on the cell's path, folded into the timeline when it is next
        #: read or sampled (list.append is atomic: the cell's path takes no lock for it).
        self._pending: deque[tuple[Reading, ...]] = deque()
        self._stop = threading.Event()
        self._wake = threading.Event()  # set to make the thread plan again (a hold, a stop)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards the bookkeeping lists, not the meters
        self._holds = 0  # open windows and visible dashboards: reasons for the full rate
        self._released_s = -math.inf  # time.monotonic() when the last hold was released
        self._idle = False  # the thread sleeps at the idle rate (a hold must wake it)
        #: Samples taken by the thread, at the full rate and at the idle rate (for tests and
        #: ``%carbon status``).
        self.samples = {"full": 0, "idle": 0}

    # -- reads -------------------------------------------------------------------------------
    def read_all(self) -> tuple[Reading, ...]:
        """Read every meter now. A failed read returns the last good total with the error."""
        return self.read_all_counted()[0]

    def read_all_counted(self) -> tuple[tuple[Reading, ...], tuple[int, ...]]:
        """:meth:`read_all` and the failed-read counts including these reads, as of one instant.

        One pass for a window's boundary: each meter is read and timed, then the bookkeeping is
        updated under one lock acquisition (the cell's path pays for one, not one per meter).
        """
        clock = self._clock
        got: list[tuple[float, Anomalies, float] | None] = []
        failures: list[BaseException] = []
        for meter in self.meters:
            try:
                total_j, anomalies = meter.read_with_anomalies()
            except Exception as exc:  # noqa: BLE001 - a meter's bug must cost its reading, not the cell
                failures.append(exc)
                got.append(None)
                continue
            got.append((total_j, anomalies, clock()))
        out: list[Reading] = []
        with self._lock:
            last_good, tallies = self._last_good, self._anomalies
            for i, item in enumerate(got):
                if item is None:
                    message = _describe(failures.pop(0))
                    self._error_counts[i] += 1
                    self._last_errors[i] = message
                    last = last_good[i]
                    if last is None:
                        out.append(Reading(None, clock(), message, tallies[i]))
                    else:
                        out.append(Reading(last[1], last[0], message, tallies[i]))
                    continue
                total_j, anomalies, t_s = item
                tallies[i] = anomalies
                if anomalies.held:
                    last = last_good[i]
                    if last is not None:
                        # Refused as implausible: the meter's total is still its last good one.
                        out.append(Reading(total_j, last[0], None, anomalies))
                        continue
                last_good[i] = (t_s, total_j)
                out.append(Reading(total_j, t_s, None, anomalies))
            counts = tuple(self._error_counts)
        return tuple(out), counts

    def read_shares(self) -> tuple[object, ...]:
        """A snapshot of every share meter now; a failed read gives its message (a ``str``)."""
        out: list[object] = []
        for share in self.shares:
            try:
                out.append(share.read())
            except Exception as exc:  # noqa: BLE001 - a failed share costs the split, not the cell
                out.append(_describe(exc))
        return tuple(out)

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
        return max(MIN_PERIOD_S, min(self.interval_s, self._wrap_limit_s()))

    def idle_period_s(self) -> float:
        """How often the thread wakes when nothing holds it: :attr:`idle_interval_s`, shortened
        where a counter would otherwise wrap unseen, never shorter than :meth:`period_s`."""
        if self.idle_interval_s is None:
            return self.period_s()
        return max(self.period_s(), min(self.idle_interval_s, self._wrap_limit_s()))

    def _wrap_limit_s(self) -> float:
        period = math.inf
        for meter in self.meters:
            limit = meter.max_poll_interval_s()
            # A meter's nonsense (zero, negative, NaN: a garbage range) must not make the
            # thread spin at MIN_PERIOD_S; it reads at the configured interval instead.
            if limit is not None and limit > 0 and math.isfinite(limit):
                period = min(period, limit)
        return period

    # -- the two rates -------------------------------------------------------------------------
    def hold(self) -> None:
        """Ask for the full rate until the matching :meth:`release` (a window, a dashboard).

        Cheap (a lock and a counter) because every window's start calls it; the thread is woken
        only when it sleeps at the idle rate.
        """
        with self._lock:
            self._holds += 1
        if self._idle:  # read after the count: the thread sets it before reading the count
            self._wake.set()

    def release(self) -> None:
        """End one :meth:`hold`; the full rate goes on for :attr:`idle_after_s` after the last."""
        with self._lock:
            if self._holds > 0:
                self._holds -= 1
                if self._holds == 0:
                    self._released_s = time.monotonic()

    def set_holds(self, n: int) -> None:
        """Set the count of holds outright; for an owner that knows how many it should be (a
        session: its open windows and watchers) after an interrupt cut a hold or release short."""
        with self._lock:
            self._holds = max(0, n)
            if self._holds == 0:
                self._released_s = time.monotonic()
        if self._holds and self._idle:
            self._wake.set()

    @property
    def holds(self) -> int:
        """How many holds are in place now (open windows and visible dashboards)."""
        return self._holds

    def full_rate(self) -> bool:
        """Whether the thread should sample at the full rate now (held, or just released)."""
        return (self.idle_interval_s is None or self._holds > 0
                or time.monotonic() - self._released_s < self.idle_after_s)

    def start(self) -> None:
        """Start the daemon thread (idempotent). Sampling starts with one read of every meter."""
        if self.running:
            return
        self._stop.clear()
        self._wake.clear()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="nbcarbon-sampler", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread and wait for it; safe to call twice."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def _run(self) -> None:
        next_background = 0.0
        last_s = time.monotonic()  # the sample start() took
        stop, wake = self._stop, self._wake
        while not stop.is_set():
            self._idle = True  # before reading the holds: see hold()
            full = self.full_rate()
            if full:
                self._idle = False
            period = self.period_s() if full else self.idle_period_s()
            delay = last_s + period - time.monotonic()
            if delay > 0:
                if full and self.idle_interval_s is not None and self._holds == 0:
                    # In the tail after the last window: plan again when it ends.
                    delay = min(delay, self._released_s + self.idle_after_s - time.monotonic())
                wake.wait(max(0.0, delay))
                if stop.is_set():
                    break
                if wake.is_set():
                    wake.clear()
                    if not full and not stop.is_set():
                        # A hold while idle: a window has just opened. One sample now puts a
                        # timeline point at its start (plots show the cells the timeline spans);
                        # the upkeep keeps its own schedule.
                        self.sample()
                        self.samples["full"] += 1
                        last_s = time.monotonic()
                    continue
                if time.monotonic() < last_s + period - 1e-3:
                    continue  # the tail ended early in the wait: plan again at the idle rate
            now = time.monotonic()
            if now >= next_background or not full:
                for i, meter in enumerate(self.meters):
                    try:
                        meter.background()
                    except Exception as exc:  # noqa: BLE001 - the thread must outlive a bad meter
                        with self._lock:
                            self._error_counts[i] += 1
                            self._last_errors[i] = _describe(exc)
                for share in self.shares:
                    try:
                        share.background()
                    except Exception:  # noqa: BLE001 - the boundary's own read says what failed
                        pass
                next_background = now + BACKGROUND_EVERY_S
            self.sample()
            self.samples["full" if full else "idle"] += 1
            last_s = now

    @property
    def timeline(self) -> deque[TimelinePoint]:
        """Mean power per meter over time, boundaries noted by windows included (bounded)."""
        if self._pending:
            with self._timeline_lock:
                self._fold()
        return self._timeline

    def sample(self) -> TimelinePoint:
        """Read every meter and append the mean power since the previous sample to the timeline."""
        readings = self.read_all()
        with self._timeline_lock:
            self._fold()
            return self._point(readings)

    def note(self, readings: tuple[Reading, ...]) -> None:
        """Put readings taken elsewhere (a window's boundary) on the timeline.

        Why: between cells the thread samples rarely, so without the boundaries' own reads a
        short cell would leave no trace on the timeline; with them every window starts and ends
        a timeline interval, at no extra read. Only queued here (the cell's path); the points
        are made when the timeline is next read or sampled. A reading older than the last one
        kept (the thread and a boundary racing) starts nothing and is not drawn.
        """
        pending = self._pending
        pending.append(readings)  # deque.append: atomic, no lock on the cell's path
        if len(pending) > PENDING_NOTES:  # nobody read the timeline lately: fold, stay bounded
            with self._timeline_lock:
                self._fold()

    def _fold(self) -> None:
        """Make the timeline points of the queued boundary readings (lock held)."""
        pending = self._pending
        while pending:
            self._point(pending.popleft())

    def _point(self, readings: tuple[Reading, ...]) -> TimelinePoint:
        """Append the mean power since each meter's previous reading (lock held)."""
        powers: list[float | None] = []
        prev_samples = self._prev_sample
        latest = -math.inf
        drawn = False  # any power worked out (one loop, no generators: every boundary comes here)
        for i, r in enumerate(readings):
            if r.t_s > latest:
                latest = r.t_s
            prev = prev_samples[i]
            if r.error is not None or r.total_j is None:
                powers.append(None)
                continue
            if prev is not None and r.t_s <= prev[0]:
                powers.append(None)  # not newer than what the timeline already has
                continue
            if prev is not None:
                powers.append(max(0.0, (r.total_j - prev[1]) / (r.t_s - prev[0])))
                drawn = True
            else:
                powers.append(None)
            prev_samples[i] = (r.t_s, r.total_j)
        point = TimelinePoint(latest if readings else self._clock(), tuple(powers))
        if drawn:
            self._timeline.append(point)
        return point

    def close(self) -> None:
        """Stop the thread and release the meters."""
        self.stop()
        for meter in self.meters:
            meter.close()
        for share in self.shares:
            share.close()


#: Absolute paths (POSIX, Windows drive, UNC) in a foreign exception's text. A pattern, not a
#: compiled regex: compiling it costs ~0.3 ms at import, and it is needed only when a meter fails
#: (``re`` keeps it compiled from then on).
_PATH = r"(?:[A-Za-z]:)?[\\/]{1,2}[^\s'\"]*[\\/][^\s'\"]*|~[\\/][^\s'\"]*"


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
        detail = re.sub(_PATH, "<path>", str(exc))
    if len(detail) > 200:
        detail = detail[:199] + "…"
    return f"unexpected {type(exc).__name__} in the meter: {detail}".rstrip(": ")
