"""CPU energy estimated from the CPU time of the kernel's process tree, where RAPL is missing.

Why a model: virtual machines, containers, Macs and locked-down Linux give no energy counter,
yet CPU seconds are always known. Energy = CPU seconds (user + system) x power per busy core,
with the per-core power taken as the CPU's TDP divided by its cores (the Green Algorithms
method: Lannelongue, Grealey & Inouye, "Green Algorithms: Quantifying the Carbon Footprint of
Computation", Advanced Science 2021). The model counts only this process tree ("process"
attribution), so unlike RAPL it is not disturbed by other programs on the machine.

Per-core figures come from ``nbcarbon/data/cpu_power.csv`` (vendor spec sheets, one source per
row). For a CPU not in the table the default is 12 W per core, the value Green Algorithms uses
for an unknown processor ("Any" in its CPU table); typical server and desktop parts sit between
4 and 16 W per core, so the default errs towards a higher estimate rather than a lower one.

Child processes (a ``subprocess``, a ``multiprocessing`` pool) are counted too: the time of
children already reaped is in ``os.times()``, and live children are read from a list that
:meth:`CpuTimeMeter.background` refreshes, because walking the process tree is too slow for
the cell's path.
"""

from __future__ import annotations

import csv
import io
import os
import re
import threading
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psutil

from nbcarbon.errors import MeterError
from nbcarbon.meters.base import Channel, LockedMeter

DEFAULT_WATTS_PER_CORE = 12.0
DEFAULT_SOURCE = "Green Algorithms default for an unknown CPU, Lannelongue et al. 2021"


@dataclass(frozen=True)
class CpuPowerRow:
    """One row of the CPU power table."""

    match: str
    tdp_w: float
    cores: int
    source: str

    @property
    def watts_per_core(self) -> float:
        return self.tdp_w / self.cores


_table: list[CpuPowerRow] | None = None
_table_lock = threading.Lock()


def cpu_power_table() -> list[CpuPowerRow]:
    """The CPU power table, loaded from the package data on first use (never at import)."""
    global _table
    with _table_lock:
        if _table is None:
            text = resources.files("nbcarbon").joinpath("data", "cpu_power.csv").read_text("utf-8")
            _table = [
                CpuPowerRow(row["match"], float(row["tdp_w"]), int(row["cores"]), row["source"])
                for row in csv.DictReader(io.StringIO(text))
            ]
        return _table


def cpu_model_name(cpuinfo_path: Path = Path("/proc/cpuinfo")) -> str | None:
    """The first ``model name`` in a Linux cpuinfo file, or None where there is none."""
    try:
        text = cpuinfo_path.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "model name" and value.strip():
            return value.strip()
    return None


def _normalise(model_name: str) -> str:
    """Lower case without trademark marks: "Intel(R) Xeon(R) Gold" -> "intel xeon gold"."""
    text = re.sub(r"\((r|tm)\)", " ", model_name.lower())
    return re.sub(r"\s+", " ", text).strip()


def _matches(pattern: str, model_name: str) -> bool:
    """Case-insensitive whole-token substring: "i7-8700" matches "i7-8700 CPU", not "i7-8700K"."""
    expr = r"(?<![0-9a-z])" + re.escape(_normalise(pattern)) + r"(?![0-9a-z])"
    return re.search(expr, _normalise(model_name)) is not None


def watts_per_core(model_name: str | None) -> tuple[float, str]:
    """Power per busy core for a CPU model name, and where the figure came from.

    The longest matching table entry wins, so a specific model beats a shorter pattern.
    """
    if model_name:
        hits = [row for row in cpu_power_table() if _matches(row.match, model_name)]
        if hits:
            row = max(hits, key=lambda r: len(r.match))
            return row.watts_per_core, (
                f"{row.match}: {row.tdp_w:g} W TDP / {row.cores} cores, {row.source}"
            )
    return DEFAULT_WATTS_PER_CORE, DEFAULT_SOURCE


