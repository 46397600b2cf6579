"""Apple Silicon IOReport meters against a fake zeus_apple_silicon, alone and through probe()."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from nbcarbon.errors import MeterError
from nbcarbon.meters import probe
from nbcarbon.meters.apple import NO_LIBRARY_NOTE, IOReportSession, open_apple
from nbcarbon.meters.base import NO_ANOMALIES
from tests.fakes.apple import FakeSoc, fake_module


def _channels(meters: list) -> list[tuple[str, str, str]]:
    return [(m.channel.component, m.channel.device, m.channel.method) for m in meters]


def test_cpu_dram_gpu_and_neural_engine_are_counters() -> None:
    soc = FakeSoc()
    meters, notes = open_apple(fake_module(soc))
    assert notes == []
    assert _channels(meters) == [("cpu", "soc", "ioreport-counter"), ("dram", "soc", "ioreport-counter"),
                                 ("gpu", "gpu0", "ioreport-counter"), ("gpu", "ane", "ioreport-counter")]
    assert all(m.channel.attribution == "machine" for m in meters)
    e0 = [m.read() for m in meters]
    time.sleep(0.01)  # a fresh sample for the next boundary
    soc.add_energy(cpu=12.5, dram=0.75, gpu=15.0, ane=2.25)  # each below 400 W x 60 ms
    got = [m.read() - e for m, e in zip(meters, e0, strict=True)]
    # the CPU is its total alone: clusters, cores and managers are parts of it, never added
    assert got == pytest.approx([12.5, 0.75, 15.0, 2.25], abs=1e-3)
    assert all(m.anomalies() == NO_ANOMALIES for m in meters)


def test_one_sample_serves_the_channels_read_together() -> None:
    soc = FakeSoc()
    meters, _ = open_apple(fake_module(soc))
    time.sleep(0.01)
    before = soc.samples
    for m in meters:
        m.read()
    assert soc.samples == before + 1
    time.sleep(0.01)
    meters[0].read()
    assert soc.samples == before + 2  # an older sample is never reused


def test_channels_the_chip_lacks_are_left_out() -> None:
    meters, notes = open_apple(fake_module(FakeSoc(dram=False, ane=False)))
    assert _channels(meters) == [("cpu", "soc", "ioreport-counter"), ("gpu", "gpu0", "ioreport-counter")]
    assert notes == []


def test_without_gpu_only_cpu_and_dram() -> None:
    meters, _ = open_apple(fake_module(FakeSoc()), use_gpu=False)
    assert [m.channel.component for m in meters] == ["cpu", "dram"]


def test_ioreport_failing_mid_window_raises_then_the_total_continues() -> None:
    soc = FakeSoc()
    meters, _ = open_apple(fake_module(soc))
    cpu = meters[0]
    e0 = cpu.read()
    soc.add_energy(cpu=3.0)
    soc.sample_error = "Failed to convert CFString to std::string"
    time.sleep(0.01)
    with pytest.raises(MeterError, match="IOReport could not be sampled"):
        cpu.read()
    soc.sample_error = None
    soc.empty = True  # a sample without channels: every field None
    time.sleep(0.01)
    with pytest.raises(MeterError, match="IOReport cpu soc: channel missing from the sample"):
        cpu.read()
    soc.empty = False
    soc.add_energy(cpu=1.0)
    time.sleep(0.01)
    assert cpu.read() - e0 == pytest.approx(4.0, abs=1e-3)  # a counter: nothing lost


def test_a_counter_going_backwards_is_refused() -> None:
    soc = FakeSoc()
    meters, _ = open_apple(fake_module(soc))
    gpu = meters[2]
    e0 = gpu.read()
    soc.joules["gpu"] -= 5.0  # impossible: refused, the last good total holds
    time.sleep(0.01)
    assert gpu.read() == e0
    assert gpu.anomalies().held
    soc.joules["gpu"] += 5.0 + 2.0
    time.sleep(0.01)
    assert gpu.read() - e0 == pytest.approx(2.0, abs=1e-3)


def test_open_failures_are_notes() -> None:
    soc = FakeSoc()
    soc.open_error = "Failed to create IOReport subscription."
    meters, notes = open_apple(fake_module(soc))
    assert meters == [] and notes == ["IOReport energy counters could not be opened (Failed to create "
                                      "IOReport subscription.); CPU and GPU energy not measured"]
    soc = FakeSoc()
    soc.empty = True
    assert open_apple(fake_module(soc)) == ([], ["IOReport lists no energy channel on this Mac; CPU and GPU "
                                                 "energy not measured"])


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zeus_apple_silicon", None)
    assert open_apple(None) == ([], [NO_LIBRARY_NOTE])
    assert "nbcarbon[apple]" in NO_LIBRARY_NOTE


def test_session_rejects_stale_samples() -> None:
    soc = FakeSoc()
    session = IOReportSession(fake_module(soc).AppleEnergyMonitor(), max_age_s=0.0)
    session.sample()
    session.sample()
    assert soc.samples == 2


def test_the_fake_window_api_matches_the_cumulative_one() -> None:
    """The fake keeps the real package's window API; a window is the difference of two samples."""
    soc = FakeSoc()
    monitor = fake_module(soc).AppleEnergyMonitor()
    monitor.begin_window("w")
    soc.add_energy(cpu=1.0, gpu=2.0)
    result = monitor.end_window("w")
    assert (result.cpu_total_mj, result.gpu_mj) == (1000, 2000)
    with pytest.raises(RuntimeError):
        monitor.end_window("w")


