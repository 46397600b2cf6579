"""NVML meters against a fake NVML module whose GPUs draw a known power."""

from __future__ import annotations

import math
import time

import pytest

from nbcarbon.errors import MeterError
from nbcarbon.meters.nvml import NO_DRIVER_NOTE, NvmlSession, open_gpus
from tests.fakes.nvml import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    FakeGpu,
    FakeNvml,
)


def test_counter_path_matches_truth() -> None:
    nvml = FakeNvml([FakeGpu(power=150.0)])
    meters, notes = open_gpus(nvml)
    assert notes == []
    (meter,) = meters
    assert meter.channel.method == "nvml-counter"
    assert meter.channel.device == "gpu0" and meter.channel.component == "gpu"
    assert meter.model_name == "NVIDIA A100-SXM4-40GB"
    t0 = time.monotonic()
    e0 = meter.read()
    time.sleep(0.3)
    e1 = meter.read()
    t1 = time.monotonic()
    assert e1 - e0 == pytest.approx(nvml.true_energy_j(0, t0, t1), rel=0.02)
    meter.close()


def test_power_path_integrates_within_a_few_percent() -> None:
    def wave(t_s: float) -> float:
        return 120.0 + 60.0 * math.sin(2 * math.pi * t_s)

    nvml = FakeNvml([FakeGpu(name=b"Tesla P100-PCIE-16GB", power=wave, has_counter=False)])
    (meter,), _ = open_gpus(nvml)
    assert meter.channel.method == "nvml-power"
    assert meter.model_name == "Tesla P100-PCIE-16GB"  # bytes from older pynvml decoded
    t0 = time.monotonic()
    e0 = meter.read()
    while time.monotonic() - t0 < 0.8:
        time.sleep(0.01)
        meter.read()
    e1 = meter.read()
    t1 = time.monotonic()
    assert e1 - e0 == pytest.approx(nvml.true_energy_j(0, t0, t1), rel=0.03)
    assert meter.last_power_w is not None


def test_gpu_lost_mid_window_raises_and_keeps_total() -> None:
    nvml = FakeNvml([FakeGpu(power=100.0, lost_after_s=0.2)])
    (meter,), _ = open_gpus(nvml)
    time.sleep(0.1)
    before = meter.read()
    assert before > 0
    time.sleep(0.15)
    with pytest.raises(MeterError, match="gpu0.*GPU is lost"):
        meter.read()
    nvml.gpus[0].lost_after_s = None  # comes back (e.g. after a reset)
    assert meter.read() >= before


def test_gpu_lost_after_calls_on_power_path() -> None:
    nvml = FakeNvml([FakeGpu(power=80.0, has_counter=False, lost_after_calls=3)])
    (meter,), _ = open_gpus(nvml)
    time.sleep(0.05)
    before = meter.read()
    with pytest.raises(MeterError, match="lost"):
        meter.read()
    nvml.gpus[0].lost_after_calls = None
    time.sleep(0.05)
    assert meter.read() > before


@pytest.mark.parametrize("code", [NVML_ERROR_LIBRARY_NOT_FOUND, NVML_ERROR_DRIVER_NOT_LOADED])
def test_init_failure_gives_one_quiet_note(code: int) -> None:
    meters, notes = open_gpus(FakeNvml(init_error=code))
    assert meters == []
    assert notes == [NO_DRIVER_NOTE]


def test_real_pynvml_without_driver_is_quiet() -> None:
    meters, notes = open_gpus()  # this imports the real pynvml
    if meters:
        for meter in meters:
            meter.close()
        pytest.skip("this machine has an NVIDIA GPU")
    assert len(notes) == 1 and len(notes[0]) < 80


def test_session_initialises_once_and_shuts_down_with_the_last_meter() -> None:
    nvml = FakeNvml([FakeGpu(), FakeGpu(name="NVIDIA H100", has_counter=False)])
    meters, _ = open_gpus(nvml)
    assert [m.channel.device for m in meters] == ["gpu0", "gpu1"]
    assert [m.channel.method for m in meters] == ["nvml-counter", "nvml-power"]
    assert nvml.init_calls == 1 and nvml.shutdown_calls == 0
    meters[0].close()
    meters[0].close()  # twice is harmless
    assert nvml.shutdown_calls == 0
    meters[1].read()
    meters[1].close()
    assert nvml.shutdown_calls == 1
    with pytest.raises(MeterError, match="closed"):
        meters[1].read()


def test_no_gpus_and_unmeasurable_gpu_give_notes() -> None:
    meters, notes = open_gpus(FakeNvml([]))
    assert meters == [] and len(notes) == 1
    broken = FakeNvml([FakeGpu(has_counter=False, lost_after_calls=0)])
    meters, notes = open_gpus(broken)
    assert meters == []
    assert len(notes) == 1 and "gpu0" in notes[0]
    assert broken.initialised == 0  # nothing left holding NVML open


