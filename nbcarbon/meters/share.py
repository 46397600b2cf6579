"""How much of a machine-wide device this kernel used, so a cell is charged its own share.

Why: RAPL package and DRAM counters and NVML's GPU counters count everything the machine did.
On a JupyterHub node or a shared GPU box, charging a cell all of it makes a two-line cell look
like a training run. A share meter follows, alongside the energy counters, how much of the
device the kernel's process tree used and how much everybody used; the window's share is the
ratio of the two differences across the window, and the record keeps the machine figure beside
the share (``Component.share``).

The policy, the same for every device: energy is split by use. Idle and static power are part
of what the counter measured, and go with the use: whoever kept the device busy in the window
pays for it in proportion. What nobody else used is all the kernel's: on a machine with nothing
else running, the share is the whole and the two attribution modes agree.

CPU and DRAM (:class:`CpuShare`): the process tree's CPU seconds (what the CPU-time model
follows: the kernel, its children, processes that left the tree) over the machine's busy CPU
seconds (``/proc/stat``: user, nice, system, irq and softirq of all CPUs; idle, iowait and
steal are not busy here, and guest time is already inside user). A window always counts as at
least :data:`FLOOR_CORES` of one core busy, so a window on an idle machine is charged the idle
power (nobody else used it) and one that waits while another program computes is charged little;
the share moves smoothly between the two. DRAM is split by the same CPU share rather than by
resident memory: DRAM power follows memory traffic, which the CPU drives, far more than the
bytes held, and a memory share would charge an idle kernel holding a large table for other
users' traffic.
"""

from __future__ import annotations

import os
import threading
import time
from abc import ABC, abstractmethod
from collections import namedtuple
from collections.abc import Callable
from pathlib import Path

from nbcarbon.errors import MeterError
from nbcarbon.meters.base import CLOCK_TICK_S, Channel

TYPE_CHECKING = False  # no ``typing`` at import (see nbcarbon/session.py)
if TYPE_CHECKING:
    from typing import Any

#: Every window counts as at least this much of one core busy (see the module's policy).
FLOOR_CORES = 0.01
#: A kept ``/proc/stat`` unmoved this long is checked for having been replaced by another file.
REPLACED_AFTER_S = 0.5


class Split(namedtuple("Split", ("fraction", "basis", "why", "idle"), defaults=(None, False))):
    """A window's share of one device: ``fraction`` of its energy, by ``basis``.

    - ``fraction: float | None``: ``None`` when no share could be worked out; ``why`` then says
      why, and the component is charged whole (as in ``machine`` mode) with that said in the record.
    - ``basis: str``, ``why: str | None = None``.
    - ``idle: bool = False``: nobody used the device in the window (the kernel's tree included):
      its idle power is the window's whole, once, whoever measures it (a Dask worker beside a
      notebook adds none).

    ``collections.namedtuple`` rather than ``typing.NamedTuple``: the same class, without
    importing ``typing`` (see nbcarbon/session.py).
    """

    __slots__ = ()


class ShareMeter(ABC):
    """Cumulative use of a machine-wide device, by the kernel's tree and by everybody.

    :meth:`read` returns an immutable snapshot taken at a window's boundary; :meth:`split` turns
    two of them into the window's :class:`Split`. Like a :class:`~nbcarbon.meters.base.Meter`,
    reads must be thread-safe and cheap (they are on the cell's path) and may raise
    :class:`MeterError`; slow upkeep goes in :meth:`background`.
    """

    basis: str

    @abstractmethod
    def covers(self, channel: Channel) -> bool:
        """Whether this meter's share applies to ``channel``'s energy."""

    @abstractmethod
    def read(self) -> Any:
        """A snapshot of the cumulative use now."""

    @abstractmethod
    def split(self, begin: Any, end: Any, duration_s: float) -> Split:
        """The share of a window from its two snapshots."""

    def background(self) -> None:  # noqa: B027 - an optional hook
        """Upkeep the sampler thread does between reads."""

    def close(self) -> None:  # noqa: B027 - an optional hook
        """Release what the meter holds."""


class CpuUse(namedtuple("CpuUse", ("ours_s", "machine_s"))):
    """Cumulative CPU seconds (floats): the kernel's process tree (``ours_s``), and the whole
    machine's busy time (``machine_s``). A ``collections.namedtuple`` (see :class:`Split`)."""

    __slots__ = ()


def cpu_split(begin: CpuUse, end: CpuUse, duration_s: float) -> Split:
    """The window's CPU share (the module's policy); a function of the two snapshots only, so a
    Dask worker's snapshots are split the same way in the notebook."""
    floor = FLOOR_CORES * max(0.0, duration_s)
    ours = max(end.ours_s - begin.ours_s, floor)
    machine = end.machine_s - begin.machine_s
    if ours <= 0.0:  # a window of no time: nothing to split, nothing to charge either way
        return Split(1.0, "cpu-time", idle=True)
    return Split(min(1.0, ours / max(machine, ours)), "cpu-time", idle=machine <= floor)


