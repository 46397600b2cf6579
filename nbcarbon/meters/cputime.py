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
from dataclasses import dataclass, replace
from pathlib import Path

from nbcarbon.errors import MeterError
from nbcarbon.meters.base import CLOCK_TICK_S, Channel, LockedMeter
from nbcarbon.meters.lazy import psutil

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
            from nbcarbon.datafiles import read_text

            text = read_text("cpu_power.csv")
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


_TOKEN_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyz")


def _matches(pattern: str, model_name: str, normalised: bool = False) -> bool:
    """Case-insensitive whole-token substring: "i7-8700" matches "i7-8700 CPU", not "i7-8700K".

    ``normalised``: ``model_name`` is already :func:`_normalise`'d (the table is scanned with one
    name). String search rather than one regular expression per row: compiling them all cost
    ~1.5 ms of every kernel's start.
    """
    needle = _normalise(pattern)
    text = model_name if normalised else _normalise(model_name)
    if not needle:
        return False
    start = text.find(needle)
    while start >= 0:
        end = start + len(needle)
        if (start == 0 or text[start - 1] not in _TOKEN_CHARS) and \
                (end == len(text) or text[end] not in _TOKEN_CHARS):
            return True
        start = text.find(needle, start + 1)
    return False


def watts_per_core(model_name: str | None) -> tuple[float, str]:
    """Power per busy core for a CPU model name, and where the figure came from.

    The longest matching table entry wins, so a specific model beats a shorter pattern.
    """
    if model_name:
        name = _normalise(model_name)
        hits = [row for row in cpu_power_table() if _matches(row.match, name, normalised=True)]
        if hits:
            row = max(hits, key=lambda r: len(r.match))
            return row.watts_per_core, (
                f"{row.match}: {row.tdp_w:g} W TDP / {row.cores} cores, {row.source}"
            )
    return DEFAULT_WATTS_PER_CORE, DEFAULT_SOURCE


#: Said in records where processes that leave the tree cannot be looked for (no ``/proc``).
CAVEAT_NO_PROC = ("background processes that leave the process tree before nbcarbon sees them "
                  "(e.g. sh -c 'job &') are not counted on this platform")
#: Said in records once such a process was seen where it cannot be told apart from others'.
CAVEAT_UNFOLLOWED = ("a background process left the process tree (e.g. sh -c 'job &'); its CPU time and "
                     "memory are not counted, since this process leads no session or process group "
                     "to follow it by")


