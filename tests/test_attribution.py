"""Shared machines: a cell is charged its process tree's share of machine-wide energy.

The machine is faked at its boundary: a powercap tree at a known power and a ``/proc/stat``
whose busy time moves by what the test says (the cell's own CPU time plus an outside program's,
see :func:`tests.fakes.procstat.spin`). The kernel's CPU time, the share meters, the split and
the record are the real code.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from nbcarbon.errors import SettingsError
from nbcarbon.footprint import Footprint
from nbcarbon.meters.share import FLOOR_CORES, CpuShare, CpuUse
from nbcarbon.session import Session
from nbcarbon.settings import Settings
from tests.conftest import kernel_env, records_of, run_cells
from tests.fakes.nvml import FakeGpu, FakeGpuProcess, FakeNvml
from tests.fakes.powercap import FakePowercap
from tests.fakes.procstat import FakeProcStat, quiet_stat, spin

ROOT = Path(__file__).resolve().parents[1]


def machine(tmp_path: Path, power_w: float = 40.0) -> tuple[FakePowercap, FakeProcStat]:
    fake = FakePowercap(tmp_path / "powercap")
    fake.add_package(0, power_w, dram=None, range_uj=10**12)
    return fake, FakeProcStat(tmp_path / "stat")


def session(tmp_path: Path, stat: Path, mode: str = "share", nvml: FakeNvml | None = None) -> Session:
    settings = Settings(interval_s=0.05, powercap_root=tmp_path / "powercap", ledger=None,
                        proc_stat=stat, attribution=mode)
    return Session(settings, {"NBCARBON_REGION": "SE"}, nvml=nvml or FakeNvml(gpus=[]))


def cpu(fp: Footprint):
    (c,) = [c for c in fp.components if c.component == "cpu"]
    return c


# -- the policy ------------------------------------------------------------------------------
def test_the_split_follows_busy_cpu_time_with_a_floor() -> None:
    share = CpuShare(lambda: 0.0, lambda: 0.0)
    at = CpuUse
    # Alone on the machine: all of it.
    assert share.split(at(0, 0), at(2.0, 2.02), 2.0).fraction == pytest.approx(2.0 / 2.02)
    # Another program as busy: half.
    assert share.split(at(0, 0), at(2.0, 4.0), 2.0).fraction == pytest.approx(0.5)
    # An idle machine and an idle cell: nobody else used it, the window is charged the idle power.
    assert share.split(at(0, 0), at(0.0, 0.0), 2.0).fraction == 1.0
    # A cell that waits while another program computes pays for the floor only.
    waiting = share.split(at(0, 0), at(0.0, 2.0), 2.0).fraction
    assert waiting == pytest.approx(FLOOR_CORES * 2.0 / 2.0)
    # CPU-time ticks can put the tree ahead of the machine: never more than the whole.
    assert share.split(at(0, 0), at(0.5, 0.4), 1.0).fraction == 1.0


# -- in-process sessions ---------------------------------------------------------------------
@pytest.mark.parametrize(("outside", "low", "high"), [(1.0, 0.35, 0.65), (0.0, 0.85, 1.0)],
                         ids=["outside-busy", "outside-idle"])
def test_a_busy_cell_is_charged_its_share(tmp_path: Path, outside: float, low: float,
                                          high: float) -> None:
    rapl, stat = machine(tmp_path)
    s = session(tmp_path, stat.path)
    try:
        w = s.begin("busy")
        spin(1.0, rapl, stat, outside=outside)
        fp = s.end(w)
    finally:
        s.close()
    c = cpu(fp)
    assert fp.attribution == "share" and c.method == "rapl-counter"
    assert c.share is not None and c.share.basis == "cpu-time"
    assert low <= c.share.fraction <= high, c.share
    # Both figures are kept: the machine's (exactly what the fake tree advanced) and the share.
    assert c.share.machine_energy_j == pytest.approx(rapl.energy_j("intel-rapl:0"), rel=1e-6)
    assert c.energy_j == pytest.approx(c.share.machine_energy_j * c.share.fraction, rel=1e-9)
    assert fp.energy_j == pytest.approx(sum(x.energy_j for x in fp.components))
    assert fp.co2e_g == pytest.approx(fp.energy_j / 3.6e6 * fp.pue * fp.region.g_per_kwh)
    # The record round-trips with both figures.
    again = Footprint.from_dict(fp.to_dict())
    assert again == fp and fp.to_dict()["components"][0]["share"]["basis"] == "cpu-time"


def test_machine_mode_charges_everything(tmp_path: Path) -> None:
    rapl, stat = machine(tmp_path)
    s = session(tmp_path, stat.path, mode="machine")
    try:
        w = s.begin()
        spin(0.5, rapl, stat, outside=1.0)
        fp = s.end(w)
    finally:
        s.close()
    c = cpu(fp)
    assert fp.attribution == "machine" and c.share is None
    assert c.energy_j == pytest.approx(rapl.energy_j("intel-rapl:0"), rel=1e-6)
    assert "share" not in fp.to_dict()["components"][0]


def test_switching_mode_applies_to_later_windows_and_bad_values_say_what_is_right(tmp_path: Path) -> None:
    rapl, stat = machine(tmp_path)
    s = session(tmp_path, stat.path)
    try:
        with pytest.raises(SettingsError, match="share, machine"):
            s.set_attribution("mine")
        assert s.attribution == "share"
        s.set_attribution("MACHINE")
        w = s.begin()
        rapl.advance(0.1)
        fp = s.end(w)
        assert fp.attribution == "machine" and s.attribution_chosen_by == "%carbon attribution"
    finally:
        s.close()
    with pytest.raises(SettingsError, match="NBCARBON_ATTRIBUTION must be one of share, machine"):
        Settings.from_environ({"NBCARBON_ATTRIBUTION": "half"})
    assert Settings.from_environ({}).attribution == "share"


def test_an_unreadable_machine_time_charges_whole_and_says_so(tmp_path: Path) -> None:
    rapl, stat = machine(tmp_path)
    s = session(tmp_path, stat.path)
    try:
        s.start()
        stat.path.write_text("nonsense\n")  # the kept file now holds no cpu line
        w = s.begin()
        rapl.advance(0.2)
        fp = s.end(w)
    finally:
        s.close()
    c = cpu(fp)
    assert c.share is None and c.energy_j == pytest.approx(rapl.energy_j("intel-rapl:0"), rel=1e-6)
    assert fp.attribution == "machine"
    assert any("charged whole, its share could not be worked out" in w for w in fp.warnings)


def test_no_stat_file_at_all_is_one_note_and_machine_attribution(tmp_path: Path) -> None:
    rapl, _ = machine(tmp_path)
    s = session(tmp_path, tmp_path / "missing-stat")
    try:
        notes = s.probe_result.notes
        w = s.begin()
        rapl.advance(0.1)
        fp = s.end(w)
    finally:
        s.close()
    assert any("machine CPU time not readable" in n and "charged whole" in n for n in notes)
    assert fp.attribution == "machine"
    assert any("charged whole, no per-process use" in w for w in fp.warnings)


# -- GPUs -------------------------------------------------------------------------------------
def gpu_session(tmp_path: Path, gpu: FakeGpu) -> tuple[Session, FakeNvml]:
    nvml = FakeNvml([gpu])
    return session(tmp_path, quiet_stat(tmp_path), nvml=nvml), nvml


def gpu_record(tmp_path: Path, gpu: FakeGpu) -> Footprint:
    s, _ = gpu_session(tmp_path, gpu)
    try:
        w = s.begin()
        time.sleep(0.3)
        fp = s.end(w)
    finally:
        s.close()
    (c,) = [c for c in fp.components if c.component == "gpu"]
    return fp, c


@pytest.mark.parametrize(("ours", "theirs"), [(30.0, 70.0), (80.0, 20.0), (50.0, 50.0)])
def test_a_gpu_shared_by_two_processes_is_split_by_utilisation(tmp_path: Path, ours: float,
                                                               theirs: float) -> None:
    # pid 1 exists in every pid namespace: another user's process this kernel can see.
    gpu = FakeGpu(power=200.0, processes=[FakeGpuProcess(os.getpid(), ours), FakeGpuProcess(1, theirs)])
    fp, c = gpu_record(tmp_path, gpu)
    assert c.share is not None and c.share.basis == "gpu-utilization"
    assert abs(c.share.fraction * 100 - ours / (ours + theirs) * 100) <= 5
    assert c.energy_j == pytest.approx(c.share.machine_energy_j * c.share.fraction, rel=1e-9)
    assert fp.attribution == "share"


def test_a_gpu_only_the_kernel_uses_is_all_its_own(tmp_path: Path) -> None:
    fp, c = gpu_record(tmp_path, FakeGpu(processes=[FakeGpuProcess(os.getpid(), 90.0)]))
    assert c.share is not None and c.share.fraction == 1.0
    fp, c = gpu_record(tmp_path, FakeGpu(processes=[]))  # nobody holds it: its idle power is ours
    assert c.share is not None and c.share.fraction == 1.0 and c.share.basis == "gpu-processes"


def test_an_idle_gpu_held_by_two_processes_splits_its_idle_power(tmp_path: Path) -> None:
    gpu = FakeGpu(processes=[FakeGpuProcess(os.getpid(), 0.0), FakeGpuProcess(1, 0.0)])
    fp, c = gpu_record(tmp_path, gpu)
    assert c.share is not None and c.share.basis == "gpu-processes"
    assert c.share.fraction == pytest.approx(0.5)


def test_processes_that_cannot_be_matched_charge_the_whole_gpu(tmp_path: Path) -> None:
    # A container's view: NVML lists the host's pids, none of which exists here.
    gpu = FakeGpu(processes=[FakeGpuProcess(2**22 + 17, 60.0)])
    fp, c = gpu_record(tmp_path, gpu)
    assert c.share is None and fp.attribution == "machine"
    assert any("could not be matched" in w for w in fp.warnings)


def test_a_gpu_without_per_process_figures_charges_whole(tmp_path: Path) -> None:
    fp, c = gpu_record(tmp_path, FakeGpu(utilization_error=3, processes=[FakeGpuProcess(1, 50.0)]))
    assert c.share is None
    assert any("charged whole" in w and "not supported" in w for w in fp.warnings)


# -- a real kernel ----------------------------------------------------------------------------
@pytest.mark.parametrize(("outside", "low", "high"), [(1.0, 0.35, 0.65), (0.0, 0.85, 1.0)],
                         ids=["outside-busy", "outside-idle"])
def test_in_a_real_kernel(tmp_path: Path, outside: float, low: float, high: float) -> None:
    rapl, stat = machine(tmp_path)
    env = kernel_env(tmp_path, NBCARBON_POWERCAP_ROOT=str(tmp_path / "powercap"),
                     NBCARBON_PROC_STAT=str(stat.path), PYTHONPATH=str(ROOT))
    cell = (
        "%%carbon --label busy\n"
        "from tests.fakes.powercap import FakePowercap\n"
        "from tests.fakes.procstat import FakeProcStat, spin\n"
        f"spin(2.0, FakePowercap.attach({str(tmp_path / 'powercap')!r}), "
        f"FakeProcStat.attach({str(stat.path)!r}), outside={outside})\n"
    )
    nb = run_cells(["%load_ext nbcarbon", cell, "%carbon status"], env)
    (rec,) = records_of(nb.cells[1])
    (c,) = [c for c in rec["components"] if c["component"] == "cpu"]
    assert rec["attribution"] == "share"
    assert low <= c["share"]["fraction"] <= high, c
    assert c["share"]["machine_energy_j"] == pytest.approx(40.0 * rec["duration_s"], rel=0.1)
    assert c["energy_j"] == pytest.approx(c["share"]["machine_energy_j"] * c["share"]["fraction"])
    readout = next(o for o in nb.cells[1].outputs if "nbcarbon" in o.get("metadata", {}))
    assert "your share" in readout["data"]["text/plain"]
    status = "".join(o.get("text", "") for o in nb.cells[2].outputs)
    assert "attribution: share (chosen by default)" in status and "CPU time" in status


def test_the_magic_switches_mode_in_a_real_shell(shell, tmp_path: Path, monkeypatch) -> None:
    out = shell.run_cell("%carbon attribution machine")
    assert out.success
    from nbcarbon.api import default_session

    assert default_session().attribution == "machine"
    bad = shell.run_cell("%carbon attribution half")
    assert not bad.success and "share, machine" in str(bad.error_in_exec)
    assert default_session().attribution == "machine"  # nothing changed by the bad value