class ProcStat:
    """The machine's busy CPU seconds from a kept-open ``/proc/stat`` (one ``pread`` per read).

    Only the first line (all CPUs together) is parsed; the kernel writes the whole file on each
    read, which costs ~10 us on a small machine and grows with its CPUs and interrupts.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._fd: int | None = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            raise MeterError(f"machine CPU time not readable ({err.strerror or 'error'})") from err
        self._last_ticks = -1
        self._moved_s = time.monotonic()
        self._lock = threading.Lock()
        self.busy_s()  # a file that is not a stat file fails here, not in the first cell

    def busy_s(self) -> float:
        with self._lock:
            ticks = self._ticks()
            if ticks != self._last_ticks:
                self._last_ticks = ticks
                self._moved_s = time.monotonic()
            elif time.monotonic() - self._moved_s >= REPLACED_AFTER_S:
                # Unmoved for a while: the file may have been replaced under the kept descriptor
                # (swapped in by rename, as a test's fake machine or a container tool does).
                # Not at every read: back-to-back windows often fall within one 10 ms tick.
                self._moved_s = time.monotonic()
                if self._replaced():
                    ticks = self._last_ticks = self._ticks()
        return ticks * CLOCK_TICK_S

    def _ticks(self) -> int:
        fd = self._fd
        if fd is None:
            raise MeterError("machine CPU time: closed")
        try:
            data = os.pread(fd, 512, 0)
        except OSError as err:
            raise MeterError(f"machine CPU time not readable ({err.strerror or 'error'})") from err
        line = data.split(b"\n", 1)[0].split()
        if len(line) < 8 or line[0] != b"cpu":
            raise MeterError("machine CPU time: the stat file has no 'cpu' line")
        try:  # user, nice, system, irq, softirq
            return int(line[1]) + int(line[2]) + int(line[3]) + int(line[6]) + int(line[7])
        except ValueError:
            raise MeterError("machine CPU time: the stat file's 'cpu' line is not numbers") from None

    def _replaced(self) -> bool:
        """Reopen the path if it names another file than the one kept open; whether it did."""
        assert self._fd is not None
        try:
            now = os.stat(self.path)
            kept = os.fstat(self._fd)
        except OSError:
            return False
        if (now.st_ino, now.st_dev) == (kept.st_ino, kept.st_dev):
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        os.close(self._fd)
        self._fd = fd
        return True

    def close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def psutil_busy_s() -> float:
    """The machine's busy CPU seconds through psutil, where there is no ``/proc/stat`` (macOS)."""
    import psutil

    t = psutil.cpu_times()
    return float(t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0)
                 + getattr(t, "softirq", 0.0))


class CpuShare(ShareMeter):
    """The kernel tree's part of the machine's busy CPU time: the share of CPU and DRAM energy.

    ``tree_cpu_s`` returns the tree's cumulative CPU seconds (a CPU-time model at 1 W per core
    does exactly that, with its list of child processes kept up to date in the background);
    ``machine_busy_s`` the machine's (:class:`ProcStat`, or psutil off Linux).
    """

    basis = "cpu-time"

    def __init__(self, tree_cpu_s: Callable[[], float], machine_busy_s: Callable[[], float],
                 upkeep: Callable[[], None] | None = None,
                 release: Callable[[], None] | None = None) -> None:
        self._tree_cpu_s = tree_cpu_s
        self._machine_busy_s = machine_busy_s
        self._upkeep = upkeep
        self._release = release

    def covers(self, channel: Channel) -> bool:
        return channel.attribution == "machine" and channel.component in ("cpu", "dram")

    def read(self) -> CpuUse:
        return CpuUse(self._tree_cpu_s(), self._machine_busy_s())

    def split(self, begin: CpuUse, end: CpuUse, duration_s: float) -> Split:
        return cpu_split(begin, end, duration_s)

    def background(self) -> None:
        if self._upkeep is not None:
            self._upkeep()

    def close(self) -> None:
        if self._release is not None:
            self._release()


def open_cpu_share(pid: int, tree: Any, proc_stat: Path, platform: str) -> tuple[CpuShare | None, str | None]:
    """A :class:`CpuShare` for ``pid``'s tree, or ``None`` and a note saying why not.

    ``tree`` is the :class:`~nbcarbon.meters.cputime.ChildProcesses` the models share (or
    ``None`` to make one).
    """
    from nbcarbon.meters.cputime import CpuTimeMeter

    try:
        if platform.startswith("linux"):
            stat = ProcStat(proc_stat)
            machine: Callable[[], float] = stat.busy_s
            close: Callable[[], None] | None = stat.close
        else:
            psutil_busy_s()
            machine, close = psutil_busy_s, None
        # 1 W per core: the model's "energy" is the tree's CPU seconds, with its upkeep.
        cpu = CpuTimeMeter(pid, 1.0, tree=tree, states_caveat=False)
    except (MeterError, OSError, ImportError) as err:
        return None, (f"{err}; machine-wide CPU and DRAM energy is charged whole to each cell "
                      "(attribution: machine)")
    except Exception as err:  # noqa: BLE001 - psutil's errors: the tree's process is gone
        return None, (f"machine CPU time not followed ({type(err).__name__}); machine-wide CPU and "
                      "DRAM energy is charged whole to each cell (attribution: machine)")
    return CpuShare(cpu.read, machine, upkeep=cpu.background, release=close), None


def split_snapshots(basis: str, begin: Any, end: Any, duration_s: float) -> Split:
    """Split a window from two snapshots sent as JSON lists (a Dask worker's), by the basis of
    the share meter that took them; a ``ValueError`` for what no meter here takes."""
    from nbcarbon.meters.gpushare import GpuUse, gpu_split

    if basis == "cpu-time":
        return cpu_split(CpuUse(*begin), CpuUse(*end), duration_s)
    if basis == "gpu-utilization":
        return gpu_split(GpuUse(*begin), GpuUse(*end), duration_s)
    raise ValueError(f"no share meter of basis {basis!r}")
