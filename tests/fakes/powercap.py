"""A fake /sys/class/powercap tree whose RAPL counters advance at a known power.

Why a fake at this boundary: the meters' arithmetic (wraps, resets, duplicates, permissions)
is only testable against counters whose true energy is known, and CI machines have no RAPL.
The layout follows the kernel's: zone directories live under a devices folder, every zone and
sub-zone appears at the top level as a symlink, sub-zones are nested in their package, and an
optional ``intel-rapl-mmio:N`` repeats a package. A thread rewrites each ``energy_uj``
atomically (temp file + ``os.replace``) every ``tick_s``, wrapping at ``max_energy_range_uj``.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PowerProfile = Callable[[float], float]
"""Power in watts as a function of seconds since :meth:`FakePowercap.start`."""


def constant(power_w: float) -> PowerProfile:
    return lambda t_s: power_w


def step(before_w: float, after_w: float, at_s: float) -> PowerProfile:
    return lambda t_s: before_w if t_s < at_s else after_w


def integrate(profile: PowerProfile, t0_s: float, t1_s: float, dt_s: float = 1e-4) -> float:
    """Energy in joules of ``profile`` over [t0_s, t1_s] (midpoint rule, ``dt_s`` steps)."""
    if t1_s <= t0_s:
        return 0.0
    n = max(1, math.ceil((t1_s - t0_s) / dt_s))
    h = (t1_s - t0_s) / n
    return sum(profile(t0_s + (i + 0.5) * h) for i in range(n)) * h


@dataclass
class FakeZone:
    """One zone's state: its real directory, its power and how the fake is breaking it."""

    zone_id: str
    path: Path
    name: str
    profile: PowerProfile
    range_uj: int
    offset_uj: int = 0
    energy_j: float = 0.0
    mode: int = 0o444
    state: str = "ok"  # ok | vanished | garbage
    history: list[tuple[float, float]] = field(default_factory=list)


