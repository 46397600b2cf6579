"""CPU package and DRAM energy from Linux powercap RAPL counters (Intel, and AMD since Zen).

Why RAPL: the processor itself counts the energy of each package and its DRAM in micro-joules,
so a window's energy is exact (to the counter's ~15 uJ unit) rather than modelled. The counter
is machine-wide: it includes other processes, and the record says so (attribution "machine").

The tree under ``/sys/class/powercap`` (passed in as ``root``; never read at import) lists the
same zone several times: every sub-zone also appears at the top level as a symlink, and the MMIO
interface (``intel-rapl-mmio:N``) repeats the MSR interface's ``package-N``. :func:`find_zones`
keeps each package once. ``core`` and ``uncore`` are parts of the package and ``psys`` is the
whole platform (it contains the packages), so counting any of them would double count.

Since Linux 5.10 (the Platypus side-channel fix) ``energy_uj`` is readable only by root. That is
a setting, not a missing feature, so it is reported once as a note with the fix; making the
counters readable again reopens that side channel on machines shared with untrusted users.
"""

from __future__ import annotations

import io
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from nbcarbon.errors import MeterError
from nbcarbon.meters.base import Anomalies, Channel, LockedMeter, WrappingCounter

#: Power assumed when the zone publishes no power limit and none higher has been seen: a busy
#: server package. A generous guess only makes the sampler read a file more often (every ~20 min
#: for a real 262 kJ range); a low one would let a counter wrap unseen between two reads.
FLOOR_POWER_W = 100.0
#: Power limits above this are firmware placeholders for "unlimited", not a package's power.
_MAX_CREDIBLE_LIMIT_W = 5000.0
#: The most a zone that publishes no power limit can draw: no CPU package or its DRAM comes near
#: 1 kW (the largest server parts are ~500 W). A counter step beyond this (times the time since
#: the last good reading) is a failed reading, not energy.
PHYSICAL_MAX_W = 1000.0
#: How far above its highest published limit a zone may draw: PL1/PL2 are averages the
#: package may overshoot for milliseconds, and a power-management daemon may raise them.
_LIMIT_MARGIN = 4.0
#: A range the counter would exhaust faster than this at the zone's assumed power is garbage
#: (real counters hold 65 to 262 kJ: minutes at full power); believing it would make the
#: sampler poll every few milliseconds for nothing.
MIN_WRAP_S = 0.05

_ZONE_DIR = re.compile(r"^intel-rapl(-mmio)?:\d+(:\d+)*$")
_PACKAGE_NAME = re.compile(r"^package-\d+$")
_SKIPPED_NAMES = frozenset({"core", "uncore", "psys"})


@dataclass(frozen=True)
class RaplZone:
    """A RAPL zone worth metering: its directory, powercap name and the channel it feeds."""

    path: Path
    name: str
    channel: Channel


def read_text(path: Path) -> str:
    """A sysfs attribute's text (RAPL's and hwmon's counter files and names are ASCII)."""
    with open(path, encoding="ascii") as f:
        return f.read().strip()


def _read_int(path: Path) -> int:
    """Reads a sysfs integer; ValueError on garbage (a half-written or corrupted file)."""
    return int(read_text(path))


#: Bytes read from a counter file: a 64-bit counter in decimal is at most 20 digits.
_READ_BYTES = 64


