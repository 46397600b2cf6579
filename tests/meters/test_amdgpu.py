"""AMD GPU meters against a fake ``amdsmi`` with the real function names and return shapes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from nbcarbon.errors import MeterError
from nbcarbon.meters.amdgpu import (
    NO_DRIVER_NOTE,
    NO_LIBRARY_NOTE,
    AmdGpuMeter,
    AmdSmiSession,
    amd_gpu_present,
    energy_fields,
    import_amdsmi,
    open_amd_gpus,
    power_reading,
)
from nbcarbon.meters.base import NO_ANOMALIES
from tests.fakes.amdsmi import (
    AMDSMI_STATUS_DRIVER_NOT_LOADED,
    AMDSMI_STATUS_INIT_ERROR,
    AMDSMI_STATUS_IO,
    UINT32_MAX,
    AmdSmiInitFlags,
    FakeAmdGpu,
    FakeAmdSmi,
)

UNIT_J = FakeAmdGpu().resolution_uj * 1e-6


def _open(amdsmi: FakeAmdSmi, **kw: object) -> tuple[list[AmdGpuMeter], list[str]]:
    kw.setdefault("check_s", 0.0)
    return open_amd_gpus(amdsmi, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("version", [(5, 7), (6, 0), (6, 2), (6, 4), (7, 0)])
def test_counter_path_is_exact_whatever_the_version_calls_the_count(version: tuple[int, int]) -> None:
    amdsmi = FakeAmdSmi([FakeAmdGpu()], version=version)
    (meter,), notes = _open(amdsmi)
    assert notes == []
    ch = meter.channel
    assert (ch.component, ch.device, ch.method, ch.attribution) == ("gpu", "gpu0", "amdsmi-counter",
                                                                    "machine")
    assert meter.model_name == "AMD Instinct MI300X"
    assert meter.uuid == amdsmi.gpus[0].uuid and meter.pci_bus_id is None
    e0 = meter.read()
    amdsmi.gpus[0].add_energy(42.0)
    assert meter.read() - e0 == pytest.approx(42.0, abs=UNIT_J)
    assert meter.anomalies() == NO_ANOMALIES
    assert meter.max_poll_interval_s() is None  # a 64-bit count: no wrap to outrun
    assert "64-bit" in meter.describe()
    meter.close()
    assert amdsmi.init_calls == [AmdSmiInitFlags.INIT_AMD_GPUS] and amdsmi.initialised == 0


def test_a_32_bit_accumulator_wraps_and_the_total_carries_on() -> None:
    gpu = FakeAmdGpu(bits=32, start_raw=2**32 - int(10.0 / UNIT_J))  # 10 J before the wrap
    amdsmi = FakeAmdSmi([gpu])
    (meter,), _ = _open(amdsmi)
    assert meter.max_poll_interval_s() == pytest.approx(2**32 * UNIT_J / 2000.0 / 2.0)
    assert "32-bit" in meter.describe()
    e0 = meter.read()
    total = 0.0
    for joules in (8.0, 30.0, 50.0, 25.0):  # the second step crosses the wrap
        gpu.add_energy(joules)
        total += joules
        assert meter.read() - e0 == pytest.approx(total, abs=2 * UNIT_J)
    assert gpu.raw() < 2**31 and meter._counter is not None and meter._counter.counter.wraps == 1
    assert meter.anomalies().skipped == 0


def test_a_64_bit_accumulator_read_early_after_boot_is_recognised_when_it_passes_2_to_the_32() -> None:
    gpu = FakeAmdGpu(bits=64, start_raw=2**32 - int(20.0 / UNIT_J))
    amdsmi = FakeAmdSmi([gpu])
    (meter,), _ = _open(amdsmi)
    assert meter.max_poll_interval_s() is not None  # below 2**32: assumed 32-bit for now
    e0 = meter.read()
    gpu.add_energy(60.0)  # crosses 2**32 without wrapping: it was 64-bit all along
    assert meter.read() - e0 == pytest.approx(60.0, abs=2 * UNIT_J)
    gpu.add_energy(15.0)
    assert meter.read() - e0 == pytest.approx(75.0, abs=2 * UNIT_J)
    assert meter.max_poll_interval_s() is None and "64-bit" in meter.describe()
    assert meter.anomalies().skipped == 0


def test_a_garbage_value_above_2_to_the_32_does_not_make_a_32_bit_counter_64_bit() -> None:
    gpu = FakeAmdGpu(bits=32, start_raw=1_000_000)
    amdsmi = FakeAmdSmi([gpu])
    (meter,), _ = _open(amdsmi)
    e0 = meter.read()
    gpu.glitch_raw = 2**40  # far beyond any step the GPU could draw
    assert meter.read() == e0  # refused: the last good total stands
    before = meter.anomalies()
    assert before.held and before.skipped == 1
    gpu.add_energy(12.0)
    assert meter.read() - e0 == pytest.approx(12.0, abs=2 * UNIT_J)
    assert meter._counter is not None and not meter._counter.wide


def test_a_counter_going_backwards_is_refused_and_named() -> None:
    """ROCm/amdsmi#115: the count sometimes reads lower than before; that is not a wrap."""
    gpu = FakeAmdGpu(bits=32, start_raw=2_000_000_000)
    amdsmi = FakeAmdSmi([gpu])
    (meter,), _ = _open(amdsmi)
    e0 = meter.read()
    start = meter.anomalies()
    gpu.glitch_raw = 1_500_000_000  # as a wrap it would be ~58 kJ in an instant
    assert meter.read() == e0
    gpu.add_energy(5.0)
    assert meter.read() - e0 == pytest.approx(5.0, abs=2 * UNIT_J)
    warnings = meter.anomalies().warnings_since(start, "gpu0")
    assert len(warnings) == 1 and "1 implausible reading(s) skipped" in warnings[0]


