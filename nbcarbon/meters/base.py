"""The interface every meter implements, so the sampler and the footprint never branch on vendors.

A meter measures exactly one channel (one component of one device by one method) and answers a
single question: how many joules has this channel used since the meter was opened? Counters
(RAPL, NVML total energy) answer from hardware; power meters integrate readings; models integrate
an estimate. Because every meter reports a monotonic cumulative total, a measurement window is two
reads and a subtraction, whatever the hardware.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass

COMPONENTS = ("cpu", "dram", "gpu", "memory")

#: How each method obtains its number; the readout and the record say this, never hide it.
METHOD_KIND = {
    "rapl-counter": "measured",
    "nvml-counter": "measured",
    "nvml-power": "sampled",
    "cpu-time-model": "estimated",
    "memory-model": "estimated",
}
METHODS = tuple(METHOD_KIND)


@dataclass(frozen=True)
class Channel:
    """What a meter measures: which component, which device, by which method, for whom.

    ``attribution`` is ``"machine"`` for machine-wide counters (RAPL, NVML) and ``"process"``
    for models driven by the kernel's own process tree.
    """

    component: str
    device: str
    method: str
    attribution: str

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

    def background(self) -> None:  # noqa: B027 (an optional hook: most meters need no upkeep)
        """Slow upkeep the sampler thread does between reads, e.g. listing child processes.

        Never called on the cell's path, so :meth:`read` can stay cheap by using what this
        method prepared. The default has nothing to do.
        """

    def close(self) -> None:  # noqa: B027 (an optional hook: models hold nothing)
        """Release what the meter holds (file handles, library sessions). Reads after close fail."""


class WrappingCounter:
    """Turns a raw hardware counter that wraps at ``range_raw`` into a monotonic total in joules.

    Why a class: RAPL ``energy_uj`` wraps every few minutes at high power, so the total must
    be carried across wraps by whoever reads the counter, and only the reader sees the raw values.
    A counter that goes backwards without a known range is a reset: the delta is not counted and
    :attr:`resets` says so.
    """

    def __init__(self, first_raw: int, range_raw: int | None, joules_per_unit: float) -> None:
        self._last_raw = first_raw
        self._range_raw = range_raw if range_raw and range_raw > 0 else None
        self._scale = joules_per_unit
        self.total_j = 0.0
        self.wraps = 0
        self.resets = 0

    def update(self, raw: int, max_delta_raw: float | None = None) -> float:
        """Feed the counter's current raw value; returns the total joules so far.

        ``max_delta_raw`` is the most the counter can plausibly have advanced since the last
        value (the caller knows the elapsed time and a power ceiling). A backwards step whose
        wrap-corrected delta exceeds it is a reset (suspend, driver reload), not a wrap: counting
        it as a wrap would add up to a whole range of energy that was never used.
        """
        delta = raw - self._last_raw
        if delta < 0:
            if self._range_raw is not None and raw <= self._range_raw:
                # The counter wraps to 0 after max_energy_range; adding the range is exact to
                # within one hardware energy unit (RAPL's is about 15 uJ), as Linux's own tools do.
                delta += self._range_raw
                if max_delta_raw is not None and delta > max_delta_raw:
                    self.resets += 1
                    delta = 0
                else:
                    self.wraps += 1
            else:
                self.resets += 1
                delta = 0
        self._last_raw = raw
        self.total_j += delta * self._scale
        return self.total_j


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

    @abstractmethod
    def _read(self) -> float:
        """The backend's read, called with the lock held."""
