"""The interface every meter implements, so the sampler and the footprint never branch on vendors.

A meter measures exactly one channel (one component of one device by one method) and answers a
single question: how many joules has this channel used since the meter was opened? Counters
(RAPL, NVML total energy) answer from hardware; power meters integrate readings; models integrate
an estimate. Because every meter reports a monotonic cumulative total, a measurement window is two
reads and a subtraction, whatever the hardware.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace

from nbcarbon.errors import MeterError

#: The Apple Neural Engine is a "gpu" (an accelerator) with device "ane": a new component would
#: break records read by older nbcarbon versions and the JupyterLab extension (schema 1).
COMPONENTS = ("cpu", "dram", "gpu", "memory")

#: How each method obtains its number; the readout and the record say this, never hide it.
METHOD_KIND = {
    "rapl-counter": "measured",
    "nvml-counter": "measured",
    "nvml-power": "sampled",
    "amdsmi-counter": "measured",
    "amdsmi-power": "sampled",
    "amd-energy-counter": "measured",
    "ioreport-counter": "measured",
    "cpu-time-model": "estimated",
    "memory-model": "estimated",
}
METHODS = tuple(METHOD_KIND)


@dataclass(frozen=True)
class Channel:
    """What a meter measures: which component, which device, by which method, for whom.

    ``attribution`` is ``"machine"`` for machine-wide counters (RAPL, NVML) and ``"process"``
    for models driven by the kernel's own process tree. ``caveat``, when set, is a standing
    limit of this channel that every record it measures repeats in its ``warnings`` (e.g. what
    a model cannot follow on this platform), so a number never looks more complete than it is.
    """

    component: str
    device: str
    method: str
    attribution: str
    caveat: str | None = None

    def __post_init__(self) -> None:
        if self.component not in COMPONENTS:
            raise ValueError(f"component must be one of {COMPONENTS}, not {self.component!r}")
        if self.method not in METHOD_KIND:
            raise ValueError(f"method must be one of {METHODS}, not {self.method!r}")
        if self.attribution not in ("machine", "process"):
            raise ValueError(
                f"attribution must be 'machine' or 'process', not {self.attribution!r}"
            )


class Meter(ABC):
    """One channel's cumulative energy.

    Implementations must make :meth:`read` thread-safe (the sampler thread and the cell boundary
    both call it) and cheap: it is on the cell's critical path.
    """

    channel: Channel

    @abstractmethod
    def read(self) -> float:
        """Joules used by the channel since the meter was opened; never decreases.

        Raises :class:`nbcarbon.errors.MeterError` when the hardware cannot be read now. A later
        call may succeed again; the total then continues from where it was.
        """

    def max_poll_interval_s(self) -> float | None:
        """The longest gap between reads that keeps the total exact (counter wrap-around).

        ``None`` means reads may be arbitrarily far apart. The sampler polls at least this often.
        """
        return None

    def anomalies(self) -> Anomalies:
        """The running tally of readings this meter refused to count (see :class:`Anomalies`).

        Meters that cannot misread (models, integrated power) keep the default, an empty tally.
        """
        return NO_ANOMALIES

    def read_with_anomalies(self) -> tuple[float, Anomalies]:
        """:meth:`read` and the tally as of that read, for the sampler.

        Paired so a record can say what was refused inside its window and whether its boundary
        read itself was refused; :class:`LockedMeter` takes both under one lock, so another
        thread's read cannot slip in between.
        """
        return self.read(), self.anomalies()

    def background(self) -> None:  # noqa: B027 (an optional hook: most meters need no upkeep)
        """Slow upkeep the sampler thread does between reads, e.g. listing child processes.

        Never called on the cell's path, so :meth:`read` can stay cheap by using what this
        method prepared. The default has nothing to do.
        """

    def close(self) -> None:  # noqa: B027 (an optional hook: models hold nothing)
        """Release what the meter holds (file handles, library sessions). Reads after close fail."""


@dataclass(frozen=True)
class Anomalies:
    """A counter's running tally of the readings it refused to count, as of one read.

    Why a tally and not a log: a record needs only what happened between its window's two
    boundary reads, and the difference of the two tallies says exactly that, whatever the
    sampler thread read in between, without the meter knowing about windows or keeping events.
    ``held`` says that the read this tally came with was itself refused, so the total returned
    with it is the one of the last good reading (older than the read).
    """

    below_zero: int = 0
    beyond_range: int = 0
    jumps: int = 0
    resets: int = 0
    held: bool = False
    last_jump: str = ""
    last_reset: str = ""

    @property
    def skipped(self) -> int:
        """Readings not counted, whatever was wrong with them."""
        return self.below_zero + self.beyond_range + self.jumps

    def warnings_since(self, before: Anomalies, name: str) -> list[str]:
        """Record warnings for what was refused between ``before`` and this tally.

        The wording names what the counter showed, so a reader can tell a flaky sysfs read (a
        glitch: nothing lost) from a counter that restarted (energy lost, not invented).
        """
        out: list[str] = []
        parts = []
        for n, what in ((self.below_zero - before.below_zero, "below zero"),
                        (self.beyond_range - before.beyond_range, "beyond the counter's range")):
            if n > 0:
                parts.append(f"{n} {what}")
        jumps = self.jumps - before.jumps
        if jumps > 0:
            parts.append(f"{jumps} step(s) more than the zone can draw (last: {self.last_jump})")
        if parts:
            n = self.skipped - before.skipped
            out.append(f"{name}: {n} implausible reading(s) skipped, not counted ("
                       + "; ".join(parts) + ")")
        resets = self.resets - before.resets
        if resets > 0:
            times = "" if resets == 1 else f" {resets} times"
            out.append(f"{name}: counter reset{times} during the window (last: {self.last_reset}); "
                       "the energy between the last good reading and the reset is not measured")
        return out


NO_ANOMALIES = Anomalies()

def _clock_tick_s() -> float:
    try:
        return 1.0 / (int(os.sysconf("SC_CLK_TCK")) or 100)
    except (AttributeError, ValueError, OSError):
        return 0.01  # USER_HZ is 100 on every Linux architecture


#: Seconds per clock tick, the unit of CPU times in ``/proc/stat`` and ``/proc/PID/stat``.
CLOCK_TICK_S = _clock_tick_s()

#: Seconds of the power cap a step may exceed its elapsed time by: the hardware updates its
#: counter every ~1 ms (not at the instant of the read), and a read's timestamp is taken around
#: the file read, not inside it. Generous: it only lets through glitches this small.
PLAUSIBLE_SLACK_S = 0.05
#: The most any one GPU draws, in watts: an energy step or a power reading beyond it is a bad
#: read (NVML's 0xFFFFFFFF mW, a firmware glitch), never energy. The largest boards draw about
#: 1.2 kW (MI355X 1.4 kW); 2 kW leaves room without letting a glitch through.
GPU_MAX_W = 2000.0


def plausible_power_w(power_w: float, device: str, max_w: float = GPU_MAX_W) -> float:
    """``power_w`` if a device can draw it, else a :class:`MeterError` saying so: the read fails
    (and is counted as failed) instead of a glitch being integrated into the energy."""
    if not 0.0 <= power_w <= max_w:  # NaN too
        raise MeterError(f"{device} gave an implausible power reading ({power_w:.6g} W, outside "
                         f"0 to {max_w:g} W); skipped")
    return power_w


class WrappingCounter:
    """Turns a raw hardware counter that wraps at ``range_raw`` into a monotonic total in joules.

    Why a class: RAPL ``energy_uj`` wraps every few minutes at high power, so the total must
    be carried across wraps by whoever reads the counter, and only the reader sees the raw values.

    A counter never invents energy. A raw value below zero or beyond the range, or a step (wrap
    included) larger than ``max_power_w`` times the time since the last good reading, is
    refused: it does not move the last good value, so the good readings on either side still
    bracket the energy exactly, however long the bad spell. A refused value is also kept as a
    candidate: when a later reading advances plausibly from the candidate but not from the last
    good value, the counter restarted (suspend, driver reload) and is rebased there; the energy
    between the last good reading and the restart is lost, never guessed. A counter stuck on a
    bad value (the same raw again and again) never confirms a restart.
    """

    def __init__(self, first_raw: int | None, range_raw: int | None, joules_per_unit: float,
                 *, max_power_w: float | None = None, slack_s: float = PLAUSIBLE_SLACK_S,
                 t_s: float | None = None) -> None:
        self._range_raw = range_raw if range_raw and range_raw > 0 else None
        self._scale = joules_per_unit
        #: The most the channel can draw; ``None``: any forward step is plausible.
        self.max_power_w = max_power_w
        self._slack_s = slack_s
        self.total_j = 0.0
        self.wraps = 0
        self.anomalies = NO_ANOMALIES
        self._good: tuple[int, float | None] | None = None  # (raw, time read started)
        self._candidate: tuple[int, float | None] | None = None
        if first_raw is not None:
            self.update(first_raw, t_s, t_s)

    @property
    def resets(self) -> int:
        return self.anomalies.resets

    @property
    def skipped(self) -> int:
        return self.anomalies.skipped

    @property
    def held(self) -> bool:
        """Whether the last update was refused (its total is the last good one)."""
        return self.anomalies.held

    def update(self, raw: int, t0_s: float | None = None, t1_s: float | None = None) -> float:
        """Feed the counter's current raw value; returns the total joules so far.

        ``t0_s``/``t1_s`` are the monotonic instants just before and just after the raw value
        was read, so the time between two raw values is at most this read's ``t1_s`` minus the
        earlier read's ``t0_s`` whatever the scheduler did in between. Without times (or without
        ``max_power_w``) steps are not bounded by power: only sign, range and direction are.
        """
        if t1_s is None:
            t1_s = t0_s
        if raw < 0:
            return self._refuse(below_zero=1)
        if self._range_raw is not None and raw > self._range_raw:
            return self._refuse(beyond_range=1)
        good = self._good
        if good is None:  # the first readable value: the base, nothing to count yet
            self._good = (raw, t0_s)
            return self._accept()
        step = self._step(good, raw, t1_s)
        if step is not None:
            return self._count(good[0], raw, step, t0_s)
        candidate = self._candidate
        if candidate is not None and raw != candidate[0]:
            step = self._step(candidate, raw, t1_s)
            if step is not None and step > 0:  # it goes on from the candidate: a restart
                self.anomalies = replace(
                    self.anomalies, resets=self.anomalies.resets + 1,
                    last_reset=f"counter went from {self._joules(good[0])} "
                               f"to {self._joules(candidate[0])}")
                return self._count(candidate[0], raw, step, t0_s)
        if candidate is None or raw != candidate[0]:
            self._candidate = (raw, t0_s)
        return self._refuse(
            jumps=1, last_jump=f"counter read {self._joules(raw)} after {self._joules(good[0])}")

    def _step(self, since: tuple[int, float | None], raw: int, t1_s: float | None) -> int | None:
        """Raw units gained from ``since`` to ``raw`` (one wrap allowed), or ``None`` when no
        power the channel can draw explains it."""
        delta = raw - since[0]
        if delta < 0:
            if self._range_raw is None:
                return None
            # The counter wraps to 0 after max_energy_range; adding the range is exact to
            # within one hardware energy unit (RAPL's is about 15 uJ), as Linux's own tools do.
            delta += self._range_raw
        if self.max_power_w is not None and since[1] is not None and t1_s is not None:
            elapsed_s = max(0.0, t1_s - since[1])
            if delta * self._scale > self.max_power_w * (elapsed_s + self._slack_s):
                return None
        return delta

    def _count(self, since_raw: int, raw: int, step: int, t0_s: float | None) -> float:
        if raw < since_raw:
            self.wraps += 1
        self.total_j += step * self._scale
        self._good = (raw, t0_s)
        return self._accept()

    def _accept(self) -> float:
        self._candidate = None
        if self.anomalies.held:
            self.anomalies = replace(self.anomalies, held=False)
        return self.total_j

    def _refuse(self, *, below_zero: int = 0, beyond_range: int = 0, jumps: int = 0,
                last_jump: str | None = None) -> float:
        a = self.anomalies
        self.anomalies = replace(
            a, below_zero=a.below_zero + below_zero, beyond_range=a.beyond_range + beyond_range,
            jumps=a.jumps + jumps, held=True,
            last_jump=a.last_jump if last_jump is None else last_jump)
        return self.total_j

    def _joules(self, raw: int) -> str:
        return joules_text(raw * self._scale)


def joules_text(joules: float) -> str:
    """A counter value for a warning: ``200 kJ``, ``-5 µJ``, ``0 J``."""
    size = abs(joules)
    if size == 0:
        return "0 J"
    for factor, unit in ((1e6, "MJ"), (1e3, "kJ"), (1.0, "J"), (1e-3, "mJ")):
        if size >= factor:
            return f"{joules / factor:.4g} {unit}"
    return f"{joules * 1e6:.4g} µJ"


class PowerIntegrator:
    """Integrates instantaneous power readings (trapezoid rule) into a cumulative energy.

    Used where hardware offers power but no energy counter (older NVIDIA GPUs) and by the
    models. Accuracy depends on how often it is fed: the sampler feeds it in the background and
    the cell boundary feeds it once more, so a window is closed with a fresh reading.
    """

    def __init__(self) -> None:
        self._last_t: float | None = None
        self._last_w = 0.0
        self.total_j = 0.0

    def update(self, t_s: float, power_w: float) -> float:
        """Feed a power reading taken at monotonic time ``t_s``; returns the total joules so far."""
        if self._last_t is not None and t_s > self._last_t:
            self.total_j += (t_s - self._last_t) * (power_w + self._last_w) / 2.0
        if self._last_t is None or t_s >= self._last_t:
            self._last_t = t_s
            self._last_w = power_w
        return self.total_j


class LockedMeter(Meter):
    """A meter whose :meth:`read` is serialised by a lock; backends implement :meth:`_read`."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._lock = threading.Lock()

    def read(self) -> float:
        with self._lock:
            return self._read()

    def read_with_anomalies(self) -> tuple[float, Anomalies]:
        with self._lock:
            return self._read(), self.anomalies()

    @abstractmethod
    def _read(self) -> float:
        """The backend's read, called with the lock held."""


class LibraryHolds:
    """A vendor library's process-wide init and shutdown (NVML, AMD SMI), counted by holder.

    Why our own count: the libraries count their inits too, but a closed meter must not shut
    the library down under another meter that still reads through it. Subclasses say how the
    library is started and stopped; a failing start propagates to the caller.
    """

    def __init__(self) -> None:
        self._holders = 0
        self._lock = threading.Lock()

    def _start(self) -> None:
        raise NotImplementedError

    def _stop(self) -> None:
        """Shut the library down; a lost device's library may refuse, with nothing to clean."""
        raise NotImplementedError

    def acquire(self) -> None:
        """Take a hold, starting the library on the first."""
        with self._lock:
            if self._holders == 0:
                self._start()
            self._holders += 1

    def release(self) -> None:
        """End a hold; the last one shuts the library down. An extra release does nothing."""
        with self._lock:
            if self._holders == 0:
                return
            self._holders -= 1
            if self._holders == 0:
                self._stop()

    @property
    def holders(self) -> int:
        return self._holders