class ChildProcesses:
    """A cached list of a process's live descendants, refreshed off the cell's path.

    ``refresh`` walks the tree (milliseconds with many processes); readers only iterate the
    tuple it left, which is swapped in whole, so no lock is needed between the two.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.process = psutil.Process(pid)
        self.children: tuple[psutil.Process, ...] = ()
        self._refreshed_s = -float("inf")

    def refresh(self, max_age_s: float = 0.0) -> None:
        """List the descendants again, unless that was done less than ``max_age_s`` ago.

        The CPU-time and memory models share one list; the age check makes the second
        meter's upkeep free.
        """
        now = time.monotonic()
        if now - self._refreshed_s < max_age_s:
            return
        self._refreshed_s = now
        pids = _descendant_pids(self.pid)
        if pids is None:  # no /proc/PID/task/TID/children (not Linux, or an old kernel)
            try:
                self.children = tuple(self.process.children(recursive=True))
            except psutil.NoSuchProcess:
                self.children = ()
            return
        known = {p.pid: p for p in self.children}
        fresh = []
        for pid in pids:
            process = known.get(pid)
            if process is None:
                try:
                    process = psutil.Process(pid)
                except psutil.Error:
                    continue  # exited already
            fresh.append(process)
        self.children = tuple(fresh)


def _descendant_pids(pid: int, proc: Path = Path("/proc")) -> list[int] | None:
    """Descendants of ``pid`` from Linux's per-thread ``children`` files.

    Why not psutil's ``children(recursive=True)``: it reads every process on the machine
    (about 1 ms each refresh with a few dozen processes, more on a busy host), where these files
    list only this tree. ``None`` when the files do not exist, so the caller can fall back.
    """
    found: list[int] = []
    stack = [pid]
    first = True
    while stack:
        current = stack.pop()
        try:
            tasks = list((proc / str(current) / "task").iterdir())
        except OSError:
            if first:
                return None
            continue
        for task in tasks:
            try:
                text = (task / "children").read_text()
            except FileNotFoundError:
                if first:
                    return None
                continue
            except OSError:
                continue
            for word in text.split():
                child = int(word)
                found.append(child)
                stack.append(child)
        first = False
    return found


def _process_cpu_s(process: psutil.Process) -> float:
    """CPU seconds of a live process and of the children it has reaped."""
    t = process.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


class CpuTimeMeter(LockedMeter):
    """Energy of the process tree's CPU time at a fixed power per busy core."""

    def __init__(self, pid: int, watts_per_core: float, source: str = "",
                 tree: ChildProcesses | None = None) -> None:
        super().__init__(Channel("cpu", "process tree", "cpu-time-model", "process"))
        if watts_per_core < 0:
            raise ValueError(f"watts_per_core must be >= 0, not {watts_per_core}")
        self.pid = pid
        self.watts_per_core = watts_per_core
        self.source = source
        self._own = pid == os.getpid()
        self._closed = False
        try:
            self._tree = tree if tree is not None else ChildProcesses(pid)
        except psutil.NoSuchProcess as err:
            raise MeterError(f"CPU time of process {pid}: no such process") from err
        self._tree.refresh()
        self._start_s = self._tree_cpu_s()
        self.cpu_s = 0.0

    def _tree_cpu_s(self) -> float:
        if self._own:
            # process_time() has nanosecond resolution where os.times() counts 10 ms ticks,
            # which would round a short cell's CPU time to zero; reaped children only exist
            # in os.times().
            t = os.times()
            total = time.process_time() + t.children_user + t.children_system
        else:
            try:
                total = _process_cpu_s(self._tree.process)
            except psutil.Error as err:
                raise MeterError(f"CPU time of process {self.pid}: {type(err).__name__}") from err
        for child in self._tree.children:
            try:
                total += _process_cpu_s(child)
            except psutil.Error:
                continue  # exited since the last refresh; its time reaches os.times() when reaped
        return total

    def _read(self) -> float:
        if self._closed:
            raise MeterError("CPU time meter closed")
        # A child that has exited but is not yet reaped is in neither sum for a moment; keeping
        # the highest value seen holds the total steady until the reap brings its time back.
        self.cpu_s = max(self.cpu_s, self._tree_cpu_s() - self._start_s)
        return self.cpu_s * self.watts_per_core

    def background(self) -> None:
        self._tree.refresh(max_age_s=0.05)

    def close(self) -> None:
        self._closed = True