def test_gpu_failing_mid_window_raises_then_the_total_continues() -> None:
    gpu = FakeAmdGpu()
    amdsmi = FakeAmdSmi([gpu])
    (meter,), _ = _open(amdsmi)
    e0 = meter.read()
    gpu.add_energy(10.0)
    gpu.fail_code = AMDSMI_STATUS_IO
    with pytest.raises(MeterError, match=r"^gpu0: I/O error$"):
        meter.read()
    gpu.add_energy(5.0)
    gpu.fail_code = None
    assert meter.read() - e0 == pytest.approx(15.0, abs=2 * UNIT_J)  # nothing lost: a counter


def test_no_counter_falls_back_to_integrated_power() -> None:
    gpu = FakeAmdGpu(name="AMD Radeon RX 7900 XTX", kind="radeon", has_counter=False, power_w=120.0)
    amdsmi = FakeAmdSmi([gpu], version=(6, 4))
    (meter,), notes = _open(amdsmi)
    assert notes == []
    assert meter.channel.method == "amdsmi-power"
    assert meter.power_key == "average_socket_power"
    assert meter.describe() == "average socket power, integrated"
    t0 = time.monotonic()
    e0 = meter.read()
    time.sleep(0.3)
    e1 = meter.read()
    assert e1 - e0 == pytest.approx(120.0 * (time.monotonic() - t0), rel=0.1)
    assert meter.last_power_w == 120.0


@pytest.mark.parametrize(("version", "kind", "key"), [
    ((5, 7), "mi200", "average_socket_power"),
    ((6, 0), "mi300", "current_socket_power"),  # 0xFFFF average still a number before 6.2
    ((6, 2), "mi300", "current_socket_power"),  # "N/A" average
    ((7, 0), "radeon", "average_socket_power"),
])
def test_power_key_is_the_one_the_gpu_fills(version: tuple[int, int], kind: str, key: str) -> None:
    amdsmi = FakeAmdSmi([FakeAmdGpu(kind=kind, has_counter=False)], version=version)
    (meter,), _ = _open(amdsmi)
    assert meter.power_key == key


def test_power_readings_refuse_sentinels() -> None:
    assert power_reading({"x": 0xFFFF}, "x") is None
    assert power_reading({"x": UINT32_MAX}, "x") is None
    assert power_reading({"x": "N/A"}, "x") is None
    assert power_reading({"x": True}, "x") is None
    assert power_reading({}, "x") is None
    assert power_reading({"x": 87}, "x") == 87.0


