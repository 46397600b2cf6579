"""RAPL faults in a measured cell: wraps, resets, vanishing and unreadable zones, duplicate zones.

Each test runs a real ``%%carbon`` cell in an InteractiveShell whose session reads a fake
powercap tree; the cell itself runs the counters and breaks the hardware half-way, and the
session's sampler reads after every step of the fake, so the energy expected is exact whatever
the machine's load. The cell's value must be intact, nothing measured before the fault lost,
and the record must say what is missing, without the tree's path.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fakes.powercap import FakePowercap, sampler_reads
from tests.reliability.conftest import fake_session

HALF = "fake.run(0.4)\n"


def cpu(fp, device: str = "package-0"):
    (c,) = [c for c in fp.components if c.component == "cpu" and c.device == device]
    return c


def run(ip, body: str, fake: FakePowercap):
    ip.user_ns["fake"] = fake
    result = ip.run_cell("%%carbon\n" + body)
    assert result.error_in_exec is None and result.error_before_exec is None
    return result


def test_counter_wrapping_several_times_in_one_cell(tmp_path: Path, make_shell) -> None:
    fake = FakePowercap(tmp_path)
    fake.add_package(0, 30.0, range_uj=5_000_000, power_limit_w=60.0)  # wraps every 1/6 s
    s = fake_session(tmp_path, interval_s=1.0)
    fake.observers.append(sampler_reads(s))
    ip = make_shell(s)
    result = run(ip, "fake.run(1.2)\n'value'", fake)
    assert result.result == "value"
    fp = s.records[-1]
    (meter,) = [m for m in s.sampler.meters if m.channel.device == "package-0"]
    assert meter.wraps >= 7  # 36 J through a 5 J counter
    assert cpu(fp).energy_j == pytest.approx(30.0 * 1.2, abs=1e-4)
    assert fp.warnings == ()


def test_counter_going_backwards_is_a_reset_not_a_wrap(tmp_path: Path, make_shell) -> None:
    fake = FakePowercap(tmp_path)
    fake.add_package(0, 30.0, power_limit_w=60.0, start_uj=200_000_000_000)
    s = fake_session(tmp_path)
    fake.observers.append(sampler_reads(s))
    ip = make_shell(s)
    result = run(ip, HALF + "fake.reset('intel-rapl:0')\n" + HALF + "'value'", fake)
    assert result.result == "value"
    fp = s.records[-1]
    # Read at the instant it restarted, nothing is lost; above all, a range is not added.
    assert cpu(fp).energy_j == pytest.approx(30.0 * 0.8, abs=1e-4)
    assert fp.status == "ok"
    assert any("package-0" in w and "counter reset during the window" in w for w in fp.warnings)


@pytest.mark.parametrize("fault", ["vanish", "unreadable", "garbage"])
def test_zone_failing_mid_cell_keeps_the_energy_before(tmp_path: Path, make_shell, capsys,
                                                       kernfs_permissions, fault: str) -> None:
    fake = FakePowercap(tmp_path)
    fake.add_package(0, 30.0, power_limit_w=60.0, dram=5.0)
    breaking = {"vanish": "fake.vanish('intel-rapl:0')",
                "unreadable": "fake.make_unreadable('intel-rapl:0')",
                "garbage": "fake.garbage('intel-rapl:0')"}[fault]
    s = fake_session(tmp_path)
    fake.observers.append(sampler_reads(s))
    ip = make_shell(s)
    result = run(ip, HALF + breaking + "\n" + HALF + "'value'", fake)
    assert result.result == "value"
    broken = s.records[-1]
    err = capsys.readouterr().err
    run(ip, "fake.run(0.2)", fake)  # still broken: no second notice
    assert "could not be read" not in capsys.readouterr().err
    fake.restore("intel-rapl:0")
    fake.make_unreadable("intel-rapl:0", 0o444)
    run(ip, "fake.run(0.3)", fake)
    healed = s.records[-1]
    # The energy up to the fault (0.4 s at 30 W) is kept, not zero and not the whole cell.
    assert cpu(broken).energy_j == pytest.approx(0.4 * 30.0, abs=1e-4)
    assert any("package-0" in w and "partly measured" in w for w in broken.warnings)
    dram = [c for c in broken.components if c.component == "dram"]
    assert dram and dram[0].energy_j == pytest.approx(5.0 * 0.8, abs=1e-4)
    assert err.count("could not be read") == 1
    assert not any(str(tmp_path) in w or "intel-rapl" in w for w in broken.warnings)
    # Measuring goes on where the zone comes back: the next cell is whole again. The sampler
    # thread may still be finishing a read of the broken zone as the cell opens (it reopens the
    # file then): that read is counted as failed, and says so, but costs the cell no energy.
    assert [w for w in healed.warnings if "background read(s) failed" not in w] == []
    assert not any("partly measured" in w or "not measured" in w for w in healed.warnings)
    assert cpu(healed).energy_j == pytest.approx(0.3 * 30.0, abs=1e-4)


def test_duplicate_zones_count_each_package_once(tmp_path: Path, make_shell) -> None:
    fake = FakePowercap(tmp_path)
    fake.add_package(0, 20.0, dram=3.0, core=True, uncore=True, mmio=True, power_limit_w=60.0)
    fake.add_package(1, 10.0, mmio=True, power_limit_w=60.0)
    fake.add_psys(50.0)
    s = fake_session(tmp_path)
    ip = make_shell(s)
    run(ip, "fake.run(0.6)", fake)
    fp = s.records[-1]
    keys = sorted((c.component, c.device) for c in fp.components)
    assert keys == [("cpu", "package-0"), ("cpu", "package-1"), ("dram", "package-0")]
    assert cpu(fp, "package-0").energy_j == pytest.approx(20.0 * 0.6, abs=1e-4)
    assert cpu(fp, "package-1").energy_j == pytest.approx(10.0 * 0.6, abs=1e-4)


def test_sampler_keeps_running_after_a_zone_is_gone(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path)
    fake.add_package(0, 30.0, power_limit_w=60.0)
    s = fake_session(tmp_path)
    w = s.begin()
    fake.vanish("intel-rapl:0")
    errors, deadline = s.sampler.error_counts()[0], time.monotonic() + 60.0
    while s.sampler.error_counts()[0] < errors + 2:  # the thread read the missing zone twice
        assert time.monotonic() < deadline, "the sampler thread stopped reading"
        time.sleep(0.01)
    assert s.sampler.running
    fp = s.end(w)
    s.close()
    assert fp.warnings and s.sampler is None