class KeptFile:
    """A sysfs integer file kept open and read with ``pread``, opened again when it went stale.

    Not thread-safe by itself: :class:`RaplMeter` calls it under its lock. The file is opened
    with the builtin ``open`` (unbuffered), so whatever refuses to open a file for this module
    refuses it here too.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: io.FileIO | None = None
        self._fd = -1
        self._last: int | None = None
        self.reopened = 0  # how often a kept file was found stale or failing (for tests)

    def read_int(self) -> int:
        """The file's integer now; OSError or ValueError when it cannot be read or holds none."""
        fd = self._fd
        if fd >= 0:
            try:
                value = int(os.pread(fd, _READ_BYTES, 0))
            except (OSError, ValueError):
                pass  # removed, or replaced by garbage: open the path again and say what it holds
            else:
                if value != self._last or os.fstat(fd).st_nlink > 0:
                    self._last = value
                    return value
        return self._read_fresh()

    def _read_fresh(self) -> int:
        """Open the path again (dropping the kept file) and read it."""
        self.close()
        if self._last is not None:
            self.reopened += 1
        f = open(self.path, "rb", buffering=0)  # kept open: read with pread
        try:
            value = int(os.pread(f.fileno(), _READ_BYTES, 0))
        except BaseException:
            f.close()
            raise
        self._file, self._fd, self._last = f, f.fileno(), value
        return value

    def check(self) -> None:
        """Drop the kept file if the path now names another file (background upkeep)."""
        if self._fd < 0:
            return
        try:
            kept, now = os.fstat(self._fd), os.stat(self.path)
        except OSError:
            self.close()  # gone: the next read says so
            return
        if (kept.st_ino, kept.st_dev) != (now.st_ino, now.st_dev):
            self.close()

    def close(self) -> None:
        f, self._file, self._fd = self._file, None, -1
        if f is not None:
            f.close()


def readable(path: Path) -> bool:
    """Whether this process has permission to read ``path`` (other failures are not this).

    A mode with no read bit at all counts as unreadable even for root: sysfs (kernfs) refuses
    to open such a file for reading whoever asks, and the test fakes rely on that to simulate a
    root-only counter while the tests themselves run as root.
    """
    try:
        mode = os.stat(path).st_mode
        if not mode & (stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH):
            return False
        with open(path, "rb") as f:
            f.read(1)
    except PermissionError:  # a non-root user on Linux >= 5.10
        return False
    except OSError:
        return True  # vanished or broken, not forbidden: the caller's read reports it
    return True


def power_ceiling_w(zone_dir: Path) -> float | None:
    """The highest power limit the zone publishes (PL1/PL2/PL4 constraints), if any."""
    best: float | None = None
    try:
        entries = list(zone_dir.iterdir())
    except OSError:
        return None
    for entry in entries:
        if not entry.name.startswith("constraint_") or not entry.name.endswith(
            ("_power_limit_uw", "_max_power_uw")
        ):
            continue
        try:
            watts = _read_int(entry) / 1e6
        except (OSError, ValueError):
            continue
        if 0 < watts <= _MAX_CREDIBLE_LIMIT_W and (best is None or watts > best):
            best = watts
    return best


def _zone_dirs(root: Path) -> list[Path]:
    """Every zone directory reachable from ``root``: top-level entries and their nested zones."""
    found: list[Path] = []
    try:
        top = sorted(root.iterdir())
    except OSError:
        return found
    for entry in top:
        if not _ZONE_DIR.match(entry.name) or not entry.is_dir():
            continue
        found.append(entry)
        try:
            nested = sorted(entry.iterdir())
        except OSError:
            continue
        found.extend(sub for sub in nested if _ZONE_DIR.match(sub.name) and sub.is_dir())
    return found


def _permission_note(root: Path) -> str:
    return (
        "RAPL counters exist but are readable only by root; to measure CPU energy: "
        f"sudo chmod a+r {root}/intel-rapl*/energy_uj (until reboot) or a udev rule to keep it "
        "(not on shared machines: Platypus side channel)"
    )