def test_energy_fields_accept_both_keys_and_refuse_garbage() -> None:
    assert energy_fields({"power": 5, "counter_resolution": 15.3, "timestamp": 1}) == (5, 15.3)
    assert energy_fields({"energy_accumulator": 7, "counter_resolution": 1.0, "timestamp": 1}) == (7, 1.0)
    for bad in ({"energy_accumulator": "N/A", "counter_resolution": 15.3},
                {"energy_accumulator": 7, "counter_resolution": 0.0},
                {"energy_accumulator": 7, "counter_resolution": float("nan")},
                {"counter_resolution": 15.3}):
        with pytest.raises(ValueError):
            energy_fields(bad)


def test_power_going_missing_mid_window_raises() -> None:
    gpu = FakeAmdGpu(kind="mi300", has_counter=False)
    amdsmi = FakeAmdSmi([gpu], version=(6, 2))
    (meter,), _ = _open(amdsmi)
    gpu.kind = "radeon"  # current_socket_power now "N/A"
    with pytest.raises(MeterError, match="gpu0: AMD SMI gave no current socket power"):
        meter.read()


def test_a_frozen_counter_is_replaced_by_power_with_a_note() -> None:
    """ROCm/amdsmi#38 (MI100): the count never moves while the GPU draws power."""
    healthy = FakeAmdGpu(draw_per_read_j=0.5)  # moves between any two reads, as a live GPU does
    frozen = FakeAmdGpu(frozen=True, power_w=90.0)
    amdsmi = FakeAmdSmi([healthy, frozen])
    meters, notes = open_amd_gpus(amdsmi, check_s=0.01)  # type: ignore[arg-type]
    assert [(m.channel.device, m.channel.method) for m in meters] == [
        ("gpu0", "amdsmi-counter"), ("gpu1", "amdsmi-power")]
    assert notes == ["gpu1: its energy counter does not advance (a known fault of some GPUs and "
                     "virtual machines); its power is sampled instead"]
    assert meters[1].read() >= 0.0
    for meter in meters:
        meter.close()
    assert amdsmi.initialised == 0


def test_an_idle_gpu_reporting_no_power_keeps_its_counter() -> None:
    gpu = FakeAmdGpu(frozen=True, power_w=0.0)
    (meter,), notes = open_amd_gpus(FakeAmdSmi([gpu]), check_s=0.01)  # type: ignore[arg-type]
    assert meter.channel.method == "amdsmi-counter" and notes == []


def test_gpu_with_neither_counter_nor_power_is_a_note() -> None:
    gpu = FakeAmdGpu(has_counter=False, kind="mi300")
    amdsmi = FakeAmdSmi([gpu], version=(5, 7))  # 5.7 has no current_socket_power
    meters, notes = _open(amdsmi)
    assert meters == []
    assert notes == ["gpu0: neither an energy counter nor a power reading (no power reading); "
                     "its energy not measured"]
    assert amdsmi.initialised == 0


def test_init_errors_give_one_note_and_no_meters() -> None:
    assert _open(FakeAmdSmi(init_error=AMDSMI_STATUS_DRIVER_NOT_LOADED)) == ([], [NO_DRIVER_NOTE])
    meters, notes = _open(FakeAmdSmi(init_error=AMDSMI_STATUS_INIT_ERROR))
    assert meters == [] and notes == ["AMD SMI failed to start (AMD SMI failed to initialise); "
                                      "AMD GPU energy not measured"]
    amdsmi = FakeAmdSmi(handles_error=AMDSMI_STATUS_IO)
    assert _open(amdsmi) == ([], ["AMD SMI could not list GPUs (I/O error); AMD GPU energy not measured"])
    assert amdsmi.initialised == 0
    assert _open(FakeAmdSmi([])) == ([], ["AMD SMI found no GPU; AMD GPU energy not measured"])