class ChildProcesses:
    """A cached list of the processes a process started, refreshed off the cell's path.

    ``refresh`` walks the tree (milliseconds with many processes); readers take
    :meth:`snapshot`, swapped in whole, so no lock is needed between the two.

    Followed are the live descendants, and processes that belong to the tree but have left it:
    ``sh -c 'job &'`` runs ``job`` and exits, so ``job`` is re-parented to init (or a subreaper)
    and no walk from the kernel reaches it. Such a process is kept once seen, and with
    ``follow_detached`` (Linux) it is also found by the kernel's session when the kernel leads
    one (a Jupyter kernel does: jupyter_client starts it with ``start_new_session``), or by its
    process group when it leads that (a script started from an interactive shell); see
    :class:`DetachedScan`. What cannot be followed is stated through :attr:`caveat`.
    """

    def __init__(self, pid: int, follow_detached: bool = True, proc: Path = Path("/proc")) -> None:
        self.pid = pid
        self._process: psutil.Process | None = None
        if not os.path.isdir(f"{proc}/{pid}"):  # no /proc to tell: psutil says whether it runs
            self._process = psutil.Process(pid)
        self._proc = proc
        # (every followed process, the detached roots among them): one tuple, swapped whole
        self._followed: tuple[tuple[psutil.Process, ...], frozenset[psutil.Process]] = ((), frozenset())
        self._refreshed_s = -float("inf")
        self.follow_detached = follow_detached
        self._scan = DetachedScan.open(pid, proc) if follow_detached else None

    @property
    def process(self) -> psutil.Process:
        """The process itself, as psutil sees it (made on first use: see :mod:`.lazy`)."""
        if self._process is None:
            self._process = psutil.Process(self.pid)
        return self._process

    @property
    def children(self) -> tuple[psutil.Process, ...]:
        """Every process followed: descendants, detached processes and their descendants."""
        return self._followed[0]

    @property
    def detached(self) -> frozenset[psutil.Process]:
        """The followed processes whose parent is outside the tree (init, a subreaper).

        Nobody in the tree reaps them, so their CPU time never reaches ``os.times()``: a meter
        keeps their last reading when they end (:class:`CpuTimeMeter`).
        """
        return self._followed[1]

    def snapshot(self) -> tuple[tuple[psutil.Process, ...], frozenset[psutil.Process]]:
        """``(children, detached)`` from one refresh (two attribute reads could straddle one)."""
        return self._followed

    @property
    def mode(self) -> str:
        """How detached processes are found: ``session``, ``process group``, ``noticed`` (seen
        but not followed), or ``tree`` (only those seen in the tree before they left it)."""
        if self._scan is None:
            return "tree"
        return self._scan.mode

    @property
    def caveat(self) -> str | None:
        """What records must say this tree misses, or ``None`` when nothing is known missing."""
        if not self.follow_detached:
            return None
        if self._scan is None:
            return CAVEAT_NO_PROC
        return CAVEAT_UNFOLLOWED if self._scan.missed else None

    def refresh(self, max_age_s: float = 0.0, scan: bool = False) -> None:
        """List the followed processes again, unless that was done less than ``max_age_s`` ago.

        The CPU-time and memory models share one list; the age check makes the second
        meter's upkeep free. ``scan`` also looks for detached processes (:class:`DetachedScan`);
        only the sampler's background upkeep asks for it, so opening a meter stays fast.
        """
        now = time.monotonic()
        if now - self._refreshed_s < max_age_s:
            return
        self._refreshed_s = now
        previous = self._followed[0]
        known = {p.pid: p for p in previous}
        tree = self._walk(self.pid, known)
        if tree is None:
            try:
                tree = {p.pid: p for p in self.process.children(recursive=True)}
            except psutil.NoSuchProcess:
                tree = {}
        # Processes followed before that the walk no longer reaches: their parent exited. They
        # stay followed while they run, with whatever they start.
        outside: dict[int, psutil.Process] = {}
        for p in previous:
            if p.pid not in tree and p.pid not in outside and _running(p):
                outside[p.pid] = p
        if scan and self._scan is not None and self._scan.needed(self._signature(tree, outside)):
            for pid in self._scan.scan(set(tree) | set(outside)):
                try:
                    outside.setdefault(pid, psutil.Process(pid))
                except psutil.Error:
                    continue  # ended already
        for root in list(outside.values()):
            below = self._walk(root.pid, known)
            if below is None:
                try:
                    below = {c.pid: c for c in root.children(recursive=True)}
                except psutil.Error:
                    below = {}
            for pid, process in below.items():
                if pid not in tree:
                    outside.setdefault(pid, process)
        followed = set(tree) | set(outside) | {self.pid}
        detached = []
        for p in outside.values():
            try:
                parent = p.ppid()
            except psutil.Error:
                continue  # ended since: its last reading stands (see CpuTimeMeter)
            if parent not in followed:
                detached.append(p)
        self._followed = (tuple(tree.values()) + tuple(outside.values()), frozenset(detached))

    def _signature(self, tree: dict[int, psutil.Process], outside: dict[int, psutil.Process]) -> object:
        """What changes whenever a process of the tree may have been left behind.

        A process is detached when its parent ends; that parent is then a zombie in the walk,
        or has been reaped, which adds its page faults and CPU time to its reaper's "waited-for
        children" counters. The reaper is this process or one it follows, so comparing the walk's
        pids and those processes' states and counters tells, for one stat read per followed
        process, whether a scan can find anything (the CPU-time and memory models already read
        each followed process four times in the same two seconds).
        """
        counters = [_reaped(self.pid, self._proc)]
        counters.extend(_reaped(pid, self._proc) for pid in sorted({*tree, *outside}))
        return frozenset(tree), frozenset(outside), tuple(counters)

    def _walk(self, pid: int, known: dict[int, psutil.Process]) -> dict[int, psutil.Process] | None:
        """The live descendants of ``pid`` by the ``children`` files, reusing known objects."""
        pids = _descendant_pids(pid, self._proc)
        if pids is None:  # no /proc/PID/task/TID/children (not Linux, or an old kernel)
            return None
        out: dict[int, psutil.Process] = {}
        for child in pids:
            process = known.get(child)
            if process is None:
                try:
                    process = psutil.Process(child)
                except psutil.Error:
                    continue  # exited already
            out[child] = process
        return out