def find_zones(root: Path) -> tuple[list[RaplZone], list[str]]:
    """Scans a powercap tree for the package and DRAM zones to meter, each exactly once.

    Returns the readable zones (packages first, then DRAM, in index order) and notes: one note
    in all when counters exist but are not readable by this user, one per zone that fails to
    read for another reason. A missing tree gives no zones and no notes: the caller says what
    it falls back to.
    """
    seen_real: set[str] = set()
    msr_packages: set[str] = set()
    candidates: list[tuple[Path, str, str, str, bool]] = []  # path, name, component, device, mmio
    for zone_dir in _zone_dirs(root):
        real = os.path.realpath(zone_dir)
        if real in seen_real:
            continue
        seen_real.add(real)
        try:
            name = read_text(zone_dir / "name")
        except OSError:
            continue
        if name in _SKIPPED_NAMES:
            continue
        mmio = zone_dir.name.startswith("intel-rapl-mmio")
        if _PACKAGE_NAME.match(name):
            if not mmio:
                msr_packages.add(name)
            candidates.append((zone_dir, name, "cpu", name, mmio))
        elif name == "dram":
            parent = zone_dir.parent
            device = zone_dir.name
            try:
                parent_name = read_text(parent / "name")
            except OSError:
                parent_name = ""
            if _PACKAGE_NAME.match(parent_name):
                device = parent_name
            else:
                # Reached through a top-level symlink: the package is the realpath's parent.
                try:
                    real_parent_name = read_text(Path(real).parent / "name")
                except OSError:
                    real_parent_name = ""
                if _PACKAGE_NAME.match(real_parent_name):
                    device = real_parent_name
            candidates.append((zone_dir, name, "dram", device, mmio))

    zones: list[RaplZone] = []
    notes: list[str] = []
    unreadable = False
    seen_channels: set[tuple[str, str]] = set()
    for zone_dir, name, component, device, mmio in candidates:
        if mmio and device in msr_packages:
            continue  # the same package through the MMIO interface: count it once
        if (component, device) in seen_channels:
            continue
        energy = zone_dir / "energy_uj"
        if not energy.exists():
            continue
        if not readable(energy):
            unreadable = True
            continue
        try:
            _read_int(energy)
        except (OSError, ValueError) as err:
            notes.append(f"RAPL zone {zone_dir.name} ({name}) could not be read: {why_unreadable(err)}")
            continue
        seen_channels.add((component, device))
        channel = Channel(component, device, "rapl-counter", "machine")
        zones.append(RaplZone(zone_dir, name, channel))
    if unreadable:
        notes.insert(0, _permission_note(root))
    zones.sort(key=lambda z: (z.channel.component != "cpu", _index(z.channel.device)))
    return zones, notes


def _index(device: str) -> tuple[int, str]:
    digits = re.findall(r"\d+", device)
    return (int(digits[-1]) if digits else -1, device)


def why_unreadable(err: BaseException) -> str:
    """A counter file's read failure in a user's words, for a warning or a probe note."""
    if isinstance(err, FileNotFoundError):
        return "the counter file has vanished"
    if isinstance(err, PermissionError):
        return "permission denied"
    if isinstance(err, ValueError):
        return "the counter file holds no number"
    if isinstance(err, OSError):
        return err.strerror or type(err).__name__
    return type(err).__name__