# ----- probe() on a Mac --------------------------------------------------------------------------


def test_probe_on_apple_silicon_measures_the_soc(tmp_path: Path) -> None:
    soc = FakeSoc()
    result = probe(tmp_path / "no-powercap", apple=fake_module(soc), platform="darwin", machine="arm64",
                   hwmon_root=tmp_path / "none", proc=tmp_path / "no-proc")
    assert _channels(result.meters) == [("cpu", "soc", "ioreport-counter"),
                                        ("dram", "soc", "ioreport-counter"),
                                        ("gpu", "gpu0", "ioreport-counter"),
                                        ("gpu", "ane", "ioreport-counter")]
    assert result.notes == []  # no NVML note on a Mac: NVIDIA has no macOS driver
    assert (result.platform, result.machine) == ("darwin", "arm64")


def test_probe_on_apple_silicon_without_dram_channel_models_memory(tmp_path: Path) -> None:
    result = probe(tmp_path / "x", apple=fake_module(FakeSoc(dram=False)), platform="darwin",
                   machine="arm64", proc=tmp_path / "no-proc")
    assert [m.channel.method for m in result.meters] == ["ioreport-counter", "memory-model",
                                                         "ioreport-counter", "ioreport-counter"]
    assert result.notes == ["memory energy not measured (IOReport has no DRAM channel on this chip); "
                            "estimated from resident memory x 0.375 W per GB"]


def test_probe_on_apple_silicon_without_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zeus_apple_silicon", None)
    result = probe(tmp_path / "x", platform="darwin", machine="arm64", proc=tmp_path / "no-proc")
    assert [m.channel.method for m in result.meters] == ["cpu-time-model", "memory-model"]
    assert result.notes[0] == NO_LIBRARY_NOTE
    assert result.notes[1].startswith("CPU energy not measured (IOReport counters not read)")


def test_probe_on_an_intel_mac_suggests_nothing_it_cannot_do(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zeus_apple_silicon", None)
    result = probe(tmp_path / "x", platform="darwin", machine="x86_64", proc=tmp_path / "no-proc")
    assert [m.channel.method for m in result.meters] == ["cpu-time-model", "memory-model"]
    assert not any("nbcarbon[apple]" in n for n in result.notes)
    assert result.notes[0].startswith("CPU energy not measured (no energy counter read on this Mac)")