def test_non_gpu_processors_are_skipped_and_apus_named() -> None:
    amdsmi = FakeAmdSmi([FakeAmdGpu(processor_type="AMDSMI_PROCESSOR_TYPE_AMD_CPU"),
                         FakeAmdGpu(processor_type="AMDSMI_PROCESSOR_TYPE_NON_AMD_GPU"),
                         FakeAmdGpu(processor_type="AMDSMI_PROCESSOR_TYPE_AMD_APU"),
                         FakeAmdGpu()])
    meters, notes = _open(amdsmi, first_index=2)
    assert [m.channel.device for m in meters] == ["gpu2"]
    assert len(notes) == 1 and "APU" in notes[0]


def test_identity_falls_back_to_the_bus_id() -> None:
    amdsmi = FakeAmdSmi([FakeAmdGpu(uuid=None, bdf="0000:c1:00.0")])
    (meter,), _ = _open(amdsmi)
    assert meter.uuid is None and meter.pci_bus_id == "0000:C1:00.0"


def test_session_shuts_down_after_the_last_meter() -> None:
    amdsmi = FakeAmdSmi([FakeAmdGpu(), FakeAmdGpu()])
    meters, _ = _open(amdsmi)
    assert amdsmi.initialised == 1  # one library init, held by both meters
    meters[0].close()
    assert amdsmi.shutdown_calls == 0
    meters[1].read()
    meters[1].close()
    meters[1].close()
    assert amdsmi.shutdown_calls == 1
    with pytest.raises(MeterError, match="closed"):
        meters[1].read()
    session = AmdSmiSession(amdsmi)
    session.release()  # releasing what was never held is harmless
    assert session.holders == 0


def _drm(root: Path, vendors: list[str]) -> Path:
    for i, vendor in enumerate(vendors):
        device = root / f"card{i}" / "device"
        device.mkdir(parents=True)
        (device / "vendor").write_text(vendor + "\n")
    (root / "card0-DP-1").mkdir(parents=True, exist_ok=True)  # a connector, not a card
    return root


def test_amd_gpu_present_reads_the_pci_vendor(tmp_path: Path) -> None:
    assert not amd_gpu_present(tmp_path / "missing")
    assert not amd_gpu_present(_drm(tmp_path / "nv", ["0x10de"]))
    assert amd_gpu_present(_drm(tmp_path / "amd", ["0x8086", "0x1002"]))


def test_no_amd_gpu_means_no_import_and_no_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "amdsmi", None)  # any import attempt would fail loudly
    assert open_amd_gpus(None, drm_root=_drm(tmp_path, ["0x10de"])) == ([], [])


def test_an_amd_gpu_without_amdsmi_says_how_to_install(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "amdsmi", None)  # not installed
    assert open_amd_gpus(None, drm_root=_drm(tmp_path, ["0x1002"])) == ([], [NO_LIBRARY_NOTE])
    assert "nbcarbon[amd]" in NO_LIBRARY_NOTE