class RaplMeter(LockedMeter):
    """One RAPL zone's energy, read from ``energy_uj`` and carried across wrap-arounds.

    The file is kept open and read with ``pread`` (about 1-2 us where opening it again costs
    12-16 us, and a window reads each zone twice). A kept descriptor can go stale: a driver
    reload removes the sysfs file (its reads then fail with ENODEV) and a file replaced by
    rename (the test fakes' atomic writes, anything not sysfs) keeps serving its old value.
    So the file is opened again after any failed read, and whenever a read returns the same
    value as the one before (the only way a replaced file can show up: it never changes, where
    a live RAPL counter moves every millisecond) if the kept file has no name left
    (``st_nlink`` 0). The background upkeep also compares the kept file with the path's
    inode, for the odd hard-linked file; see :class:`KeptFile`.

    Every step of the counter is bounded by what the zone can draw (:attr:`max_power_w` times
    the time since the last good reading): a bad read of the file (``0``, ``-5``, a value beyond
    the range, a huge jump) is skipped and named in the records' warnings instead of becoming
    kilojoules of "measured" energy; see :class:`~nbcarbon.meters.base.WrappingCounter`.
    """

    def __init__(self, zone_dir: Path, channel: Channel) -> None:
        super().__init__(channel)
        self.zone_dir = zone_dir
        self._energy_path = zone_dir / "energy_uj"
        self._label = f"RAPL {channel.device} ({channel.component})"
        self._closed = False
        self.ceiling_w = power_ceiling_w(zone_dir)
        range_uj = _credible_range_uj(zone_dir, self.ceiling_w or FLOOR_POWER_W)
        self.range_j = range_uj / 1e6 if range_uj is not None else None
        self.peak_power_w = 0.0
        self._file = KeptFile(self._energy_path)
        t0 = time.monotonic()
        first = self._raw()
        self._last_t = time.monotonic()
        self._counter = WrappingCounter(None, range_uj, 1e-6, max_power_w=self.max_power_w)
        self._counter.update(first, t0, self._last_t)

    @property
    def max_power_w(self) -> float:
        """The most the zone can draw: a margin over its highest published limit, else a
        physical cap. Counter steps beyond it, per second since the last good read, are refused."""
        if self.ceiling_w is None:
            return PHYSICAL_MAX_W
        return max(self.ceiling_w * _LIMIT_MARGIN, FLOOR_POWER_W)

    def _raw(self) -> int:
        try:
            return self._file.read_int()
        except (OSError, ValueError) as err:
            raise MeterError(f"{self._label}: {why_unreadable(err)}") from err

    def _assumed_power_w(self) -> float:
        """The highest power the zone may draw: its published limit, else a generous floor."""
        return max(self.peak_power_w, self.ceiling_w or FLOOR_POWER_W)

    def _read(self) -> float:
        if self._closed:
            raise MeterError(f"{self._label}: meter closed")
        t0 = time.monotonic()
        try:
            raw = self._file.read_int()
        except (OSError, ValueError) as err:
            raise MeterError(f"{self._label}: {why_unreadable(err)}") from err
        now = time.monotonic()
        counter = self._counter
        before_j = counter.total_j
        total_j = counter.update(raw, t0, now)
        if not counter.held:
            dt_s = now - self._last_t
            if dt_s > 0.01:  # shorter gaps are dominated by the counter's ~1 ms update steps
                power_w = min((total_j - before_j) / dt_s, self.max_power_w)
                if power_w > self.peak_power_w:
                    self.peak_power_w = power_w
            self._last_t = now
        return total_j

    def anomalies(self) -> Anomalies:
        return self._counter.anomalies

    def max_poll_interval_s(self) -> float | None:
        """Half the time the counter takes to wrap at the highest power known for the zone."""
        if self.range_j is None:
            return None
        return self.range_j / self._assumed_power_w() / 2.0

    def background(self) -> None:
        """Re-reads the zone's power limits: a daemon (thermald, TLP) may raise them after the
        meter opened, and a stale low limit would refuse real energy as implausible."""
        ceiling_w = power_ceiling_w(self.zone_dir)
        with self._lock:
            self.ceiling_w = ceiling_w
            self._counter.max_power_w = self.max_power_w
            if not self._closed:
                self._file.check()

    @property
    def wraps(self) -> int:
        return self._counter.wraps

    @property
    def resets(self) -> int:
        return self._counter.resets

    @property
    def skipped(self) -> int:
        """Readings refused as implausible since the meter opened."""
        return self._counter.skipped

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._file.close()


def _credible_range_uj(zone_dir: Path, assumed_w: float) -> int | None:
    """The zone's ``max_energy_range_uj``, or ``None`` when it is missing or garbage.

    Garbage (``-1``, ``0``, not a number, a range exhausted in milliseconds) is treated as an
    unknown range: wraps are then not corrected, which costs nothing real (real ranges take
    minutes to wrap and the sampler still polls at its interval) where believing it would poll
    every 5 ms or count a glitch as a wrap.
    """
    try:
        range_uj = _read_int(zone_dir / "max_energy_range_uj")
    except (OSError, ValueError):
        return None
    if range_uj <= 0 or range_uj / 1e6 / assumed_w < MIN_WRAP_S:
        return None
    return range_uj


def open_rapl(root: Path) -> tuple[list[RaplMeter], list[str]]:
    """Opens a meter on each zone :func:`find_zones` keeps; a zone that fails to open is a note."""
    zones, notes = find_zones(root)
    meters: list[RaplMeter] = []
    for zone in zones:
        try:
            meters.append(RaplMeter(zone.path, zone.channel))
        except MeterError as err:
            notes.append(f"{err}; not measured")
    return meters, notes
