"""platform_lines(): per platform, what nbcarbon reads, what this machine gave, how to get more."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nbcarbon.meters import ProbeResult, probe
from nbcarbon.meters.platform_notes import platform_lines
from tests.fakes.amdsmi import FakeAmdGpu, FakeAmdSmi
from tests.fakes.apple import FakeSoc, fake_module
from tests.fakes.hwmon import FakeHwmon
from tests.fakes.nvml import NVML_ERROR_LIBRARY_NOT_FOUND, FakeGpu, FakeNvml
from tests.fakes.powercap import FakePowercap


def _no_nvidia() -> FakeNvml:
    return FakeNvml(init_error=NVML_ERROR_LIBRARY_NOT_FOUND)


@pytest.fixture(autouse=True)
def _no_zeus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zeus_apple_silicon", None)  # as on this Linux test machine


def _lines(result: ProbeResult) -> list[str]:
    lines = platform_lines(result)
    for meter in result.meters:
        meter.close()
    assert all("\n" not in line for line in lines)
    return lines


def test_linux_with_counters_everywhere_needs_no_advice(tmp_path: Path) -> None:
    cap = FakePowercap(tmp_path / "powercap")
    cap.add_package(0, 40.0, dram=5.0)
    result = probe(cap.root, nvml=FakeNvml([FakeGpu()]), platform="linux", machine="x86_64",
                   amdsmi=FakeAmdSmi([FakeAmdGpu(has_counter=False, kind="radeon")]))
    lines = _lines(result)
    assert lines[0].startswith("platform: Linux (x86_64); nbcarbon reads RAPL powercap")
    assert lines[1:] == ["measured here: cpu package-0 (RAPL), dram package-0 (RAPL), gpu gpu0 (NVML)",
                         "sampled here: gpu gpu1 (AMD SMI power)"]


def test_linux_without_counters_says_what_to_load(tmp_path: Path) -> None:
    lines = _lines(probe(tmp_path / "none", nvml=_no_nvidia(), platform="linux", machine="x86_64"))
    assert "estimated here: cpu process tree (CPU-time model), memory process tree (memory model)" in lines
    assert any(line.startswith("to measure cpu: load the powercap RAPL driver") for line in lines)
    gpu = [line for line in lines if line.startswith("to measure gpu:")]
    assert len(gpu) == 1 and "nbcarbon[amd]" in gpu[0]
    assert not any("dram" in line for line in lines)  # the cpu advice covers memory too


def test_linux_root_only_counters_point_at_the_note(tmp_path: Path) -> None:
    cap = FakePowercap(tmp_path / "powercap")
    cap.add_package(0, 40.0)
    cap.make_root_only()
    lines = _lines(probe(cap.root, use_gpu=False, platform="linux", machine="x86_64"))
    assert "to measure cpu: make the counters readable (the note above says how)" in lines
    assert not any(line.startswith("to measure gpu") for line in lines)  # GPUs were not looked for


def test_amd_cpu_without_dram_counter_says_none_exists(tmp_path: Path) -> None:
    hw = FakeHwmon(tmp_path / "hwmon")
    hw.add_amd_energy(sockets=2)
    lines = _lines(probe(tmp_path / "none", use_gpu=False, hwmon_root=hw.root, platform="linux",
                         machine="x86_64"))
    assert "measured here: cpu package-0 (amd_energy), cpu package-1 (amd_energy)" in lines
    assert any(line.startswith("dram cannot be measured here: RAPL has DRAM zones on Intel")
               for line in lines)


def test_apple_silicon_measured(tmp_path: Path) -> None:
    result = probe(tmp_path / "none", apple=fake_module(FakeSoc(dram=False)), platform="darwin",
                   machine="arm64", proc=tmp_path / "no-proc")
    assert _lines(result) == [
        "platform: macOS (arm64); nbcarbon reads IOReport (Apple Silicon CPU, GPU, Neural Engine and, "
        "on some chips, DRAM)",
        "measured here: cpu soc (IOReport), gpu gpu0 (IOReport), gpu Neural Engine (IOReport)",
        "estimated here: memory process tree (memory model)",
        "dram cannot be measured here: this chip's IOReport has no DRAM channel; the memory model "
        "stands in",
    ]


def test_apple_silicon_without_the_package_says_how_to_install(tmp_path: Path) -> None:
    lines = _lines(probe(tmp_path / "none", platform="darwin", machine="arm64", proc=tmp_path / "np"))
    assert lines[-1] == ("to measure cpu and gpu: pip install 'nbcarbon[apple]' (zeus-apple-silicon reads "
                         "the IOReport counters of Apple Silicon, no sudo)")


def test_apple_silicon_whose_ioreport_fails_points_at_the_note(tmp_path: Path) -> None:
    soc = FakeSoc()
    soc.open_error = "Failed to create IOReport subscription."
    lines = _lines(probe(tmp_path / "none", apple=fake_module(soc), platform="darwin", machine="arm64",
                         proc=tmp_path / "np"))
    assert lines[-1] == "to measure cpu and gpu: IOReport could not be read (the note above says why)"


def test_intel_mac_says_only_models_exist(tmp_path: Path) -> None:
    lines = _lines(probe(tmp_path / "none", platform="darwin", machine="x86_64", proc=tmp_path / "np"))
    assert lines[0] == ("platform: macOS (x86_64); nbcarbon reads nothing without sudo on an Intel Mac: "
                        "CPU and memory are estimated")
    assert lines[-1].startswith("to measure cpu: on an Apple Silicon Mac under Rosetta")


def test_windows(tmp_path: Path) -> None:
    result = probe(tmp_path / "none", nvml=_no_nvidia(), platform="win32", machine="AMD64")
    assert any(n.startswith("CPU energy not measured (no energy counter is read on Windows)")
               for n in result.notes)
    lines = _lines(result)
    assert lines[0].startswith("platform: Windows (AMD64); nbcarbon reads NVML (NVIDIA GPUs)")
    assert lines[-1] == "to measure gpu: NVIDIA GPUs need their driver (NVML, installed with nbcarbon)"


def test_an_empty_result_still_reads() -> None:
    assert platform_lines(ProbeResult()) == [
        "platform: unknown; nbcarbon reads NVML (NVIDIA GPUs); CPU and memory are estimated",
        "measured here: nothing",
    ]
