"""A counter never invents energy: bad reads of ``energy_uj`` in a measured cell.

The issue: one bad read of a RAPL counter sitting at 200 kJ (``0``, ``-5``, a value beyond
``max_energy_range_uj``, a huge value at the window's end) used to turn a 60 J cell into 200 kJ
or more, recorded as "measured" with no warning. Each test runs a real ``%%carbon`` cell in an
InteractiveShell over a fake powercap tree; the cell runs the counters and breaks them itself,
and the session's sampler reads after every step, so the energy expected is exact.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nbcarbon.footprint import measure
from nbcarbon.meters.base import Anomalies, Channel
from nbcarbon.sampler import Reading
from tests.fakes.powercap import FakePowercap, sampler_reads
from tests.reliability.conftest import fake_session

RANGE_UJ = 262_143_328_850
NEAR_200_KJ = 200_000_000_000
POWER_W = 20.0


def cpu_j(fp) -> float:
    (c,) = [c for c in fp.components if c.component == "cpu"]
    return c.energy_j


def shell_on(tmp_path: Path, make_shell, power_limit_w: float | None = None):
    fake = FakePowercap(tmp_path)
    fake.add_package(0, POWER_W, start_uj=NEAR_200_KJ, power_limit_w=power_limit_w)
    s = fake_session(tmp_path)
    fake.observers.append(sampler_reads(s))
    ip = make_shell(s)
    ip.user_ns["fake"] = fake
    return fake, s, ip


def run(ip, body: str) -> None:
    result = ip.run_cell("%%carbon\n" + body)
    assert result.error_in_exec is None and result.error_before_exec is None


@pytest.mark.parametrize("power_limit_w", [None, 35.0], ids=["no-limit", "limit-35W"])
def test_bad_reads_for_part_of_a_cell_are_skipped_and_named(tmp_path: Path, make_shell,
                                                            power_limit_w) -> None:
    fake, s, ip = shell_on(tmp_path, make_shell, power_limit_w)
    run(ip, "fake.run(0.75)\n"
            "fake.show('intel-rapl:0', '0')\nfake.run(0.5)\n"
            "fake.show('intel-rapl:0', '-5')\nfake.run(0.5)\n"
            f"fake.show('intel-rapl:0', '{RANGE_UJ + 12345}')\nfake.run(0.5)\n"
            "fake.restore('intel-rapl:0')\nfake.run(0.75)\n")
    fp = s.records[-1]
    truth_j = POWER_W * 3.0
    # The good readings before and after the bad spell bracket the energy: all 60 J, exactly.
    assert cpu_j(fp) == pytest.approx(truth_j, abs=1e-4)
    assert fp.status == "ok"
    (skipped,) = [w for w in fp.warnings if "implausible reading(s) skipped" in w]
    # 50 observer reads in each bad phase, plus whatever the sampler thread read in them.
    m = re.fullmatch(r"cpu package-0 \(rapl-counter\): (\d+) implausible reading\(s\) skipped, "
                     r"not counted \((\d+) below zero; (\d+) beyond the counter's range; (\d+) "
                     r"step\(s\) more than the zone can draw \(last: counter read 0 J after 200 kJ\)\)",
                     skipped)
    assert m, skipped
    total, below, beyond, jumps = (int(g) for g in m.groups())
    assert total == below + beyond + jumps and min(below, beyond, jumps) >= 50
    assert not any("reset" in w for w in fp.warnings)
    assert not any(str(tmp_path) in w or "intel-rapl" in w for w in fp.warnings)


@pytest.mark.parametrize("shown", ["0", "-5", str(RANGE_UJ + 1), str(NEAR_200_KJ + 50 * 10**9)],
                         ids=["zero", "negative", "beyond-range", "huge-jump"])
def test_a_bad_value_at_the_windows_end_is_never_counted(tmp_path: Path, make_shell,
                                                         shown: str) -> None:
    fake, s, ip = shell_on(tmp_path, make_shell)
    run(ip, f"fake.run(1.5)\nfake.show('intel-rapl:0', '{shown}')\nfake.run(1.5)\n")
    fp = s.records[-1]
    # Counted up to the last good reading (1.5 s), never the bad value: below the 60 J truth.
    assert cpu_j(fp) == pytest.approx(POWER_W * 1.5, abs=1e-4)
    assert any("partly measured: the reading at the window's end was implausible" in w
               for w in fp.warnings)
    assert any("implausible reading(s) skipped" in w for w in fp.warnings)
    # The counter comes back: the next cell is exact and clean again.
    fake.restore("intel-rapl:0")
    run(ip, "fake.run(0.5)\n")
    again = s.records[-1]
    assert cpu_j(again) == pytest.approx(POWER_W * 0.5, abs=1e-4)
    assert again.warnings == ()


def test_a_garbage_range_keeps_the_sampler_at_its_interval(tmp_path: Path, make_shell) -> None:
    fake = FakePowercap(tmp_path)
    fake.add_package(0, POWER_W, start_uj=NEAR_200_KJ, core=False)
    (fake.zones["intel-rapl:0"].path / "max_energy_range_uj").write_text("-1\n")
    s = fake_session(tmp_path, interval_s=1.0)
    ip = make_shell(s)
    ip.user_ns["fake"] = fake
    run(ip, "fake.run(0.5)\n")
    assert s.sampler.period_s() == 1.0  # not MIN_PERIOD_S: 3% of a core for nothing
    assert cpu_j(s.records[-1]) == pytest.approx(POWER_W * 0.5, abs=1e-4)


CPU = Channel("cpu", "package-0", "rapl-counter", "machine")


def test_measure_says_when_a_boundary_reading_was_refused() -> None:
    clean = Anomalies(jumps=2)
    held = Anomalies(jumps=3, held=True, last_jump="counter read 0 J after 200 kJ")
    # The start was refused: the energy runs from the last good reading, 0.4 s earlier.
    m = measure([CPU], [Reading(100.0, 9.6, anomalies=held)], [Reading(130.0, 11.0, anomalies=held)],
                1.0)
    assert m.components[0].energy_j == 30.0
    assert any("start was implausible" in w and "0.40 s before the window" in w for w in m.warnings)
    # The end was refused: the energy stops at the last good reading and says how much it covers.
    m = measure([CPU], [Reading(100.0, 10.0, anomalies=clean)],
                [Reading(110.0, 10.5, anomalies=held)], 1.0)
    assert m.components[0].energy_j == 10.0
    (partly,) = [w for w in m.warnings if "partly measured" in w]
    assert "end was implausible" in partly and "covers 0.50 s of 1.00 s" in partly
    assert any("1 implausible reading(s) skipped" in w for w in m.warnings)
    # Nothing refused in the window: no warning at all.
    assert measure([CPU], [Reading(1.0, 0.0, anomalies=clean)],
                   [Reading(2.0, 1.0, anomalies=clean)], 1.0).warnings == []
