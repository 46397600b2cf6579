"""probe(): which meters a machine gets, in which order, and what the notes tell a person."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from nbcarbon.meters import ProbeResult, probe
from nbcarbon.meters.cputime import CpuTimeMeter
from nbcarbon.meters.memory import MemoryModelMeter
from nbcarbon.meters.nvml import NvmlMeter
from nbcarbon.meters.rapl import RaplMeter
from tests.fakes.nvml import NVML_ERROR_LIBRARY_NOT_FOUND, FakeGpu, FakeNvml
from tests.fakes.powercap import FakePowercap


def _kinds(result: ProbeResult) -> list[tuple[str, str]]:
    return [(m.channel.component, m.channel.method) for m in result.meters]


def test_empty_root_falls_back_to_models(tmp_path: Path) -> None:
    result = probe(tmp_path, nvml=FakeNvml(init_error=NVML_ERROR_LIBRARY_NOT_FOUND))
    assert _kinds(result) == [("cpu", "cpu-time-model"), ("memory", "memory-model")]
    assert isinstance(result.meters[0], CpuTimeMeter)
    assert isinstance(result.meters[1], MemoryModelMeter)
    assert len(result.notes) == 3
    assert result.notes[0].startswith("CPU energy not measured (no RAPL counters")
    assert "W per core" in result.notes[0]
    assert result.notes[1].startswith("memory energy not measured")
    assert "GPU" in result.notes[2]
    assert all("\n" not in note for note in result.notes)


def test_this_machine_without_gpu_flag(tmp_path: Path) -> None:
    result = probe(tmp_path, use_gpu=False)
    assert [m.channel.component for m in result.meters] == ["cpu", "memory"]
    assert len(result.notes) == 2


def test_full_machine_measures_everything(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path / "powercap")
    fake.add_package(0, 40.0, dram=6.0, mmio=True)
    fake.add_package(1, 40.0, dram=6.0)
    fake.add_psys()
    nvml = FakeNvml([FakeGpu(), FakeGpu(has_counter=False)])
    result = probe(fake.root, nvml=nvml)
    assert _kinds(result) == [
        ("cpu", "rapl-counter"), ("cpu", "rapl-counter"),
        ("dram", "rapl-counter"), ("dram", "rapl-counter"),
        ("gpu", "nvml-counter"), ("gpu", "nvml-power"),
    ]
    assert result.notes == []
    assert all(isinstance(m, RaplMeter) for m in result.meters[:4])
    assert all(isinstance(m, NvmlMeter) for m in result.meters[4:])
    for meter in result.meters:
        meter.close()
    assert nvml.shutdown_calls == 1


def test_package_without_dram_zone_models_memory(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path)
    fake.add_package(0, 40.0)  # AMD: package and core, no dram
    result = probe(tmp_path, use_gpu=False)
    assert _kinds(result) == [("cpu", "rapl-counter"), ("memory", "memory-model")]
    assert result.notes == [
        "memory energy not measured (no RAPL DRAM counter on this CPU); "
        "estimated from resident memory x 0.375 W per GB"
    ]


def test_root_only_counters_give_one_fix_note_and_models(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path)
    fake.add_package(0, 40.0, dram=5.0)
    fake.add_package(1, 40.0, dram=5.0)
    fake.make_root_only()
    result = probe(tmp_path, use_gpu=False)
    assert _kinds(result) == [("cpu", "cpu-time-model"), ("memory", "memory-model")]
    fix_notes = [n for n in result.notes if "chmod" in n]
    assert len(fix_notes) == 1
    assert "readable only by root" in result.notes[1]


def test_importing_meters_loads_no_hardware_library() -> None:
    code = (
        "import sys, nbcarbon.meters\n"
        "assert 'psutil' not in sys.modules, 'psutil'\n"
        "assert 'pynvml' not in sys.modules, 'pynvml'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
