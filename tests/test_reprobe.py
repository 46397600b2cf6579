"""A RAPL zone unreadable when the session starts is used once it becomes readable.

The README promises that "measuring resumes when the hardware answers again"; a counter that is
root-only at load (or whose driver comes up late) must not leave the whole session on the
CPU-time model. The powercap tree is a temporary directory laid out like the kernel's.
"""

from __future__ import annotations

import os
from pathlib import Path

from nbcarbon.session import Session
from nbcarbon.settings import Settings
from tests.fakes.procstat import quiet_stat


def _zone(root: Path, energy_uj: int, mode: int) -> Path:
    zone = root / "intel-rapl:0"
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text("262143328850\n")
    energy = zone / "energy_uj"
    energy.write_text(f"{energy_uj}\n")
    os.chmod(energy, mode)
    return energy


def test_unreadable_zone_is_tried_again_and_used_between_windows(tmp_path: Path) -> None:
    energy = _zone(tmp_path, 1_000_000, 0o000)
    session = Session(Settings(powercap_root=tmp_path, interval_s=1.0,
                                proc_stat=quiet_stat(tmp_path.parent)), {"NBCARBON_REGION": "SE"})
    session.reprobe_every_s = 0.0
    try:
        session.start()
        assert [m.channel.method for m in session.probe_result.meters][0] == "cpu-time-model"
        fp = session.end(session.begin("before"))
        assert "cpu-time-model" in {c.method for c in fp.components}
        os.chmod(energy, 0o444)
        window = session.begin("after")
        energy.write_text("3000000\n")  # 2 J in the window
        fp = session.end(window)
        cpu = [c for c in fp.components if c.component == "cpu"]
        assert [c.method for c in cpu] == ["rapl-counter"] and cpu[0].energy_j == 2.0
        assert any("readable now" in n for n in session.take_notices())
    finally:
        session.close()


def test_no_reprobe_while_a_window_is_open(tmp_path: Path) -> None:
    energy = _zone(tmp_path, 1_000_000, 0o000)
    session = Session(Settings(powercap_root=tmp_path, interval_s=1.0,
                                proc_stat=quiet_stat(tmp_path.parent)), {"NBCARBON_REGION": "SE"})
    session.reprobe_every_s = 0.0
    try:
        outer = session.begin("outer")
        os.chmod(energy, 0o444)
        inner = session.end(session.begin("inner"))  # opened inside: the meters cannot change
        assert "rapl-counter" not in {c.method for c in inner.components}
        assert "rapl-counter" not in {c.method for c in session.end(outer).components}
        assert "rapl-counter" in {c.method for c in session.end(session.begin("next")).components}
    finally:
        session.close()
