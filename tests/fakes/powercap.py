"""A fake /sys/class/powercap tree whose RAPL counters advance by exactly what a test says.

Why a fake at this boundary: the meters' arithmetic (wraps, resets, glitches, duplicates,
permissions) is only testable against counters whose true energy is known, and CI machines have
no RAPL. The layout follows the kernel's: zone directories live under a devices folder, every
zone and sub-zone appears at the top level as a symlink, sub-zones are nested in their package,
and an optional ``intel-rapl-mmio:N`` repeats a package.

Why no writer thread: a regular file cannot compute its value when it is read, and a thread that
rewrites it every tick falls behind on a busy machine, so the energy of a window depended on the
scheduler. Here the counters move only when the code being measured says so (:meth:`run`,
:meth:`advance`, :meth:`add_energy`), synchronously, on the fake's own clock: the energy of a
window is the energy advanced inside it, exactly, however slow the machine. Each ``energy_uj``
is rewritten atomically (temp file + ``os.replace``), wrapping at ``max_energy_range_uj``.

Two rules keep a test honest about what real hardware can do:

- counters never run ahead of real time: :meth:`run` advances in small steps, none before its
  time, so no meter sees much more power than the fake draws (meters refuse steps beyond the
  zone's power cap as implausible);
- a wrap is seen only if a meter reads between two wraps: with a small range, register the
  session's or meter's read in :attr:`observers` (called after every change of the files,
  advances and faults alike) instead of hoping the sampler thread gets scheduled in time.

A kernel in another process drives the same tree with :meth:`FakePowercap.attach`.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PowerProfile = Callable[[float], float]
"""Power in watts as a function of seconds on the fake's clock (:attr:`FakePowercap.elapsed_s`)."""

#: How far :meth:`FakePowercap.run` may fall behind the clock before it stops catching up:
#: catching up bursts that much energy at once, which stays below every meter's power cap.
MAX_BEHIND_S = 0.1
#: Where the tree's layout is written for :meth:`FakePowercap.attach` (not a zone: never scanned).
MANIFEST = "_devices/fake-powercap.json"


@dataclass(frozen=True)
class Constant:
    """A constant power; a class (not a lambda) so another process can rebuild it."""

    power_w: float

    def __call__(self, t_s: float) -> float:
        return self.power_w


def constant(power_w: float) -> PowerProfile:
    return Constant(float(power_w))


def step(before_w: float, after_w: float, at_s: float) -> PowerProfile:
    return lambda t_s: before_w if t_s < at_s else after_w


def integrate(profile: PowerProfile, t0_s: float, t1_s: float, dt_s: float = 1e-4) -> float:
    """Energy in joules of ``profile`` over [t0_s, t1_s] (midpoint rule, ``dt_s`` steps)."""
    if t1_s <= t0_s:
        return 0.0
    if isinstance(profile, Constant):
        return profile.power_w * (t1_s - t0_s)
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
    state: str = "ok"  # ok | vanished | shown (the file holds ``shown`` instead of the counter)
    shown: str = ""

    def raw_uj(self) -> int:
        """What the counter file holds when the zone is healthy."""
        return (self.offset_uj + int(self.energy_j * 1e6)) % self.range_uj