def test_amdsmi_without_its_c_library_prints_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    """The real package prints two lines and raises KeyError when libamd_smi.so is missing."""
    package = tmp_path / "amdsmi"
    package.mkdir()
    (package / "__init__.py").write_text(
        "print('Could not load libamd_smi.so')\n"
        "print('Unable to find libamd_smi.so library try installing amd-smi-lib')\n"
        "_libraries = {}\n"
        "_libraries['libamd_smi.so'].amdsmi_free_name_value_pairs\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "amdsmi", raising=False)
    assert import_amdsmi() is None
    out, err = capfd.readouterr()
    assert out == "" and err == ""


# ----- probe() ----------------------------------------------------------------------------------


def test_probe_numbers_amd_gpus_after_nvidia_ones(tmp_path: Path) -> None:
    from nbcarbon.meters import probe
    from tests.fakes.nvml import FakeGpu, FakeNvml

    # The first draws power between reads, so probe's check for a frozen counter passes.
    amdsmi = FakeAmdSmi([FakeAmdGpu(draw_per_read_j=0.5), FakeAmdGpu(has_counter=False, kind="radeon")])
    result = probe(tmp_path, nvml=FakeNvml([FakeGpu()]), amdsmi=amdsmi, platform="linux")
    gpus = [(m.channel.device, m.channel.method) for m in result.meters if m.channel.component == "gpu"]
    assert gpus == [("gpu0", "nvml-counter"), ("gpu1", "amdsmi-counter"), ("gpu2", "amdsmi-power")]
    assert len({(m.channel.component, m.channel.device) for m in result.meters}) == len(result.meters)
    for meter in result.meters:
        meter.close()
    assert amdsmi.initialised == 0 and amdsmi.shutdown_calls == 1


def test_probe_without_an_amd_gpu_says_nothing_about_amd(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from nbcarbon.meters import probe
    from tests.fakes.nvml import NVML_ERROR_LIBRARY_NOT_FOUND, FakeNvml

    monkeypatch.setitem(sys.modules, "amdsmi", None)
    result = probe(tmp_path, nvml=FakeNvml(init_error=NVML_ERROR_LIBRARY_NOT_FOUND), platform="linux",
                   drm_root=_drm(tmp_path / "drm", ["0x8086"]))
    assert not any("AMD" in n or "amdsmi" in n for n in result.notes)
    result = probe(tmp_path, nvml=FakeNvml(init_error=NVML_ERROR_LIBRARY_NOT_FOUND), platform="linux",
                   drm_root=_drm(tmp_path / "drm-amd", ["0x1002"]))
    assert NO_LIBRARY_NOTE in result.notes


def test_a_package_failing_in_an_unexpected_way_is_a_note_and_releases_everything() -> None:
    """An amdsmi built for another ROCm can fail with anything (TypeError from ctypes, ...)."""

    class Broken(FakeAmdSmi):
        def amdsmi_get_gpu_asic_info(self, handle: int) -> dict[str, object]:
            if handle == 1:
                raise SystemError("ctypes argument mismatch")  # not an AmdSmiException
            return super().amdsmi_get_gpu_asic_info(handle)

    class Worse(FakeAmdSmi):
        def amdsmi_get_processor_handles(self) -> list[int]:
            raise TypeError("bad handle type")

    amdsmi = Worse([FakeAmdGpu()])
    assert _open(amdsmi) == ([], ["AMD SMI failed (TypeError); AMD GPU energy not measured"])
    assert amdsmi.initialised == 0
    # a name lookup failing is only decoration: the GPU is still measured
    broken = Broken([FakeAmdGpu(), FakeAmdGpu()])
    meters, notes = _open(broken)
    assert [m.model_name for m in meters] == ["AMD Instinct MI300X", "AMD GPU"] and notes == []


def test_a_gpu_failing_oddly_while_opening_leaves_no_hold_behind() -> None:
    class Odd(FakeAmdSmi):
        reads = 0

        def amdsmi_get_energy_count(self, handle: int) -> dict[str, object]:
            Odd.reads += 1
            if handle == 1 and Odd.reads > 2:  # fine while planned, broken when opened
                raise OverflowError("int too large to convert")
            return super().amdsmi_get_energy_count(handle)

    amdsmi = Odd([FakeAmdGpu(), FakeAmdGpu()])
    assert _open(amdsmi) == ([], ["AMD SMI failed (OverflowError); AMD GPU energy not measured"])
    assert amdsmi.initialised == 0 and amdsmi.shutdown_calls == 1  # gpu0's meter closed too


def test_a_power_reading_no_gpu_can_draw_fails_the_read_instead_of_counting() -> None:
    # Before: one 60,000 W reading between 300 W ones was integrated: 30 kJ for a 1 s window.
    gpu = FakeAmdGpu(name="AMD Radeon RX 7900 XTX", kind="radeon", has_counter=False, power_w=300.0)
    (meter,), _ = _open(FakeAmdSmi([gpu], version=(6, 4)))
    e0 = meter.read()
    gpu.power_w = 60_000.0
    with pytest.raises(MeterError,
                       match=r"gpu0 gave an implausible power reading \(60000 W, outside 0 to 2000 W\)"):
        meter.read()
    gpu.power_w = 300.0
    time.sleep(0.2)
    assert meter.read() - e0 < 300.0 * 2.0  # the glitch added nothing
