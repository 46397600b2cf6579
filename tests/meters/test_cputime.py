"""The CPU-time model: busy loops, child processes, and the per-core power table."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from nbcarbon.meters.cputime import (
    DEFAULT_WATTS_PER_CORE,
    CpuTimeMeter,
    cpu_model_name,
    cpu_power_table,
    watts_per_core,
)

W_PER_CORE = 10.0


def _busy(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_busy_loop_energy_is_cpu_seconds_times_power() -> None:
    meter = CpuTimeMeter(os.getpid(), W_PER_CORE)
    assert meter.channel.method == "cpu-time-model"
    assert meter.channel.attribution == "process"
    assert meter.channel.device == "process tree"
    e0 = meter.read()
    _busy(0.5)
    e1 = meter.read()
    assert e1 - e0 == pytest.approx(0.5 * W_PER_CORE, rel=0.15)


def test_sleeping_uses_almost_nothing() -> None:
    meter = CpuTimeMeter(os.getpid(), W_PER_CORE)
    e0 = meter.read()
    time.sleep(0.2)
    assert meter.read() - e0 < 0.05 * W_PER_CORE


_CHILD = "import time\nend = time.process_time() + {s}\nwhile time.process_time() < end: pass\n"


def test_busy_child_is_counted_after_background() -> None:
    meter = CpuTimeMeter(os.getpid(), W_PER_CORE)
    e0 = meter.read()
    child = subprocess.Popen([sys.executable, "-c", _CHILD.format(s=0.6)])
    try:
        proc = psutil.Process(child.pid)
        time.sleep(0.05)
        meter.background()
        deadline = time.monotonic() + 5.0
        while sum(proc.cpu_times()[:2]) < 0.35 and time.monotonic() < deadline:
            time.sleep(0.02)
        alive = meter.read()
        assert alive - e0 >= 0.3 * W_PER_CORE  # the live child's time, before any reap
        child.wait()
        readings = [meter.read() for _ in range(3)]
    finally:
        child.kill()
        child.wait()
    assert readings[0] >= alive
    assert readings == sorted(readings)
    assert readings[-1] - e0 >= 0.5 * W_PER_CORE


def test_exited_unreaped_child_does_not_make_total_dip() -> None:
    meter = CpuTimeMeter(os.getpid(), W_PER_CORE)
    child = subprocess.Popen([sys.executable, "-c", _CHILD.format(s=0.3)])
    proc = psutil.Process(child.pid)
    time.sleep(0.05)
    meter.background()
    readings = []
    deadline = time.monotonic() + 5.0
    while proc.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        readings.append(meter.read())
        time.sleep(0.01)
    readings.append(meter.read())  # exited, not reaped
    child.wait()
    readings.append(meter.read())  # reaped: now in os.times()
    assert readings == sorted(readings)
    assert readings[-1] >= 0.25 * W_PER_CORE


def test_other_process_is_metered_through_psutil() -> None:
    child = subprocess.Popen([sys.executable, "-c", _CHILD.format(s=0.4)])
    try:
        meter = CpuTimeMeter(child.pid, W_PER_CORE)
        e0 = meter.read()
        proc = psutil.Process(child.pid)
        deadline = time.monotonic() + 5.0
        while sum(proc.cpu_times()[:2]) < 0.3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert meter.read() - e0 > 0.2 * W_PER_CORE
    finally:
        child.kill()
        child.wait()


def test_table_is_small_sourced_and_plausible() -> None:
    table = cpu_power_table()
    assert 15 <= len(table) <= 30
    for row in table:
        assert row.source and row.tdp_w > 0 and row.cores > 0
        assert 1.0 <= row.watts_per_core <= 30.0, row


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz", 150 / 20),
        ("Intel(R) Xeon(R) Platinum 8480+", 350 / 56),
        ("Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", 120 / 14),
        ("AMD EPYC 7763 64-Core Processor", 280 / 64),
        ("AMD Ryzen Threadripper PRO 5995WX 64-Cores", 280 / 64),
        ("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", 65 / 6),
    ],
)
def test_known_cpus(model: str, expected: float) -> None:
    value, source = watts_per_core(model)
    assert value == pytest.approx(expected)
    assert "W TDP" in source


@pytest.mark.parametrize(
    "model", [None, "", "AMD EPYC", "Intel(R) Core(TM) i7-8700K CPU @ 3.70GHz"]
)
def test_unknown_cpus_get_the_documented_default(model: str | None) -> None:
    value, source = watts_per_core(model)
    assert value == DEFAULT_WATTS_PER_CORE
    assert "Green Algorithms" in source


def test_cpu_model_name_reads_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\n"
                    "model name\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz\n\nprocessor\t: 1\n")
    assert cpu_model_name(info) == "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz"
    assert cpu_model_name(tmp_path / "absent") is None
    (tmp_path / "arm").write_text("processor\t: 0\nBogoMIPS\t: 50.00\n")
    assert cpu_model_name(tmp_path / "arm") is None


def test_negative_power_is_refused() -> None:
    with pytest.raises(ValueError):
        CpuTimeMeter(os.getpid(), -1.0)


def test_kept_stat_files_read_what_psutil_reads_and_let_go_of_ended_processes() -> None:
    """The boundary's fast path (one pread of a kept /proc/PID/stat) agrees with psutil."""
    from nbcarbon.meters.cputime import StatFiles, _process_cpu_s

    child = subprocess.Popen([sys.executable, "-c", "while 1: pass"])
    try:
        process = psutil.Process(child.pid)
        stats = StatFiles(Path("/proc"))
        time.sleep(0.5)
        ours, theirs = stats.cpu_s(process), _process_cpu_s(process)
        assert ours > 0.0 and abs(ours - theirs) <= 0.05  # read an instant apart, 10 ms ticks
        assert stats.cpu_s(process) >= ours  # the same kept file, read again
    finally:
        child.kill()
        child.wait()
    # Ended and reaped: the kept file now fails, and the process counts as ended.
    with pytest.raises(psutil.NoSuchProcess):
        stats.cpu_s(process)
    assert stats._fds == {}
    stats.keep_only(frozenset())
