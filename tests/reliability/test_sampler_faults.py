"""A meter that raises inside the sampler thread (a bug, not a hardware error): the cell completes,
the footprint says what is missing, the user hears it once, and the next cell measures again."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from nbcarbon.meters.base import Channel, LockedMeter
from nbcarbon.meters.probe import ProbeResult
from tests.reliability.conftest import fake_session


class FlakyCounter(LockedMeter):
    """A counter at a known power whose reads raise a non-MeterError while ``broken`` says so."""

    def __init__(self, broken: str = "never") -> None:
        super().__init__(Channel("gpu", "gpu0", "nvml-counter", "machine"))
        self.broken = broken  # never | thread | always
        self.total_j = 0.0

    def _read(self) -> float:
        in_thread = threading.current_thread().name == "nbcarbon-sampler"
        if self.broken == "always" or (self.broken == "thread" and in_thread):
            raise OSError(5, "Input/output error", "/home/alice/.secret/driver-state")
        self.total_j += 1.0
        return self.total_j


def session_with(tmp_path: Path, meter: FlakyCounter):
    def probe(root: Path, nvml: object = None) -> ProbeResult:
        return ProbeResult([meter], [])

    session = fake_session(tmp_path, probe_fn=probe)
    # A machine-wide counter with no share meter would be "charged whole" in every record:
    # true, but these tests are about read failures, so they charge machine-wide as such.
    session.set_attribution("machine")
    return session


def test_meter_raising_in_the_thread_only(tmp_path: Path, make_shell, capsys) -> None:
    meter = FlakyCounter("thread")
    s = session_with(tmp_path, meter)
    ip = make_shell(s)
    result = ip.run_cell("%%carbon\nimport time\ntime.sleep(0.3)\n'v'")
    assert result.result == "v" and s.sampler.running
    fp = s.records[-1]
    (c,) = fp.components
    assert c.energy_j == 1.0  # the boundaries read fine: measured
    assert any("background read(s) failed" in w for w in fp.warnings)
    assert capsys.readouterr().err.count("could not be read") == 1


def test_meter_raising_everywhere_then_recovering(tmp_path: Path, make_shell, capsys) -> None:
    meter = FlakyCounter()
    s = session_with(tmp_path, meter)
    ip = make_shell(s)
    ip.user_ns["meter"] = meter
    result = ip.run_cell("%%carbon\nimport time\nmeter.broken = 'always'\ntime.sleep(0.2)\n'v'")
    assert result.result == "v" and result.success
    broken = s.records[-1]
    assert any("gpu gpu0" in w and "OSError" in w for w in broken.warnings)
    ip.run_cell("%%carbon\nx = 1")  # still broken: measured as far as possible, no second notice
    err = capsys.readouterr().err
    assert err.count("could not be read") == 1
    meter.broken = "never"
    ip.run_cell("%%carbon\ntime.sleep(0.1)")
    healed = s.records[-1]
    assert healed.warnings == () and healed.components[0].energy_j > 0
    assert s.sampler.running


def test_meter_error_text_names_no_path(tmp_path: Path, make_shell) -> None:
    meter = FlakyCounter("always")
    s = session_with(tmp_path, meter)
    ip = make_shell(s)
    ip.run_cell("%%carbon\n1")
    fp = s.records[-1]
    assert fp.warnings
    assert not any("/home/alice" in w or ".secret" in w for w in fp.warnings), fp.warnings


@pytest.mark.parametrize("exc", [RecursionError("deep"), MemoryError(), ZeroDivisionError("x")])
def test_any_exception_from_a_meter_is_contained(tmp_path: Path, exc: Exception) -> None:
    class Raising(FlakyCounter):
        def _read(self) -> float:
            raise exc

    s = session_with(tmp_path, Raising())
    w = s.begin()
    fp = s.end(w)
    s.close()
    assert fp.components == () and fp.warnings
