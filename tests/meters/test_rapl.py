"""RAPL meters against a fake powercap tree whose counters advance at a known power."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbcarbon.errors import MeterError
from nbcarbon.meters.base import Channel
from nbcarbon.meters.rapl import FLOOR_POWER_W, RaplMeter, find_zones, open_rapl
from tests.fakes.powercap import FakePowercap, step


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakePowercap]:
    fp = FakePowercap(tmp_path / "powercap")
    yield fp
    fp.stop()


def _cpu(device: str = "package-0") -> Channel:
    return Channel("cpu", device, "rapl-counter", "machine")


class Poller:
    """Reads a meter at its own max_poll_interval_s, as the sampler will."""

    def __init__(self, meter: RaplMeter) -> None:
        self.meter = meter
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.errors: list[MeterError] = []

    def _run(self) -> None:
        while not self.stop.wait(self.meter.max_poll_interval_s() or 0.05):
            try:
                self.meter.read()
            except MeterError as err:
                self.errors.append(err)

    def __enter__(self) -> Poller:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


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


def test_energy_within_two_percent_across_many_wraps(fake: FakePowercap) -> None:
    fake.add_package(0, 40.0, range_uj=4_000_000, start_uj=3_500_000, core=False,
                     power_limit_w=60.0)
    fake.start()
    meter = RaplMeter(fake.root / "intel-rapl:0", _cpu())
    assert meter.max_poll_interval_s() == pytest.approx(4.0 / 60.0 / 2)
    with Poller(meter):
        t0 = time.monotonic()
        e0 = meter.read()
        time.sleep(1.0)
        e1 = meter.read()
        t1 = time.monotonic()
    truth = fake.true_energy_j("intel-rapl:0", t0, t1)
    assert meter.wraps >= 8
    assert e1 - e0 == pytest.approx(truth, rel=0.02)


def test_step_in_power_is_followed(fake: FakePowercap) -> None:
    fake.add_package(0, step(10.0, 50.0, at_s=0.3), range_uj=5_000_000, core=False,
                     power_limit_w=80.0)
    fake.start()
    meter = RaplMeter(fake.root / "intel-rapl:0", _cpu())
    with Poller(meter):
        t0 = time.monotonic()
        e0 = meter.read()
        time.sleep(0.7)
        e1 = meter.read()
        t1 = time.monotonic()
    assert e1 - e0 == pytest.approx(fake.true_energy_j("intel-rapl:0", t0, t1), rel=0.02)
    assert meter.peak_power_w == pytest.approx(50.0, rel=0.3)


def test_poll_interval_uses_the_highest_power_seen(fake: FakePowercap) -> None:
    fake.add_package(0, 20.0, range_uj=10_000_000, core=False, power_limit_w=10.0)
    fake.add_package(1, 20.0, range_uj=10_000_000, core=False)
    meter = RaplMeter(fake.root / "intel-rapl:0", _cpu())
    unlimited = RaplMeter(fake.root / "intel-rapl:1", _cpu())
    assert meter.max_poll_interval_s() == pytest.approx(10.0 / 10.0 / 2)
    assert unlimited.max_poll_interval_s() == pytest.approx(10.0 / FLOOR_POWER_W / 2)
    fake.start()
    time.sleep(0.1)
    meter.read()
    time.sleep(0.1)
    meter.read()
    assert meter.max_poll_interval_s() == pytest.approx(10.0 / 20.0 / 2, rel=0.2)


def test_vanished_zone_raises_then_total_continues(fake: FakePowercap) -> None:
    fake.add_package(0, 20.0, core=False)
    fake.start()
    meter = RaplMeter(fake.root / "intel-rapl:0", _cpu())
    time.sleep(0.1)
    before = meter.read()
    assert before > 0
    fake.vanish("intel-rapl:0")
    with pytest.raises(MeterError, match="vanished") as info:
        meter.read()
    assert "\n" not in str(info.value)
    fake.restore("intel-rapl:0")
    time.sleep(0.05)
    after = meter.read()
    assert after > before


def test_garbage_content_raises_meter_error(fake: FakePowercap) -> None:
    fake.add_package(0, 20.0, core=False)
    fake.start()
    meter = RaplMeter(fake.root / "intel-rapl:0", _cpu())
    fake.garbage("intel-rapl:0")
    with pytest.raises(MeterError, match="no number"):
        meter.read()
    fake.restore("intel-rapl:0")
    assert meter.read() >= 0


def test_counter_reset_is_not_counted_as_a_wrap(fake: FakePowercap) -> None:
    fake.add_package(0, 20.0, range_uj=1_000_000_000, start_uj=500_000_000, core=False,
                     power_limit_w=60.0)
    fake.start()
    meter = RaplMeter(fake.root / "intel-rapl:0", _cpu())
    time.sleep(0.1)
    before = meter.read()
    fake.reset("intel-rapl:0")
    time.sleep(0.1)
    after = meter.read()
    assert meter.resets == 1 and meter.wraps == 0
    assert after - before < 20.0 * 0.2 * 1.5  # at most the real energy, never half a range


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
    fake.start()
    meter = RaplMeter(fake.root / "intel-rapl:0", _cpu())
    fake.make_unreadable("intel-rapl:0")
    time.sleep(0.02)
    with pytest.raises(MeterError, match="permission"):
        meter.read()


def test_open_rapl_and_concurrent_reads_are_monotonic(fake: FakePowercap) -> None:
    fake.add_package(0, 30.0, range_uj=3_000_000, dram=5.0, power_limit_w=60.0)
    fake.start()
    meters, notes = open_rapl(fake.root)
    assert notes == [] and len(meters) == 2
    meter = meters[0]
    failures: list[str] = []

    def reader() -> None:
        last = -1.0
        for _ in range(300):
            value = meter.read()
            if value < last:
                failures.append(f"{value} < {last}")
            last = value
            time.sleep(0.001)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    meter.close()
    with pytest.raises(MeterError, match="closed"):
        meter.read()
