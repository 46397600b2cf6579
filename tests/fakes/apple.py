"""A fake ``zeus_apple_silicon`` module: ``AppleEnergyMonitor`` and ``AppleEnergyMetrics`` as the
real package (1.0.0-1.1.0, read from its source) shapes them, over an SoC whose energy is known.

Why: CI runs on Linux, and the meter's contract (one sample per boundary, the CPU total never
added to its own clusters and cores, channels a chip lacks left out, IOReport failing mid-window)
is only checkable on demand. ``get_cumulative_energy()`` returns integers in millijoules since a
fixed point, ``None`` for a channel the chip lacks; the per-core and per-cluster fields are parts
of ``cpu_total_mj``, as on real chips. Counters move only when a test says so (:meth:`add_energy`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from types import SimpleNamespace


@dataclass
class AppleEnergyMetrics:
    """Field for field the binding's class (bindings/energy_bindings.hpp); all in mJ."""

    cpu_total_mj: int | None = None
    efficiency_cores_mj: list[int] | None = None
    performance_cores_mj: list[int] | None = None
    efficiency_cluster_mj: list[int] | None = None
    performance_cluster_mj: list[int] | None = None
    efficiency_core_manager_mj: int | None = None
    performance_core_manager_mj: int | None = None
    dram_mj: int | None = None
    gpu_mj: int | None = None
    gpu_sram_mj: int | None = None
    ane_mj: int | None = None


class FakeSoc:
    """An Apple SoC's cumulative energy per subsystem, and how IOReport is failing."""

    def __init__(self, dram: bool = True, ane: bool = True, start_mj: int = 7_000_000) -> None:
        self.joules = {"cpu": 0.0, "gpu": 0.0, "ane": 0.0, "dram": 0.0}
        self.has_dram = dram
        self.has_ane = ane
        self.start_mj = start_mj
        self.samples = 0
        #: Set: the constructor raises RuntimeError with this text (no IOReport subscription).
        self.open_error: str | None = None
        #: Set: each sample raises RuntimeError with this text.
        self.sample_error: str | None = None
        #: The sample lacks IOReportChannels: every field None (what the binding returns then).
        self.empty = False

    def add_energy(self, cpu: float = 0.0, gpu: float = 0.0, ane: float = 0.0, dram: float = 0.0) -> None:
        for name, joules in (("cpu", cpu), ("gpu", gpu), ("ane", ane), ("dram", dram)):
            self.joules[name] += joules

    def metrics(self) -> AppleEnergyMetrics:
        self.samples += 1
        if self.sample_error is not None:
            raise RuntimeError(self.sample_error)
        if self.empty:
            return AppleEnergyMetrics()

        def mj(name: str) -> int:
            return self.start_mj + int(self.joules[name] * 1000)

        cpu = mj("cpu")
        share = (cpu - self.start_mj) // 10
        return AppleEnergyMetrics(
            cpu_total_mj=cpu,
            efficiency_cores_mj=[share, share],
            performance_cores_mj=[2 * share] * 3,
            efficiency_cluster_mj=[2 * share + 5],
            performance_cluster_mj=[6 * share + 9],
            efficiency_core_manager_mj=3,
            performance_core_manager_mj=4,
            dram_mj=mj("dram") if self.has_dram else None,
            gpu_mj=mj("gpu"),
            gpu_sram_mj=mj("gpu") // 20,
            ane_mj=mj("ane") if self.has_ane else None,
        )


def fake_module(soc: FakeSoc) -> SimpleNamespace:
    """A module object with the package's two names, over ``soc``."""

    class AppleEnergyMonitor:
        def __init__(self) -> None:
            if soc.open_error is not None:
                raise RuntimeError(soc.open_error)
            self._windows: dict[str, AppleEnergyMetrics] = {}

        def get_cumulative_energy(self) -> AppleEnergyMetrics:
            return soc.metrics()

        def begin_window(self, key: str, restart: bool = False) -> None:
            if key in self._windows and not restart:
                raise RuntimeError("Measurement with specified key already exists.")
            self._windows[key] = soc.metrics()

        def end_window(self, key: str) -> AppleEnergyMetrics:
            if key not in self._windows:
                raise RuntimeError("No measurement with provided key had been started.")
            start, end = self._windows.pop(key), soc.metrics()
            out = AppleEnergyMetrics()
            for f in fields(AppleEnergyMetrics):
                a, b = getattr(start, f.name), getattr(end, f.name)
                if isinstance(a, int) and isinstance(b, int):
                    setattr(out, f.name, b - a)
            return out

    return SimpleNamespace(AppleEnergyMonitor=AppleEnergyMonitor, AppleEnergyMetrics=AppleEnergyMetrics)