def _running(process: psutil.Process) -> bool:
    """Whether this very process still runs (not a later one given the same pid)."""
    try:
        return process.is_running()
    except psutil.Error:
        return False


def _stat(pid: int | str, proc: Path) -> tuple[int, int, int] | None:
    """``(ppid, process group, session)`` of a process from ``/proc/PID/stat``, None if it is gone."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    fields = data[data.rfind(b")") + 2:].split()
    try:
        return int(fields[1]), int(fields[2]), int(fields[3])
    except (IndexError, ValueError):
        return None


def _reaped(pid: int, proc: Path) -> bytes | None:
    """The state and "waited-for children" fields of ``/proc/PID/stat`` (cminflt, cmajflt,
    cutime, cstime), as raw text to compare: the state turns Z when the process ends, and the
    counters grow each time it reaps a child."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    return b" ".join(fields[0:1] + fields[8:9] + fields[10:11] + fields[13:15])


class DetachedScan:
    """Finds processes that belong to a process but have left its tree, cheaply, on Linux.

    Which processes belong is read from what ``/proc/PID/stat`` keeps after re-parenting:

    * ``session``: the process leads its session (a Jupyter kernel). Every member of that
      session was started by it or its descendants, unless one called ``setsid``: followed.
    * ``process group``: it leads its group but not its session (a script from an interactive
      shell). Members re-parented out of the group are followed; the shell's other members of
      a pipeline (``python x.py | tee log``, children of the shell) are not. Where the parent of
      this process is a subreaper other than init, detached members go to it and are missed.
    * ``noticed``: it leads neither (a Dask worker, a script run by ``sh -c``). Its group is
      shared with processes it did not start, so a re-parented member could be anyone's:
      nothing is followed, and :attr:`missed` says once that such a process appeared.

    Cost: reading every process's stat file every 2 s would cost about 13 us per process in a
    quiet benchmark and several times that in the sampler's thread on a busy machine (1-4 ms
    with 86 processes: 0.05-0.2% of a core, over the sampler's whole idle budget). Even
    listing ``/proc`` and reading only new pids cost 0.02% of a core on a machine where other
    programs start processes all the time. So a scan runs only when the tree's signature says a
    process of it may have been left behind (:meth:`ChildProcesses._signature`: one stat read
    per followed process), and lists ``/proc`` only if the last pid the kernel handed out
    (``/proc/loadavg``) moved since the last listing; it reads the stat file of each pid that is
    new since then. In the two
    following modes the first scan reads every process once, in the sampler's thread, so that
    processes detached before nbcarbon was loaded are found too; in ``noticed`` mode only
    processes created after it was opened count.
    """

    def __init__(self, pid: int, proc: Path, own: tuple[int, int, int]) -> None:
        self.pid = pid
        self.proc = proc
        self._ppid, self._pgrp, self._session = own
        self.mode = "session" if self._session == pid else "process group" if self._pgrp == pid else "noticed"
        self.missed = False
        self._last_pid: bytes | None = None
        self._known: set[int] | None = None
        self._signature: object = None
        if self.mode == "noticed":
            # Only what appears from now on is this process's doing: note what exists (50 us).
            self._last_pid = self._newest_pid()
            self._known = self._listing()

    @classmethod
    def open(cls, pid: int, proc: Path = Path("/proc")) -> DetachedScan | None:
        """A scan for ``pid``, or ``None`` where ``/proc`` cannot tell (not Linux)."""
        own = _stat(pid, proc)
        if own is None or not os.path.exists(f"{proc}/loadavg"):
            return None
        return cls(pid, proc, own)

    def _newest_pid(self) -> bytes | None:
        try:
            with open(f"{self.proc}/loadavg", "rb") as f:
                return f.read().rsplit(None, 1)[-1]
        except (OSError, IndexError):
            return None

    def _listing(self) -> set[int] | None:
        try:
            return {int(name) for name in os.listdir(self.proc) if name.isdigit()}
        except OSError:
            return None

    def needed(self, signature: object) -> bool:
        """Whether to scan, given the tree's signature (:meth:`ChildProcesses._signature`): on
        the first call in the following modes, then only when the signature changed."""
        first = self._signature is None and self.mode != "noticed"
        changed = signature != self._signature
        self._signature = signature
        return first or changed

    def scan(self, followed: set[int]) -> list[int]:
        """Pids to follow from now on, among processes created since the last scan."""
        newest = self._newest_pid()
        if newest is not None and newest == self._last_pid and self._known is not None:
            return []  # no process was created since the last scan
        current = self._listing()
        if current is None:
            return []
        fresh = current if self._known is None else current - self._known
        self._known = current
        self._last_pid = newest
        found: list[int] = []
        for pid in sorted(fresh):
            if pid == self.pid or pid in followed:
                continue
            stat = _stat(pid, self.proc)
            if stat is None:
                continue
            ppid, pgrp, session = stat
            if ppid == self.pid or ppid in followed:
                found.append(pid)  # a child of the tree that the walk has not listed yet
            elif self.mode == "session":
                if session == self._session:
                    found.append(pid)
            elif pgrp == self._pgrp and (ppid != self._ppid or ppid == 1) and self._reparented(ppid):
                if self.mode == "process group":
                    found.append(pid)
                else:
                    self.missed = True
        return found

    def _reparented(self, ppid: int) -> bool:
        """Whether a group member's parent is outside the group: it was re-parented there (a
        member started by another member, e.g. a pipeline partner's child, has its parent in it)."""
        if ppid <= 1:
            return True
        parent = _stat(ppid, self.proc)
        return parent is None or parent[1] != self._pgrp


