"""AMD CPU sockets from the amd_energy hwmon driver, and AMD CPUs through powercap, via probe()."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbcarbon.errors import MeterError
from nbcarbon.meters import ProbeResult, probe
from nbcarbon.meters.hwmon import AmdEnergyMeter, find_sockets, open_amd_energy
from tests.fakes.hwmon import FakeHwmon
from tests.fakes.nvml import NVML_ERROR_LIBRARY_NOT_FOUND, FakeNvml
from tests.fakes.powercap import FakePowercap


def test_sockets_are_counted_once_and_cores_never(tmp_path: Path) -> None:
    fake = FakeHwmon(tmp_path)
    fake.add_other("k10temp")
    fake.add_other("i915", energy=True)  # another driver's energy counter: not a CPU socket
    fake.add_amd_energy(sockets=2, cores_per_socket=8, alias=True)  # listed twice
    meters, notes = open_amd_energy(tmp_path)
    assert notes == []
    assert [(m.channel.component, m.channel.device, m.channel.method, m.channel.attribution)
            for m in meters] == [("cpu", "package-0", "amd-energy-counter", "machine"),
                                 ("cpu", "package-1", "amd-energy-counter", "machine")]
    e0 = [m.read() for m in meters]
    fake.add_energy(0, 30.0)
    fake.add_energy(1, 12.5)
    assert meters[0].read() - e0[0] == pytest.approx(30.0, abs=1e-6)
    assert meters[1].read() - e0[1] == pytest.approx(12.5, abs=1e-6)
    assert all(m.path.name == f"energy{17 + i}_input" for i, m in enumerate(meters))


def test_a_glitch_is_skipped_and_a_reload_is_a_reset(tmp_path: Path) -> None:
    fake = FakeHwmon(tmp_path)
    fake.add_amd_energy()
    (meter,), _ = open_amd_energy(tmp_path)
    e0 = meter.read()
    start = meter.anomalies()
    fake.show(0, "0")  # a bad read: the driver's value is far higher
    assert meter.read() == e0
    fake.add_energy(0, 4.0)
    assert meter.read() - e0 == pytest.approx(4.0, abs=1e-6)
    fake.restart(0, to_uj=1_000)  # driver reloaded: counting again from ~0
    meter.read()
    fake.add_energy(0, 2.0)
    meter.read()
    fake.add_energy(0, 3.0)
    # Counted from the restarted value on: nothing was drawn between the reload and its
    # first reading here, so nothing is lost.
    assert meter.read() - e0 == pytest.approx(4.0 + 2.0 + 3.0, abs=1e-6)
    warnings = meter.anomalies().warnings_since(start, "cpu package-0")
    assert any("skipped" in w for w in warnings) and any("counter reset" in w for w in warnings)
    assert meter.resets == 1


def test_a_vanished_file_raises_then_reads_again(tmp_path: Path) -> None:
    fake = FakeHwmon(tmp_path)
    fake.add_amd_energy()
    (meter,), _ = open_amd_energy(tmp_path)
    e0 = meter.read()
    meter.path.unlink()
    with pytest.raises(MeterError, match="amd_energy package-0: the counter file has vanished"):
        meter.read()
    fake.add_energy(0, 1.5)
    assert meter.read() - e0 == pytest.approx(1.5, abs=1e-6)
    meter.close()
    with pytest.raises(MeterError, match="closed"):
        meter.read()


def test_root_only_counters_give_one_note_with_the_fix(tmp_path: Path) -> None:
    fake = FakeHwmon(tmp_path)
    fake.add_amd_energy(sockets=2)
    fake.make_root_only()
    sockets, notes = find_sockets(tmp_path)
    assert sockets == []
    assert len(notes) == 1 and "readable only by root" in notes[0] and "chmod" in notes[0]


def test_no_driver_no_notes(tmp_path: Path) -> None:
    fake = FakeHwmon(tmp_path)
    fake.add_other("nct6775")
    assert find_sockets(tmp_path) == ([], [])
    assert find_sockets(tmp_path / "missing") == ([], [])


def test_driver_without_socket_counters_says_so(tmp_path: Path) -> None:
    fake = FakeHwmon(tmp_path)
    real = fake.add_amd_energy(sockets=1)
    for label in real.glob("energy*_label"):
        if label.read_text().startswith("Esocket"):
            label.unlink()  # unlabelled: core or socket cannot be told, so not counted
    assert find_sockets(tmp_path) == ([], ["the amd_energy driver is loaded but lists no socket counter"])


def test_garbage_socket_file_is_a_note(tmp_path: Path) -> None:
    fake = FakeHwmon(tmp_path)
    fake.add_amd_energy(sockets=2)
    fake.show(1, "garbage")
    sockets, notes = find_sockets(tmp_path)
    assert [s.socket for s in sockets] == [0]
    assert notes == ["amd_energy socket 1 could not be read: the counter file holds no number"]


def test_meter_on_a_missing_file_fails_to_open(tmp_path: Path) -> None:
    fake = FakeHwmon(tmp_path)
    fake.add_amd_energy()
    (socket,), _ = find_sockets(tmp_path)
    socket.path.unlink()
    with pytest.raises(MeterError):
        AmdEnergyMeter(socket.path, socket.channel)


# ----- probe(): AMD CPUs -------------------------------------------------------------------------

NO_GPU = FakeNvml(init_error=NVML_ERROR_LIBRARY_NOT_FOUND)


def _kinds(result: ProbeResult) -> list[tuple[str, str, str]]:
    return [(m.channel.component, m.channel.device, m.channel.method) for m in result.meters]


def test_amd_zen_through_powercap_is_rapl_with_the_memory_model(tmp_path: Path) -> None:
    """Modern kernels list AMD's RAPL as intel-rapl:N "package-N" with a "core" sub-zone and no
    DRAM: read by rapl.py; amd_energy, even where loaded, is not read as well."""
    cap = FakePowercap(tmp_path / "powercap")
    cap.add_package(0, 60.0, core=True)
    hw = FakeHwmon(tmp_path / "hwmon")
    hw.add_amd_energy(sockets=1)
    result = probe(cap.root, use_gpu=False, hwmon_root=hw.root, platform="linux")
    assert _kinds(result) == [("cpu", "package-0", "rapl-counter"),
                              ("memory", "process tree", "memory-model")]
    assert result.notes == ["memory energy not measured (no RAPL DRAM counter on this CPU); "
                            "estimated from resident memory x 0.375 W per GB"]


def test_amd_energy_stands_in_where_powercap_is_missing(tmp_path: Path) -> None:
    hw = FakeHwmon(tmp_path / "hwmon")
    hw.add_amd_energy(sockets=2)
    result = probe(tmp_path / "no-powercap", nvml=NO_GPU, hwmon_root=hw.root, platform="linux")
    assert _kinds(result)[:3] == [("cpu", "package-0", "amd-energy-counter"),
                                  ("cpu", "package-1", "amd-energy-counter"),
                                  ("memory", "process tree", "memory-model")]
    assert result.notes[0] == ("memory energy not measured (AMD CPUs have no DRAM energy counter); "
                               "estimated from resident memory x 0.375 W per GB")


def test_amd_energy_is_not_read_beside_root_only_powercap_when_it_is_root_only_too(tmp_path: Path) -> None:
    cap = FakePowercap(tmp_path / "powercap")
    cap.add_package(0, 60.0)
    cap.make_root_only()
    hw = FakeHwmon(tmp_path / "hwmon")
    hw.add_amd_energy()
    hw.make_root_only()
    result = probe(cap.root, use_gpu=False, hwmon_root=hw.root, platform="linux")
    assert [m.channel.method for m in result.meters] == ["cpu-time-model", "memory-model"]
    assert sum("chmod" in n for n in result.notes) == 2  # one fix for each interface
    assert any(n.startswith("CPU energy not measured (RAPL and amd_energy counters readable only "
                            "by root)") for n in result.notes)


def test_readable_amd_energy_measures_where_powercap_is_root_only(tmp_path: Path) -> None:
    """A user in the hwmon file's group reads amd_energy while RAPL stays root's: measured, and
    the RAPL fix is no longer offered."""
    cap = FakePowercap(tmp_path / "powercap")
    cap.add_package(0, 60.0)
    cap.make_root_only()
    hw = FakeHwmon(tmp_path / "hwmon")
    hw.add_amd_energy()
    result = probe(cap.root, use_gpu=False, hwmon_root=hw.root, platform="linux")
    assert _kinds(result) == [("cpu", "package-0", "amd-energy-counter"),
                              ("memory", "process tree", "memory-model")]
    assert not any("chmod" in n for n in result.notes)