def test_session_counts_holders() -> None:
    nvml = FakeNvml([])
    session = NvmlSession(nvml)
    session.acquire()
    session.acquire()
    session.release()
    assert nvml.shutdown_calls == 0 and session.holders == 1
    session.release()
    session.release()  # one too many: ignored
    assert nvml.shutdown_calls == 1 and nvml.init_calls == 1


def test_each_gpu_knows_its_board_by_uuid_or_else_pci_bus_id() -> None:
    """gpu0 is only a position; the UUID (or the bus id where a driver gives none) names the
    board, so a cluster can count two pods' gpu0 as two GPUs (nbcarbon.cluster)."""
    gpus = [FakeGpu(uuid="GPU-8f6c0a2e-0000-0000-0000-000000000001"),
            FakeGpu(uuid=None, pci_bus_id="00000000:3b:00.0"), FakeGpu(uuid=None, pci_bus_id=None)]
    meters, notes = open_gpus(FakeNvml(gpus))
    assert notes == [] and [m.channel.device for m in meters] == ["gpu0", "gpu1", "gpu2"]
    assert [(m.uuid, m.pci_bus_id) for m in meters] == [
        ("GPU-8f6c0a2e-0000-0000-0000-000000000001", None), (None, "00000000:3B:00.0"), (None, None)]
    for meter in meters:
        meter.close()


def test_identity_from_older_bindings_returning_bytes() -> None:
    """Older NVML bindings returned the UUID as bytes; the bus id is bytes in every version."""
    from nbcarbon.meters.nvml import gpu_identity

    class OldBindings(FakeNvml):
        def nvmlDeviceGetUUID(self, handle: int) -> bytes:  # noqa: N802 - pynvml's name
            return super().nvmlDeviceGetUUID(handle).encode()

    nvml = OldBindings([FakeGpu(uuid="GPU-abc")])
    nvml.nvmlInit()
    assert gpu_identity(nvml, 0) == ("GPU-abc", None)


class _Glitchy(FakeNvml):
    """The fake, with one bad value (or a counter restart) at the next read when asked."""

    energy_glitch: int | None = None
    power_glitch: int | None = None
    restart_at_mj: int = 0

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        if self.energy_glitch is not None:
            raw, self.energy_glitch = self.energy_glitch, None
            return raw
        return super().nvmlDeviceGetTotalEnergyConsumption(handle) - self.restart_at_mj

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        if self.power_glitch is not None:
            raw, self.power_glitch = self.power_glitch, None
            return raw
        return super().nvmlDeviceGetPowerUsage(handle)


def test_an_energy_counter_jump_no_gpu_can_draw_is_refused_and_named() -> None:
    # Before: one read of 2**40 mJ in a 0.9 s window at 100 W was recorded as 1.1 GJ, no warning.
    nvml = _Glitchy([FakeGpu(power=100.0)])
    (meter,), _ = open_gpus(nvml)
    t0 = time.monotonic()
    e0 = meter.read()
    nvml.energy_glitch = 2**40
    meter.read()
    assert meter.anomalies().held and meter.anomalies().jumps == 1
    time.sleep(0.2)
    e1 = meter.read()
    t1 = time.monotonic()
    assert e1 - e0 == pytest.approx(nvml.true_energy_j(0, t0, t1), rel=0.05)
    assert not meter.anomalies().held
    meter.close()


def test_a_counter_restart_is_named_in_the_anomalies() -> None:
    # Before: NvmlMeter kept its counter's tally to itself, so a record never said what a GPU
    # reset cost. The fake's clock is stepped by hand: the restarted counter stays below the
    # last good value however slowly this machine runs the test.
    now = [0.0]
    nvml = _Glitchy([FakeGpu(power=100.0)], clock=lambda: now[0])
    (meter,), _ = open_gpus(nvml)
    now[0] = 0.4
    meter.read()  # 40 J
    nvml.restart_at_mj = nvml.nvmlDeviceGetTotalEnergyConsumption(0)  # the counter starts again
    now[0] = 0.41
    meter.read()  # 1 J: below the last good value, kept as a candidate
    now[0] = 0.5
    meter.read()  # 10 J: on from the candidate, a restart
    assert meter.anomalies().resets == 1
    meter.close()


def test_a_power_reading_no_gpu_can_draw_fails_the_read() -> None:
    # Before: 0xFFFFFFFF mW (NVML's "unknown") was integrated: 2.1 MJ in a 1 s window.
    nvml = _Glitchy([FakeGpu(name=b"Tesla P100-PCIE-16GB", power=100.0, has_counter=False)])
    (meter,), _ = open_gpus(nvml)
    e0 = meter.read()
    nvml.power_glitch = 0xFFFFFFFF
    with pytest.raises(MeterError, match="gpu0 gave an implausible power reading"):
        meter.read()
    time.sleep(0.2)
    assert meter.read() - e0 < 100.0 * 1.0
    meter.close()