def _descendant_pids(pid: int, proc: Path = Path("/proc")) -> list[int] | None:
    """Descendants of ``pid`` from Linux's per-thread ``children`` files.

    Why not psutil's ``children(recursive=True)``: it reads every process on the machine
    (about 1 ms each refresh with a few dozen processes, more on a busy host), where these files
    list only this tree. ``None`` when the files do not exist, so the caller can fall back.
    Plain ``os`` calls rather than ``pathlib``: this runs at every upkeep pass of the sampler,
    and a kernel has a dozen threads, each a file (about 3x cheaper so).
    """
    found: list[int] = []
    stack = [pid]
    first = True
    root = os.fspath(proc)
    while stack:
        current = stack.pop()
        task_dir = f"{root}/{current}/task"
        try:
            tasks = os.listdir(task_dir)
        except OSError:
            if first:
                return None
            continue
        for task in tasks:
            # Missing (an old kernel) or refused (a restricted /proc) for the process itself:
            # these files cannot tell, psutil must (None). For a descendant: it has just exited.
            try:
                fd = os.open(f"{task_dir}/{task}/children", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                if first:
                    return None
                continue
            try:
                chunks = []
                while True:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
            except OSError:
                if first:
                    return None
                continue
            finally:
                os.close(fd)
            for word in b"".join(chunks).split():
                child = int(word)
                found.append(child)
                stack.append(child)
        first = False
    return found


def _process_cpu_s(process: psutil.Process) -> float:
    """CPU seconds of a live process and of the children it has reaped."""
    t = process.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


class StatFiles:
    """The CPU seconds of followed processes from their ``/proc/PID/stat``, files kept open.

    Why: every window's two boundaries read each child's CPU time, and psutil opens, reads and
    parses the file and builds a named tuple each time (~15-20 us a child); a kept descriptor and
    one ``pread`` cost a fraction of that. A descriptor stays bound to the process it was opened
    for: once that process has ended, reads fail (ESRCH) rather than reading a new process that
    reused its pid. Where there is no ``/proc`` (macOS), psutil answers.
    """

    def __init__(self, proc: Path) -> None:
        self._proc = os.fspath(proc)
        self._fds: dict[psutil.Process, int] = {}
        self._usable = os.path.isdir(self._proc)

    def cpu_s(self, process: psutil.Process) -> float:
        """As :func:`_process_cpu_s`; raises ``psutil.NoSuchProcess`` for a process gone."""
        if not self._usable:
            return _process_cpu_s(process)
        fd = self._fds.get(process)
        if fd is None:
            try:
                fd = os.open(f"{self._proc}/{process.pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return _process_cpu_s(process)  # psutil says what is wrong
            self._fds[process] = fd
        try:
            data = os.pread(fd, 2048, 0)
            fields = data[data.rfind(b")") + 2:].split()
            # utime, stime, cutime, cstime: fields 14-17 of proc(5), after the command name
            return (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) * CLOCK_TICK_S
        except (OSError, IndexError, ValueError):
            self.forget(process)
            raise psutil.NoSuchProcess(process.pid) from None

    def keep_only(self, processes: object) -> None:
        """Close the files of processes no longer followed (``processes`` supports ``in``)."""
        for process in [p for p in self._fds if p not in processes]:  # type: ignore[operator]
            self.forget(process)

    def forget(self, process: psutil.Process) -> None:
        fd = self._fds.pop(process, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        for process in list(self._fds):
            self.forget(process)


class CpuTimeMeter(LockedMeter):
    """Energy of the process tree's CPU time at a fixed power per busy core.

    ``states_caveat`` makes this meter's channel carry what the tree cannot follow
    (:attr:`ChildProcesses.caveat`); when two meters share a tree, one says it.
    """

    def __init__(self, pid: int, watts_per_core: float, source: str = "",
                 tree: ChildProcesses | None = None, states_caveat: bool = True) -> None:
        super().__init__(Channel("cpu", "process tree", "cpu-time-model", "process"))
        if watts_per_core < 0:
            raise ValueError(f"watts_per_core must be >= 0, not {watts_per_core}")
        self.pid = pid
        self.watts_per_core = watts_per_core
        self.source = source
        self._own = pid == os.getpid()
        self._closed = False
        self._states_caveat = states_caveat
        # Detached processes' last CPU seconds (a dict while they run, summed once they end):
        # nobody in the tree reaps them, so os.times() never brings their time back.
        self._detached_s: dict[psutil.Process, float] = {}
        self._ended_s = 0.0
        try:
            self._tree = tree if tree is not None else ChildProcesses(pid)
        except psutil.NoSuchProcess as err:
            raise MeterError(f"CPU time of process {pid}: no such process") from err
        self._tree.refresh()
        self._update_caveat()
        self._stats = StatFiles(self._tree._proc)
        self._children: tuple[psutil.Process, ...] = ()  # the snapshot the files were kept for
        self._start_s = self._tree_cpu_s()
        self.cpu_s = 0.0

    @property
    def tree(self) -> ChildProcesses:
        """The processes this meter follows (shared with the memory model)."""
        return self._tree

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
        children, detached = self._tree.snapshot()
        stats = self._stats
        if children is not self._children:  # a new refresh: let go of processes left behind
            self._children = children
            stats.keep_only(frozenset(children))
        for child in children:
            try:
                cpu_s = stats.cpu_s(child)
            except psutil.Error:
                continue  # exited since the last refresh; its time reaches os.times() when reaped
            if child in detached:
                self._detached_s[child] = cpu_s
            else:
                total += cpu_s
        if self._detached_s:
            gone = [p for p in self._detached_s if p not in detached]
            if gone:
                still = set(children)
                for p in gone:
                    last_s = self._detached_s.pop(p)
                    if p not in still:  # ended: its last reading is all it will ever have used
                        self._ended_s += last_s
            total += sum(self._detached_s.values())
        return total + self._ended_s

    def _read(self) -> float:
        if self._closed:
            raise MeterError("CPU time meter closed")
        # A child that has exited but is not yet reaped is in neither sum for a moment; keeping
        # the highest value seen holds the total steady until the reap brings its time back.
        self.cpu_s = max(self.cpu_s, self._tree_cpu_s() - self._start_s)
        return self.cpu_s * self.watts_per_core

    def background(self) -> None:
        self._tree.refresh(max_age_s=0.05, scan=True)
        self._update_caveat()

    def _update_caveat(self) -> None:
        caveat = self._tree.caveat if self._states_caveat else None
        if caveat != self.channel.caveat:
            self.channel = replace(self.channel, caveat=caveat)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._stats.close()