class FakePowercap:
    """Lays out a powercap tree under ``root``; its counters move only when told to."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.devices = root / "_devices" / "intel-rapl"
        self.devices.mkdir(parents=True, exist_ok=True)
        self.zones: dict[str, FakeZone] = {}
        #: Seconds the counters have run at their profiles (the fake's clock, not real time).
        self.elapsed_s = 0.0
        #: Called after every change of the counter files (advances and faults alike), e.g.
        #: ``session.sampler.read_all``: a reader that sees every value the files ever hold, so
        #: no wrap is missed and every fault is seen, whatever the scheduler does with the
        #: sampler thread.
        self.observers: list[Callable[[], object]] = []
        self._lock = threading.RLock()
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
        self._write_manifest()
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

    def _write_manifest(self) -> None:
        manifest = {
            zid: {"path": str(z.path.relative_to(self.root)), "name": z.name,
                  "range_uj": z.range_uj,
                  "power_w": z.profile.power_w if isinstance(z.profile, Constant) else None}
            for zid, z in self.zones.items()
        }
        (self.root / MANIFEST).write_text(json.dumps(manifest))

    @classmethod
    def attach(cls, root: Path | str) -> FakePowercap:
        """The tree another process laid out at ``root``, to advance from this process (a kernel).

        Counters continue from what their files hold; the energy and clock of the returned fake
        count from now. Only constant-power zones can be attached (a profile cannot be sent).
        """
        root = Path(root)
        fake = cls.__new__(cls)
        fake.root = root
        fake.devices = root / "_devices" / "intel-rapl"
        fake.zones = {}
        fake.elapsed_s = 0.0
        fake.observers = []
        fake._lock = threading.RLock()
        for zid, z in json.loads((root / MANIFEST).read_text()).items():
            if z["power_w"] is None:
                raise ValueError(f"zone {zid} has no constant power: it cannot be attached")
            path = root / z["path"]
            try:
                offset = int((path / "energy_uj").read_text())
            except (OSError, ValueError):
                offset = 0
            zone = FakeZone(zid, path, z["name"], constant(z["power_w"]), z["range_uj"],
                            offset_uj=offset)
            fake.zones[zid] = zone
        return fake

    # ----- moving the counters ------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Runs every zone ``seconds`` further on its profile, rewrites the files, calls observers.

        Instantaneous: a meter that reads just before and just after sees the whole step at
        once. Keep steps small (as :meth:`run` does) where meters bound steps by power x time.
        """
        with self._lock:
            a, b = self.elapsed_s, self.elapsed_s + seconds
            for zone in self.zones.values():
                zone.energy_j += integrate(zone.profile, a, b)
                self._write(zone)
            self.elapsed_s = b
        self._notify()

    def add_energy(self, zone_id: str, joules: float) -> None:
        """Adds ``joules`` to one zone's counter now (the clock does not move), then observers."""
        with self._lock:
            zone = self.zones[zone_id]
            zone.energy_j += joules
            self._write(zone)
        self._notify()

    def run(self, seconds: float, step_s: float = 0.01) -> None:
        """Advances ``seconds`` in steps of about ``step_s``, step ``k`` no earlier than ``k``
        steps of real time after the call: the counters never run ahead of the clock, the call
        lasts ``seconds`` plus only the last step's lateness (no drift on a busy machine), and
        the energy added is exactly the profile's. A caller more than :data:`MAX_BEHIND_S` late
        gives up that lateness rather than bursting it, so no meter sees more than its power
        cap allows."""
        n = max(1, round(seconds / step_s))
        dt = seconds / n
        start = time.monotonic()
        for k in range(1, n + 1):
            late = time.monotonic() - (start + k * dt)
            if late < 0:
                time.sleep(-late)
            elif late > MAX_BEHIND_S:
                start += late - MAX_BEHIND_S
            self.advance(dt)

    def _notify(self) -> None:
        for observe in list(self.observers):
            observe()

    def _write(self, zone: FakeZone) -> None:
        target = zone.path / "energy_uj"
        if zone.state == "vanished":
            return
        text = zone.shown if zone.state == "shown" else f"{zone.raw_uj()}"
        tmp = zone.path / ".energy_uj.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, (text + "\n").encode())
            os.fchmod(fd, zone.mode)
        finally:
            os.close(fd)
        os.replace(tmp, target)

    # ----- truth --------------------------------------------------------------------------

    def energy_j(self, zone_id: str) -> float:
        """The zone's true energy since the fake was made (what its counter has advanced by)."""
        with self._lock:
            return self.zones[zone_id].energy_j

    def true_energy_j(self, zone_id: str, t0_s: float, t1_s: float) -> float:
        """The zone's true energy between two instants of the fake's clock (from its profile)."""
        return integrate(self.zones[zone_id].profile, t0_s, t1_s)

    # ----- breaking things ----------------------------------------------------------------

    def vanish(self, zone_id: str) -> None:
        with self._lock:
            zone = self.zones[zone_id]
            zone.state = "vanished"
            (zone.path / "energy_uj").unlink(missing_ok=True)
        self._notify()

    def show(self, zone_id: str, text: str) -> None:
        """The counter file holds ``text`` (``"0"``, ``"-5"``, junk) until :meth:`restore`,
        while the true counter keeps counting behind it: a bad read, not a reset."""
        with self._lock:
            zone = self.zones[zone_id]
            zone.state = "shown"
            zone.shown = text
            self._write(zone)
        self._notify()

    def garbage(self, zone_id: str) -> None:
        self.show(zone_id, "not-a-number")

    def restore(self, zone_id: str) -> None:
        with self._lock:
            zone = self.zones[zone_id]
            zone.state = "ok"
            self._write(zone)
        self._notify()

    def reset(self, zone_id: str) -> None:
        """The counter restarts from 0 (as after suspend or a driver reload)."""
        with self._lock:
            zone = self.zones[zone_id]
            zone.offset_uj = -int(zone.energy_j * 1e6)
            self._write(zone)
        self._notify()

    def make_unreadable(self, zone_id: str, mode: int = 0o000) -> None:
        """Takes the read bits away. Mode 000 is unreadable to anyone, root included (as sysfs
        treats it); 0o400 is the real root-only mode, which only a non-root test can observe."""
        with self._lock:
            zone = self.zones[zone_id]
            zone.mode = mode
            self._write(zone)
        self._notify()

    def make_root_only(self, mode: int = 0o000) -> None:
        """Every counter unreadable, as on Linux >= 5.10 for a normal user."""
        for zone_id in list(self.zones):
            self.make_unreadable(zone_id, mode)


def _profile(power: PowerProfile | float) -> PowerProfile:
    return power if callable(power) else constant(float(power))


def sampler_reads(session: object) -> Callable[[], object]:
    """An observer that reads every meter of ``session``'s sampler (when it has one), as the
    sampler thread would if it were scheduled right after each advance."""

    def read() -> object:
        sampler = getattr(session, "sampler", None)
        return sampler.read_all() if sampler is not None else None

    return read
