"""Long sessions: 20,000 measured cells keep memory bounded and per-cell overhead flat, and the
session's totals stay exact for all of them (records beyond the kept window leave the session but
not its totals; they stay in the notebook's outputs and the ledger)."""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from pathlib import Path

import pytest

from nbcarbon import intensity
from nbcarbon import session as session_module
from nbcarbon.footprint import co2e_g
from nbcarbon.meters.base import Channel, LockedMeter
from nbcarbon.meters.probe import ProbeResult
from nbcarbon.sampler import TIMELINE_POINTS
from tests.reliability.conftest import extension, fake_session

CELLS = 20_000


class ClockCounter(LockedMeter):
    """A hardware counter at constant power, read from the monotonic clock (no files: fast)."""

    def __init__(self, component: str, device: str, power_w: float) -> None:
        super().__init__(Channel(component, device, "rapl-counter", "machine"))
        self.power_w = power_w
        self.t0 = time.monotonic()

    def _read(self) -> float:
        return (time.monotonic() - self.t0) * self.power_w


def counters_session(tmp_path: Path):
    meters = [ClockCounter("cpu", "package-0", 20.0), ClockCounter("dram", "package-0", 2.0)]
    return fake_session(tmp_path, interval_s=60.0, probe_fn=lambda root, nvml=None: ProbeResult(meters))


def test_twenty_thousand_cells_bounded_memory_flat_overhead_exact_totals(tmp_path: Path) -> None:
    s = counters_session(tmp_path)
    s.start()
    kept = getattr(session_module, "RECORDS_KEPT", 10_000)
    energy_j = duration_s = 0.0
    fixed_g = 0.0  # cells pinned to a region and a PUE keep their price whatever the session does
    pl = intensity.lookup("PL").g_per_kwh
    pinned_region_jg = pinned_pue_jp = free_j = 0.0
    per_cell_s: list[float] = []
    memory: dict[int, int] = {}
    tracemalloc.start()
    try:
        for i in range(CELLS):
            region = "PL" if i % 7 == 0 else None
            pue = 1.5 if i % 5 == 0 else None
            t = time.perf_counter()
            fp = s.end(s.begin(label=f"cell {i}", region=region, pue=pue))
            per_cell_s.append(time.perf_counter() - t)
            energy_j += fp.energy_j
            duration_s += fp.duration_s
            if region and pue:
                fixed_g += co2e_g(fp.energy_j, 1.5, pl)
            elif region:
                pinned_region_jg += fp.energy_j * pl
            elif pue:
                pinned_pue_jp += fp.energy_j * 1.5
            else:
                free_j += fp.energy_j
            if i + 1 in (kept + 1000, CELLS):
                gc.collect()
                memory[i + 1] = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(s.records) <= kept and s.records[-1].label == f"cell {CELLS - 1}"
    assert len(s._sources) <= kept and len(s._pinned_region) <= kept and len(s._pinned_pue) <= kept
    # Once the window is full, 9,000 more cells add no memory (a few hundred kB of noise at most).
    assert memory[CELLS] - memory[kept + 1000] < 512 * 1024, memory
    # Overhead is flat: the last thousand cells cost what the first thousand did.
    first, last = statistics.median(per_cell_s[:1000]), statistics.median(per_cell_s[-1000:])
    assert last < 2.0 * first + 50e-6, (first, last)

    def expected_co2e(g_per_kwh: float, session_pue: float) -> float:
        return ((free_j * session_pue * g_per_kwh + pinned_region_jg * session_pue
                 + pinned_pue_jp * g_per_kwh) / 3.6e6 + fixed_g)

    totals = s.totals()
    assert totals.cells == CELLS
    assert totals.energy_j == pytest.approx(energy_j, rel=1e-9)
    assert totals.duration_s == pytest.approx(duration_s, rel=1e-9)
    assert totals.co2e_g == pytest.approx(expected_co2e(s.region.g_per_kwh, 1.0), rel=1e-9)
    # Re-pricing the session re-prices the forgotten cells in the totals too, pins kept.
    s.set_region("EE")
    s.set_pue(1.2)
    ee = intensity.lookup("EE").g_per_kwh
    assert s.totals().co2e_g == pytest.approx(expected_co2e(ee, 1.2), rel=1e-9)
    assert sum(s.totals().energy_by_component_j.values()) == pytest.approx(energy_j, rel=1e-9)
    assert s.sampler.timeline.maxlen == TIMELINE_POINTS
    s.reset()
    assert s.totals().cells == 0 and s.records == []
    s.close()


def test_many_cells_through_the_shell_stay_bounded(tmp_path: Path, make_shell, monkeypatch) -> None:
    """The same through real ``run_cell`` calls (auto mode), with the kept window made small."""
    monkeypatch.setattr(session_module, "RECORDS_KEPT", 100, raising=False)
    s = counters_session(tmp_path)
    ip = make_shell(s)
    ext = extension(ip)
    ip.run_cell("%carbon auto on")
    per_cell_s = []
    for i in range(600):
        t = time.perf_counter()
        ip.run_cell(f"x = {i}")
        per_cell_s.append(time.perf_counter() - t)
    assert ip.user_ns["x"] == 599
    assert len(s.records) == 100 and len(ext._shown) <= 100
    assert s.totals().cells == 600
    first, last = statistics.median(per_cell_s[:100]), statistics.median(per_cell_s[-100:])
    assert last < 2.0 * first + 200e-6, (first, last)
    ip.run_cell("%carbon summary")  # a summary covers the cells the session holds
    assert ip.run_cell("%carbon region PL").success
