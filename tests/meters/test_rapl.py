"""RAPL meters against a fake powercap tree whose counters advance at a known power."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from nbcarbon.errors import MeterError
from nbcarbon.meters.base import Channel
from nbcarbon.meters.rapl import FLOOR_POWER_W, RaplMeter, find_zones, open_rapl
from tests.fakes.powercap import FakePowercap, step


@pytest.fixture
def fake(tmp_path: Path) -> FakePowercap:
    return FakePowercap(tmp_path / "powercap")


def _cpu(device: str = "package-0") -> Channel:
    return Channel("cpu", device, "rapl-counter", "machine")


def test_find_zones_keeps_packages_and_dram_once(fake: FakePowercap) -> None:
    fake.add_package(0, 30.0, dram=5.0, core=True, uncore=True, mmio=True)
    fake.add_package(1, 30.0, dram=5.0)
    fake.add_psys()
    zones, notes = find_zones(fake.root)
    assert notes == []
    assert [(z.channel.component, z.channel.device) for z in zones] == [
        ("cpu", "package-0"), ("cpu", "package-1"), ("dram", "package-0"), ("dram", "package-1"),
    ]
    # every zone is also listed at the top level through a symlink: still counted once
    assert (fake.root / "intel-rapl:0:2").is_symlink()


def test_mmio_package_is_used_when_it_is_the_only_interface(tmp_path: Path) -> None:
    fp = FakePowercap(tmp_path)
    fp.add_package(0, 10.0, core=False, mmio=True)
    # remove the MSR interface's entry, as on a machine exposing only MMIO
    (tmp_path / "intel-rapl:0").unlink()
    zones, _ = find_zones(tmp_path)
    assert [z.path.name for z in zones] == ["intel-rapl-mmio:0"]


def test_missing_tree_gives_no_zones_and_no_notes(tmp_path: Path) -> None:
    assert find_zones(tmp_path / "absent") == ([], [])


def test_energy_exact_across_many_wraps(fake: FakePowercap) -> None:
    fake.add_package(0, 40.0, range_uj=4_000_000, start_uj=3_500_000, core=False,
                     power_limit_w=60.0)
    meter = RaplMeter(fake.root / "intel-rapl:0", _cpu())
    assert meter.max_poll_interval_s() == pytest.approx(4.0 / 60.0 / 2)
    fake.observers.append(meter.read)  # read between any two wraps, as the sampler must
    e0 = meter.read()
    fake.run(1.0)
    e1 = meter.read()
    assert meter.wraps == 10  # 40 J through a 4 J counter that started 0.5 J before its end
    assert e1 - e0 == pytest.approx(40.0, abs=1e-5)
    assert meter.skipped == 0 and meter.resets == 0


def test_step_in_power_is_followed(fake: FakePowercap) -> None:
    fake.add_package(0, step(10.0, 50.0, at_s=0.3), range_uj=5_000_000, core=False,
                     power_limit_w=80.0)
    meter = RaplMeter(fake.root / "intel-rapl:0", _cpu())
    fake.observers.append(meter.read)
    e0 = meter.read()
    fake.run(0.7)
    e1 = meter.read()
    assert e1 - e0 == pytest.approx(10.0 * 0.3 + 50.0 * 0.4, abs=1e-5)
    # Power is energy over real time, and the fake never runs ahead of real time.
    assert 0 < meter.peak_power_w <= 50.0 * 1.1


def test_poll_interval_uses_the_highest_power_seen(fake: FakePowercap) -> None:
    fake.add_package(0, 20.0, range_uj=10_000_000, core=False, power_limit_w=10.0)
    fake.add_package(1, 20.0, range_uj=10_000_000, core=False)
    meter = RaplMeter(fake.root / "intel-rapl:0", _cpu())
    unlimited = RaplMeter(fake.root / "intel-rapl:1", _cpu())
    assert meter.max_poll_interval_s() == pytest.approx(10.0 / 10.0 / 2)
    assert unlimited.max_poll_interval_s() == pytest.approx(10.0 / FLOOR_POWER_W / 2)
    time.sleep(0.1)
    fake.add_energy("intel-rapl:0", 8.0)  # 8 J in at least 0.1 s: more than the 10 W limit
    meter.read()
    # Faster than at the published limit; never faster than at the cap (a glitch cannot
    # make the sampler spin).
    assert 10.0 / meter.max_power_w / 2 <= meter.max_poll_interval_s() < 10.0 / 10.0 / 2


def test_vanished_zone_raises_then_total_continues(fake: FakePowercap) -> None:
    fake.add_package(0, 20.0, core=False)
    meter = RaplMeter(fake.root / "intel-rapl:0", _cpu())
    fake.run(0.1)
    before = meter.read()
    assert before == pytest.approx(2.0, abs=1e-5)
    fake.vanish("intel-rapl:0")
    with pytest.raises(MeterError, match="vanished") as info:
        meter.read()
    assert "\n" not in str(info.value)
    fake.run(0.05)
    fake.restore("intel-rapl:0")
    assert meter.read() == pytest.approx(3.0, abs=1e-5)  # the counter counted while unreadable


def test_garbage_content_raises_meter_error(fake: FakePowercap) -> None:
    fake.add_package(0, 20.0, core=False)
    meter = RaplMeter(fake.root / "intel-rapl:0", _cpu())
    fake.garbage("intel-rapl:0")
    with pytest.raises(MeterError, match="no number"):
        meter.read()
    fake.restore("intel-rapl:0")
    assert meter.read() >= 0


def test_counter_reset_is_not_counted_as_a_wrap(fake: FakePowercap) -> None:
    fake.add_package(0, 20.0, range_uj=1_000_000_000, start_uj=500_000_000, core=False,
                     power_limit_w=60.0)
    meter = RaplMeter(fake.root / "intel-rapl:0", _cpu())
    fake.observers.append(meter.read)
    fake.run(0.1)
    before = meter.read()
    fake.reset("intel-rapl:0")  # read at 0: the restart is caught where it happened
    fake.run(0.1)
    after = meter.read()
    assert meter.resets == 1 and meter.wraps == 0
    assert after - before == pytest.approx(2.0, abs=1e-5)  # never half a range
    assert meter.anomalies().last_reset == "counter went from 502 J to 0 J"


@pytest.mark.parametrize("shown", ["0", "-5", str(262_143_328_850 + 1000), "250000000000"])
def test_bad_reads_near_200_kj_are_skipped_and_named(fake: FakePowercap, shown: str) -> None:
    fake.add_package(0, 20.0, start_uj=200_000_000_000, core=False)
    meter = RaplMeter(fake.root / "intel-rapl:0", _cpu())
    fake.observers.append(meter.read)
    fake.run(0.2)
    fake.show("intel-rapl:0", shown)
    fake.run(0.2)
    held = meter.read()
    assert held == pytest.approx(4.0, abs=1e-5)  # the last good total, not 50 kJ or minus 200 kJ
    assert meter.anomalies().held
    fake.restore("intel-rapl:0")
    fake.run(0.2)
    assert meter.read() == pytest.approx(12.0, abs=1e-5)  # the good readings bracket the spell
    a = meter.anomalies()
    assert a.skipped == 22 and a.resets == 0 and not a.held  # 21 observer reads and ours


@pytest.mark.parametrize("range_text", ["-1", "0", "garbage", "1", "4000000"])
def test_garbage_range_is_unknown_and_keeps_a_sane_poll(fake: FakePowercap, range_text: str) -> None:
    from nbcarbon.sampler import Sampler

    fake.add_package(0, 20.0, core=False)
    (fake.zones["intel-rapl:0"].path / "max_energy_range_uj").write_text(range_text + "\n")
    meter = RaplMeter(fake.root / "intel-rapl:0", _cpu())
    # 4 J at the 100 W assumed without a limit would wrap in 40 ms: not a real counter.
    assert meter.range_j is None and meter.max_poll_interval_s() is None
    assert Sampler([meter], interval_s=1.0).period_s() == 1.0
    fake.run(0.1)
    assert meter.read() == pytest.approx(2.0, abs=1e-5)


def test_a_raised_power_limit_is_picked_up_in_the_background(fake: FakePowercap) -> None:
    fake.add_package(0, 20.0, core=False, power_limit_w=50.0)
    meter = RaplMeter(fake.root / "intel-rapl:0", _cpu())
    assert meter.max_power_w == 200.0
    (fake.zones["intel-rapl:0"].path / "constraint_1_power_limit_uw").write_text("150000000\n")
    meter.background()  # the sampler thread's upkeep: never on the cell's path
    assert meter.max_power_w == 600.0


def test_unreadable_zones_give_one_note(fake: FakePowercap) -> None:
    fake.add_package(0, 20.0, dram=5.0)
    fake.add_package(1, 20.0, dram=5.0)
    fake.make_root_only()
    zones, notes = find_zones(fake.root)
    assert zones == []
    assert len(notes) == 1
    assert "readable only by root" in notes[0] and "chmod a+r" in notes[0]


def test_partly_readable_tree_keeps_readable_zones(fake: FakePowercap) -> None:
    fake.add_package(0, 20.0, dram=5.0)
    fake.make_unreadable("intel-rapl:0:1")  # the dram zone only
    zones, notes = find_zones(fake.root)
    assert [z.channel.component for z in zones] == ["cpu"]
    assert len(notes) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_permission_lost_mid_run_raises(fake: FakePowercap) -> None:
    fake.add_package(0, 20.0, core=False)
    meter = RaplMeter(fake.root / "intel-rapl:0", _cpu())
    fake.make_unreadable("intel-rapl:0")
    with pytest.raises(MeterError, match="permission"):
        meter.read()


def test_open_rapl_and_concurrent_reads_are_monotonic(fake: FakePowercap) -> None:
    fake.add_package(0, 30.0, range_uj=3_000_000, dram=5.0, power_limit_w=60.0)
    meters, notes = open_rapl(fake.root)
    assert notes == [] and len(meters) == 2
    meter = meters[0]
    fake.observers.append(meter.read)
    failures: list[str] = []
    done = threading.Event()

    def reader() -> None:
        last = -1.0
        while not done.is_set():
            value = meter.read()
            if value < last:
                failures.append(f"{value} < {last}")
            last = value
            time.sleep(0.001)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    fake.run(0.3)
    done.set()
    for t in threads:
        t.join()
    assert failures == []
    assert meter.read() == pytest.approx(9.0, abs=1e-5) and meter.wraps == 3
    meter.close()
    with pytest.raises(MeterError, match="closed"):
        meter.read()
