"""The process-tree models where /proc is missing (macOS) or restricted: psutil alone follows
the tree, records say what cannot be followed, and probe() gets there too."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from nbcarbon.meters import probe
from nbcarbon.meters.cputime import CAVEAT_NO_PROC, ChildProcesses, CpuTimeMeter, _descendant_pids
from nbcarbon.meters.memory import MemoryModelMeter

W_PER_CORE = 10.0
_BUSY = "import time\nend = time.process_time() + {s}\nwhile time.process_time() < end: pass\n"
_HOLDER = "import time\nb = b'x' * 150_000_000\nprint('ready', flush=True)\ntime.sleep(5)\n"


def _restricted_proc(tmp_path: Path) -> Path:
    """A /proc whose own-process ``children`` files cannot be read (here: not files at all)."""
    proc = tmp_path / "proc"
    pid = os.getpid()
    for tid in (pid, pid + 1):
        (proc / str(pid) / "task" / str(tid) / "children").mkdir(parents=True)
    return proc


def test_without_children_files_the_walk_says_it_cannot_tell(tmp_path: Path) -> None:
    assert _descendant_pids(os.getpid(), tmp_path / "missing") is None
    assert _descendant_pids(os.getpid(), _restricted_proc(tmp_path)) is None  # not "no children"


@pytest.mark.parametrize("where", ["missing", "restricted"])
def test_a_busy_child_is_followed_through_psutil(tmp_path: Path, where: str) -> None:
    proc = tmp_path / "missing" if where == "missing" else _restricted_proc(tmp_path)
    tree = ChildProcesses(os.getpid(), proc=proc)
    assert tree.mode == "tree" and tree.caveat == CAVEAT_NO_PROC
    meter = CpuTimeMeter(os.getpid(), W_PER_CORE, tree=tree)
    assert meter.channel.caveat == CAVEAT_NO_PROC  # every record says what it cannot follow
    e0 = meter.read()
    child = subprocess.Popen([sys.executable, "-c", _BUSY.format(s=0.6)])
    try:
        busy = psutil.Process(child.pid)
        time.sleep(0.05)
        meter.background()
        assert child.pid in {p.pid for p in tree.children}
        deadline = time.monotonic() + 5.0
        while sum(busy.cpu_times()[:2]) < 0.35 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert meter.read() - e0 >= 0.3 * W_PER_CORE  # the live child's time, before any reap
        child.wait()
    finally:
        child.kill()
        child.wait()
    assert meter.read() - e0 >= 0.5 * W_PER_CORE


def test_child_memory_is_followed_through_psutil(tmp_path: Path) -> None:
    meter = MemoryModelMeter(os.getpid(), tree=ChildProcesses(os.getpid(), proc=tmp_path / "missing"))
    child = subprocess.Popen([sys.executable, "-c", _HOLDER], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        meter.read()
        alone_w = meter.power_w
        meter.background()
        meter.read()
        assert meter.power_w - alone_w >= 0.14 * 0.375
    finally:
        child.kill()
        child.wait()


def test_probe_without_proc_runs_the_models_on_psutil(tmp_path: Path) -> None:
    result = probe(tmp_path / "no-powercap", use_gpu=False, proc=tmp_path / "no-proc",
                   cpuinfo_path=tmp_path / "no-cpuinfo", platform="darwin", machine="x86_64")
    cpu, memory = result.meters
    assert (cpu.channel.method, memory.channel.method) == ("cpu-time-model", "memory-model")
    assert cpu.channel.caveat == CAVEAT_NO_PROC and memory.channel.caveat is None  # said once
    assert "12 W per core" in result.notes[0]  # no cpuinfo: the documented default
    cpu.read()
    memory.read()
