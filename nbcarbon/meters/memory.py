"""Memory energy estimated from the process tree's resident memory, where no DRAM counter exists.

Why this model: DRAM power grows with installed and active memory, and without a RAPL DRAM
zone (AMD CPUs, laptops, VMs) the only per-process figure is resident memory. The coefficient
is 0.375 W per GB (3 W per 8 GB), the figure CodeCarbon and Green Algorithms use for a DIMM's
power spread over its capacity. GB here is 10^9 bytes.

Resident memory (RSS) of a forked child counts pages it still shares with its parent, so a
process tree's sum can overstate its memory; the estimate errs high rather than low.
"""

from __future__ import annotations

import time
from dataclasses import replace

import psutil

from nbcarbon.errors import MeterError
from nbcarbon.meters.base import Channel, LockedMeter, PowerIntegrator
from nbcarbon.meters.cputime import ChildProcesses

DEFAULT_WATTS_PER_GB = 0.375
_BYTES_PER_GB = 1e9


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
        self._integrator = PowerIntegrator()
        self._integrator.update(time.monotonic(), self._power_now_w())

    @property
    def tree(self) -> ChildProcesses:
        """The processes this meter follows (shared with the CPU-time model)."""
        return self._tree

    def _tree_rss_bytes(self) -> int:
        try:
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
