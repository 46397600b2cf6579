"""A fake ``/proc/stat`` whose machine-wide busy CPU time moves only when a test says so.

Why a fake: the share of machine-wide energy a cell is charged is its process tree's CPU time
over the machine's busy CPU time, and the real machine's busy time depends on whatever else runs
(other tests, a CI machine kept busy on purpose). A test that wants "nobody else on the machine"
or "another program as busy as the cell" writes exactly that here, synchronously, as the fake
powercap tree does for energy. The kernel's own CPU time is never faked: it is the real one.

:func:`spin` is a busy cell on a fake machine: it burns CPU for a while, advancing a fake
powercap tree by the wall-clock time and this fake by the process's own CPU time (plus what an
outside program would add), so the expected share follows from the run itself on any machine.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class FakeProcStat:
    """A stat file with ``cpus`` CPUs; :meth:`add_busy` adds machine busy seconds (user time)."""

    def __init__(self, path: Path, cpus: int = 2) -> None:
        self.path = Path(path)
        self.cpus = cpus
        self.busy_s = 0.0
        self.idle_s = 1000.0
        self._lock = threading.Lock()
        self._write()

    @classmethod
    def attach(cls, path: Path | str) -> FakeProcStat:
        """The fake another process made, to drive it from here (a kernel's cell)."""
        fake = cls.__new__(cls)
        fake.path = Path(path)
        fake._lock = threading.Lock()
        fields = fake.path.read_text().split("\n", 1)[0].split()
        fake.busy_s = int(fields[1]) / TICKS_PER_S
        fake.idle_s = int(fields[4]) / TICKS_PER_S
        fake.cpus = sum(1 for line in fake.path.read_text().splitlines()
                        if line.startswith("cpu") and line[3:4].isdigit())
        return fake

    def add_busy(self, seconds: float) -> None:
        with self._lock:
            self.busy_s += max(0.0, seconds)
            self._write()

    def _write(self) -> None:
        busy = int(self.busy_s * TICKS_PER_S)
        idle = int(self.idle_s * TICKS_PER_S)
        lines = [f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0"]
        for i in range(self.cpus):
            lines.append(f"cpu{i} {busy // self.cpus} 0 0 {idle // self.cpus} 0 0 0 0 0 0")
        lines += ["intr 0", "ctxt 0", "btime 0", "processes 1", "procs_running 1", "procs_blocked 0"]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.path)


def quiet_stat(directory: Path) -> Path:
    """A stat file of a machine that nobody else uses (busy time never moves): every share is
    the whole, as on a machine with nothing else running."""
    path = Path(directory) / "proc-stat"
    if not path.exists():
        FakeProcStat(path)
    return path


def own_cpu_s() -> float:
    """This process's CPU seconds, with its reaped children (what the CPU-time model counts)."""
    t = os.times()
    return time.process_time() + t.children_user + t.children_system


def spin(seconds: float, rapl: Any, stat: FakeProcStat, outside: float = 0.0,
         step_s: float = 0.01) -> float:
    """Burn CPU for ``seconds`` of wall time; returns the CPU seconds this process used.

    Every ``step_s`` the fake powercap ``rapl`` advances by the wall time passed, and ``stat``
    by the CPU time this process used in it times ``1 + outside``: ``outside=1`` is another
    program as busy as this cell (on a quiet 2-core machine, the other core), ``0`` nobody else.
    """
    start = last_t = time.monotonic()
    start_cpu = last_cpu = own_cpu_s()
    while True:
        now = time.monotonic()
        if now - last_t >= step_s or now - start >= seconds:
            cpu = own_cpu_s()
            rapl.advance(now - last_t)
            stat.add_busy((cpu - last_cpu) * (1.0 + outside))
            last_t, last_cpu = now, cpu
            if now - start >= seconds:
                return cpu - start_cpu
