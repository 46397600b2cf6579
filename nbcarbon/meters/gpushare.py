"""An NVIDIA GPU's use by the kernel's processes and by everybody, from NVML's per-process figures.

The policy is :mod:`nbcarbon.meters.share`'s: a GPU's energy is split by use. Use is the SM
utilisation NVML samples per process (``nvmlDeviceGetProcessUtilization``: one sample per
process that was busy in the driver's last sampling period, with its CPU timestamp), integrated
over time at each read: a process busy at 60 % for 2 s used 1.2 "GPU-seconds". In a window where
no process was sampled busy (the GPU idled), its idle power is split among the processes holding
it (``nvmlDeviceGetComputeRunningProcesses`` and the graphics list), by count over time; a GPU
no process holds at all is the kernel's whole (nobody else used it).

Containers: a container with its own pid namespace sees the host's pids in NVML's lists, not
its own, so the kernel's processes cannot be told apart from anyone's. When the GPU lists
processes and none of them is the kernel's or even exists here, the share is not guessed: the
window is charged the whole GPU and its record says why.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from nbcarbon.errors import MeterError
from nbcarbon.meters.base import Channel
from nbcarbon.meters.share import ShareMeter, Split

#: NVML's "not found": ``nvmlDeviceGetProcessUtilization`` has no sample newer than asked for.
_NOT_FOUND = 6
#: NVML's "not supported": this GPU or driver has no per-process utilisation (older boards).
_NOT_SUPPORTED = 3
#: A process's latest utilisation sample older than this (behind the newest one) is not current.
STALE_S = 5.0
UNMATCHED = ("the GPU's processes could not be matched to this kernel's (a container with its own "
             "process ids?); the whole GPU is charged")


class GpuUse(NamedTuple):
    """Cumulative use of one GPU: SM-utilisation seconds and process-holding seconds."""

    ours_util: float
    all_util: float
    ours_held: float
    all_held: float
    unmatched_s: float


def gpu_split(begin: GpuUse, end: GpuUse, duration_s: float) -> Split:
    """The window's GPU share (the module's policy), from the two snapshots only."""
    d = GpuUse(*(e - b for b, e in zip(begin, end, strict=True)))
    if d.unmatched_s > 0.0 and d.ours_util <= 0.0 and d.ours_held <= 0.0:
        return Split(None, "gpu-utilization", UNMATCHED)
    if d.all_util > 1e-9:
        return Split(min(1.0, max(0.0, d.ours_util / d.all_util)), "gpu-utilization")
    if d.all_held > 1e-9:
        return Split(min(1.0, max(0.0, d.ours_held / d.all_held)), "gpu-processes")
    return Split(1.0, "gpu-processes", idle=True)  # nobody held the GPU: its idle power is the window's


class NvmlShare(ShareMeter):
    """One NVIDIA GPU's use, integrated at every read (boundaries and the sampler's upkeep).

    ``pids`` returns the pids of the kernel's process tree now (from the list the CPU-time model
    keeps; never a walk of every process on the cell's path).
    """

    basis = "gpu-utilization"

    def __init__(self, nvml: Any, handle: Any, device: str, pids: Callable[[], Iterable[int]],
                 proc: Path = Path("/proc"), clock: Callable[[], float] = time.monotonic) -> None:
        self._nvml = nvml
        self._handle = handle
        self.device = device
        self._pids = pids
        self._proc = proc
        self._clock = clock
        self._lock = threading.Lock()
        self._last_t = clock()
        self._rates = (0.0, 0.0, 0.0, 0.0, 0.0)  # what each second adds until the next read
        self._use = GpuUse(0.0, 0.0, 0.0, 0.0, 0.0)
        self._closed = False
        #: Why this GPU gives no per-process figures at all (NVML "not supported"): said by
        #: every read without asking the driver again.
        self._unsupported: str | None = None
        try:
            self._update()
        except MeterError:
            if self._unsupported is None:
                raise  # a failure that may pass: no share meter (open_gpu_shares says why)

    def covers(self, channel: Channel) -> bool:
        return channel.component == "gpu" and channel.device == self.device and \
            channel.method.startswith("nvml-")

    def read(self) -> GpuUse:
        return self._update()

    def background(self) -> None:
        self._update()

    def close(self) -> None:
        self._closed = True

    def split(self, begin: GpuUse, end: GpuUse, duration_s: float) -> Split:
        return gpu_split(begin, end, duration_s)

    # -- the NVML side -------------------------------------------------------------------------
    def _update(self) -> GpuUse:
        """Integrate the rates since the last read, then take the rates of now."""
        with self._lock:
            if self._closed:
                raise MeterError(f"{self.device} share: closed")
            if self._unsupported is not None:
                raise MeterError(self._unsupported)
            now = self._clock()
            dt = max(0.0, now - self._last_t)
            u, r = self._use, self._rates
            self._use = GpuUse(u.ours_util + r[0] * dt, u.all_util + r[1] * dt,
                               u.ours_held + r[2] * dt, u.all_held + r[3] * dt,
                               u.unmatched_s + r[4] * dt)
            self._last_t = now
            use = self._use
            try:
                self._rates = self._rates_now()
            except self._nvml.NVMLError as err:
                from nbcarbon.meters.nvml import describe_error

                self._rates = (0.0, 0.0, 0.0, 0.0, 0.0)
                why = f"{self.device} gives no per-process figures: {describe_error(err)}"
                if getattr(err, "value", None) == _NOT_SUPPORTED:
                    self._unsupported = why
                raise MeterError(why) from err
        return use

    def _rates_now(self) -> tuple[float, float, float, float, float]:
        ours = set(self._pids())
        ours.add(os.getpid())
        util: dict[int, float] = {}
        try:
            samples = self._nvml.nvmlDeviceGetProcessUtilization(self._handle, 0)
        except self._nvml.NVMLError as err:
            if getattr(err, "value", None) != _NOT_FOUND:
                raise
            samples = []  # no process busy in the driver's last period
        if samples:
            newest = max(int(s.timeStamp) for s in samples)
            for s in samples:
                if newest - int(s.timeStamp) <= STALE_S * 1e6:
                    pid = int(s.pid)
                    util[pid] = max(util.get(pid, 0.0), float(s.smUtil) / 100.0)
        held = set(util)
        for name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            listing = getattr(self._nvml, name, None)
            if listing is None:
                continue
            try:
                held.update(int(p.pid) for p in listing(self._handle))
            except self._nvml.NVMLError:
                continue  # not supported on this GPU or driver: the utilisation alone decides
        ours_util = sum(v for pid, v in util.items() if pid in ours)
        ours_held = sum(1 for pid in held if pid in ours)
        unmatched = 0.0
        if held and not ours_held and not any(os.path.exists(f"{self._proc}/{pid}") for pid in held):
            unmatched = 1.0
        return (ours_util, sum(util.values()), float(ours_held), float(len(held)), unmatched)


def open_gpu_shares(meters: Iterable[Any], pids: Callable[[], Iterable[int]],
                    proc: Path = Path("/proc")) -> tuple[list[NvmlShare], list[str]]:
    """One share meter per NVML GPU meter (by its handle), and notes for those that failed."""
    from nbcarbon.meters.nvml import NvmlMeter

    shares: list[NvmlShare] = []
    notes: list[str] = []
    for meter in meters:
        if not isinstance(meter, NvmlMeter):
            continue
        try:
            shares.append(NvmlShare(meter.nvml, meter.handle, meter.channel.device, pids, proc))
        except MeterError as err:
            notes.append(f"{err}; {meter.channel.device}'s energy is charged whole to each cell")
    return shares, notes
