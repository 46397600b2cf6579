"""Memory energy estimated from the process tree's resident memory, where no DRAM counter exists.

Why this model: DRAM power grows with installed and active memory, and without a RAPL DRAM
zone (AMD CPUs, laptops, VMs) the only per-process figure is resident memory. The coefficient
is 0.375 W per GB (3 W per 8 GB), the figure CodeCarbon and Green Algorithms use for a DIMM's
power spread over its capacity. GB here is 10^9 bytes.

Resident memory (RSS) of a forked child counts pages it still shares with its parent, so a
process tree's sum can overstate its memory; the estimate errs high rather than low.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

from nbcarbon.errors import MeterError
from nbcarbon.meters.base import Channel, LockedMeter, PowerIntegrator
from nbcarbon.meters.cputime import ChildProcesses
from nbcarbon.meters.lazy import psutil

DEFAULT_WATTS_PER_GB = 0.375
_BYTES_PER_GB = 1e9


class Statm:
    """A process's resident memory from ``/proc/PID/statm``, kept open and read with ``pread``.

    Why: every window's two boundaries read the kernel's resident memory, and psutil's
    ``memory_info()`` costs ~15 us each (it opens the file and builds a named tuple); this is one
    ``pread`` of the same file (~2 us). procfs regenerates the text on every read, and the
    descriptor names that very process (a later process given the same pid is never read
    through it: reads fail once the process is gone). :meth:`open` gives ``None`` where there is
    no such file (not Linux); the meter then asks psutil.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._page = os.sysconf("SC_PAGE_SIZE")

    @classmethod
    def open(cls, pid: int, proc: str = "/proc") -> Statm | None:
        try:
            fd = os.open(f"{proc}/{pid}/statm", os.O_RDONLY | os.O_CLOEXEC)
        except (OSError, AttributeError):
            return None
        statm = cls(fd)
        try:
            statm.rss_bytes()
        except (OSError, ValueError, IndexError):
            statm.close()
            return None
        return statm

    def rss_bytes(self) -> int:
        """Resident bytes now; OSError once the process is gone."""
        data = os.pread(self._fd, 128, 0)
        if not data:
            raise ProcessLookupError("the process has ended")
        return int(data.split(None, 2)[1]) * self._page

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


class MemoryModelMeter(LockedMeter):
    """Integrates RSS x W/GB of the process tree each time it is read.

    The tree includes processes that left it (see :class:`ChildProcesses`). ``states_caveat``
    makes this channel carry what the tree cannot follow; :func:`~nbcarbon.meters.probe.probe`
    turns it off when the CPU-time model shares the tree and already says it.
    """

    def __init__(self, pid: int, watts_per_gb: float = DEFAULT_WATTS_PER_GB,
                 tree: ChildProcesses | None = None, states_caveat: bool = True) -> None:
        super().__init__(Channel("memory", "process tree", "memory-model", "process"))
        if watts_per_gb < 0:
            raise ValueError(f"watts_per_gb must be >= 0, not {watts_per_gb}")
        self.pid = pid
        self.watts_per_gb = watts_per_gb
        self._closed = False
        try:
            self._tree = tree if tree is not None else ChildProcesses(pid)
        except psutil.NoSuchProcess as err:
            raise MeterError(f"memory of process {pid}: no such process") from err
        self._tree.refresh()
        self._states_caveat = states_caveat
        self._update_caveat()
        self.mem_bytes = 0
        self.power_w = 0.0
        self._statm = Statm.open(pid)
        self._integrator = PowerIntegrator()
        self._integrator.update(time.monotonic(), self._power_now_w())

    @property
    def tree(self) -> ChildProcesses:
        """The processes this meter follows (shared with the CPU-time model)."""
        return self._tree

    def _tree_rss_bytes(self) -> int:
        statm = self._statm
        try:
            if statm is not None:
                try:
                    total = statm.rss_bytes()
                except (OSError, ValueError, IndexError):
                    self._statm = None  # gone or unreadable: psutil says which
                    statm.close()
                    total = self._tree.process.memory_info().rss
            else:
                total = self._tree.process.memory_info().rss
        except psutil.Error as err:
            raise MeterError(f"memory of process {self.pid}: {type(err).__name__}") from err
        for child in self._tree.children:
            try:
                total += child.memory_info().rss
            except psutil.Error:
                continue  # exited since the last refresh: it holds no memory now
        return total

    def _power_now_w(self) -> float:
        self.mem_bytes = self._tree_rss_bytes()
        self.power_w = self.mem_bytes / _BYTES_PER_GB * self.watts_per_gb
        return self.power_w

    def _read(self) -> float:
        if self._closed:
            raise MeterError("memory model meter closed")
        power_w = self._power_now_w()
        return self._integrator.update(time.monotonic(), power_w)

    def background(self) -> None:
        self._tree.refresh(max_age_s=0.05, scan=True)
        self._update_caveat()

    def _update_caveat(self) -> None:
        caveat = self._tree.caveat if self._states_caveat else None
        if caveat != self.channel.caveat:
            self.channel = replace(self.channel, caveat=caveat)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            statm, self._statm = self._statm, None
        if statm is not None:
            statm.close()