class FakePowercap:
    """Lays out a powercap tree under ``root`` and runs its counters on a background thread."""

    def __init__(self, root: Path, tick_s: float = 0.002) -> None:
        self.root = root
        self.devices = root / "_devices" / "intel-rapl"
        self.devices.mkdir(parents=True, exist_ok=True)
        self.tick_s = tick_s
        self.zones: dict[str, FakeZone] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0: float | None = None
        self._last_t: float | None = None
        # The control-type entry the kernel also lists at the top level (no energy_uj in it).
        control = root / "intel-rapl"
        if not control.exists():
            control.symlink_to(self.devices)

    # ----- layout -------------------------------------------------------------------------

    def _make_zone(
        self,
        zone_id: str,
        real_dir: Path,
        name: str,
        power: PowerProfile,
        range_uj: int,
        start_uj: int,
        power_limit_w: float | None,
    ) -> FakeZone:
        real_dir.mkdir(parents=True)
        (real_dir / "name").write_text(name + "\n")
        (real_dir / "max_energy_range_uj").write_text(f"{range_uj}\n")
        if power_limit_w is not None:
            (real_dir / "constraint_0_power_limit_uw").write_text(f"{int(power_limit_w * 1e6)}\n")
        zone = FakeZone(zone_id, real_dir, name, power, range_uj, offset_uj=start_uj)
        self.zones[zone_id] = zone
        self._write(zone)
        link = self.root / zone_id
        link.symlink_to(real_dir)
        return zone

    def add_package(
        self,
        index: int,
        power: PowerProfile | float = 20.0,
        *,
        range_uj: int = 262_143_328_850,
        start_uj: int = 0,
        dram: PowerProfile | float | None = None,
        core: bool = True,
        uncore: bool = False,
        mmio: bool = False,
        power_limit_w: float | None = None,
    ) -> FakeZone:
        """A ``package-N`` zone ``intel-rapl:N``, with optional sub-zones and an MMIO twin."""
        zid = f"intel-rapl:{index}"
        pkg = self._make_zone(
            zid, self.devices / zid, f"package-{index}", _profile(power), range_uj, start_uj,
            power_limit_w,
        )
        sub = 0
        subs: list[tuple[str, PowerProfile]] = []
        if core:
            subs.append(("core", _profile(power)))
        if uncore:
            subs.append(("uncore", constant(1.0)))
        if dram is not None:
            subs.append(("dram", _profile(dram)))
        for name, profile in subs:
            sid = f"{zid}:{sub}"
            self._make_zone(sid, pkg.path / sid, name, profile, range_uj, 0, None)
            sub += 1
        if mmio:
            mid = f"intel-rapl-mmio:{index}"
            self._make_zone(
                mid, self.root / "_devices" / "intel-rapl-mmio" / mid, f"package-{index}",
                _profile(power), range_uj, 0, power_limit_w,
            )
        return pkg

    def add_psys(self, power: PowerProfile | float = 50.0) -> FakeZone:
        """The platform zone, which contains the packages and must never be added to them."""
        zid = f"intel-rapl:{sum(1 for z in self.zones if z.count(':') == 1)}"
        return self._make_zone(
            zid, self.devices / zid, "psys", _profile(power), 262_143_328_850, 0, None
        )

    # ----- running ------------------------------------------------------------------------

    def start(self) -> FakePowercap:
        now = time.monotonic()
        self._t0 = self._last_t = now
        for zone in self.zones.values():
            zone.history.append((now, 0.0))
        self._thread = threading.Thread(target=self._run, name="fake-powercap", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> FakePowercap:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            self.advance()

    def advance(self) -> None:
        """Accumulates every zone's energy up to now and rewrites its counter file."""
        assert self._t0 is not None and self._last_t is not None
        with self._lock:
            now = time.monotonic()
            a, b = self._last_t - self._t0, now - self._t0
            for zone in self.zones.values():
                zone.energy_j += integrate(zone.profile, a, b, dt_s=max(b - a, 1e-9) / 8)
                zone.history.append((now, zone.energy_j))
                self._write(zone)
            self._last_t = now

    def _write(self, zone: FakeZone) -> None:
        target = zone.path / "energy_uj"
        if zone.state == "vanished":
            return
        if zone.state == "garbage":
            text = "not-a-number\n"
        else:
            raw = (zone.offset_uj + int(zone.energy_j * 1e6)) % zone.range_uj
            text = f"{raw}\n"
        tmp = zone.path / ".energy_uj.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, text.encode())
            os.fchmod(fd, zone.mode)
        finally:
            os.close(fd)
        os.replace(tmp, target)

    # ----- truth --------------------------------------------------------------------------

    def true_energy_j(self, zone_id: str, t0: float, t1: float) -> float:
        """The zone's true energy between two ``time.monotonic()`` instants (from its profile)."""
        assert self._t0 is not None
        return integrate(self.zones[zone_id].profile, t0 - self._t0, t1 - self._t0)

    def written_energy_j(self, zone_id: str, t: float) -> float:
        """Energy the zone's file showed at instant ``t`` (the last write before it)."""
        with self._lock:
            history = list(self.zones[zone_id].history)
        shown = 0.0
        for when, energy_j in history:
            if when > t:
                break
            shown = energy_j
        return shown

    # ----- breaking things ----------------------------------------------------------------

    def vanish(self, zone_id: str) -> None:
        with self._lock:
            zone = self.zones[zone_id]
            zone.state = "vanished"
            (zone.path / "energy_uj").unlink(missing_ok=True)

    def garbage(self, zone_id: str) -> None:
        with self._lock:
            zone = self.zones[zone_id]
            zone.state = "garbage"
            self._write(zone)

    def restore(self, zone_id: str) -> None:
        with self._lock:
            zone = self.zones[zone_id]
            zone.state = "ok"
            self._write(zone)

    def reset(self, zone_id: str) -> None:
        """The counter restarts from 0 (as after suspend or a driver reload)."""
        with self._lock:
            zone = self.zones[zone_id]
            zone.offset_uj = -int(zone.energy_j * 1e6)
            self._write(zone)

    def make_unreadable(self, zone_id: str, mode: int = 0o000) -> None:
        """Takes the read bits away. Mode 000 is unreadable to anyone, root included (as sysfs
        treats it); 0o400 is the real root-only mode, which only a non-root test can observe."""
        with self._lock:
            zone = self.zones[zone_id]
            zone.mode = mode
            self._write(zone)

    def make_root_only(self, mode: int = 0o000) -> None:
        """Every counter unreadable, as on Linux >= 5.10 for a normal user."""
        for zone_id in list(self.zones):
            self.make_unreadable(zone_id, mode)


def _profile(power: PowerProfile | float) -> PowerProfile:
    return power if callable(power) else constant(float(power))
