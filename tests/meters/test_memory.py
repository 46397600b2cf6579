"""The memory model: power follows the resident memory of the process tree."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from nbcarbon.errors import MeterError
from nbcarbon.meters.memory import MemoryModelMeter

MB = 1_000_000


def _rate_w(meter: MemoryModelMeter, seconds: float) -> float:
    t0 = time.monotonic()
    e0 = meter.read()
    time.sleep(seconds)
    e1 = meter.read()
    return (e1 - e0) / (time.monotonic() - t0)


def test_energy_rate_rises_with_allocated_memory() -> None:
    meter = MemoryModelMeter(os.getpid())
    assert meter.channel.method == "memory-model" and meter.channel.component == "memory"
    before_w = _rate_w(meter, 0.2)
    assert before_w == pytest.approx(meter.mem_bytes / 1e9 * 0.375, rel=0.2)
    block = b"x" * (200 * MB)  # touched pages, unlike bytearray(n)
    meter.read()
    after_w = _rate_w(meter, 0.2)
    assert len(block) == 200 * MB
    assert after_w - before_w == pytest.approx(0.2 * 0.375, rel=0.25)


_HOLDER = "import time\nb = b'x' * 150_000_000\nprint('ready', flush=True)\ntime.sleep(5)\n"


def test_child_memory_is_counted_after_background() -> None:
    meter = MemoryModelMeter(os.getpid())
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
    meter.read()  # the child is gone: reading still works
    assert meter.read() >= 0


def test_closed_or_missing_process_raises() -> None:
    meter = MemoryModelMeter(os.getpid())
    meter.close()
    with pytest.raises(MeterError):
        meter.read()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with pytest.raises(MeterError):
        MemoryModelMeter(gone.pid)
