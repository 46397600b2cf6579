"""AMD CPU socket energy from the ``amd_energy`` hwmon driver, where powercap RAPL is missing.

Why a second CPU source: AMD Zen processors count energy in RAPL MSRs like Intel's, and recent
kernels' ``intel_rapl`` powercap driver exposes them as ``package-N`` zones (Zen and Zen 2 since
Linux 5.8, Zen 3 since 5.11; a ``core`` sub-zone, no DRAM zone: AMD has no DRAM counter), which
:mod:`nbcarbon.meters.rapl` reads unchanged. Older
kernels, and systems where AMD's out-of-tree ``amd_energy`` driver is installed instead (it was
removed from mainline in 5.13), show them only under ``/sys/class/hwmon/hwmonN``:

- ``name`` is ``amd_energy``;
- ``energyN_input`` is micro-joules since boot, and ``energyN_label`` says what it counts:
  ``EcoreNNN`` (one core) or ``EsocketN`` (a whole socket, every core included).

Only sockets are counted: a socket's counter already contains its cores, so adding cores would
count them twice, and cores alone would miss the uncore. The driver accumulates the 32-bit MSRs
into 64 bits itself, so the values do not wrap; a decrease (driver reloaded) is a reset, told
from a glitch by :class:`~nbcarbon.meters.base.WrappingCounter`. Like RAPL the counters are
machine-wide and, since CVE-2020-12912 (Platypus), readable only by root and the file's group.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from nbcarbon.errors import MeterError
from nbcarbon.meters.base import Anomalies, Channel, LockedMeter, WrappingCounter
from nbcarbon.meters.rapl import PHYSICAL_MAX_W, read_text, readable, why_unreadable

DRIVER = "amd_energy"
_INPUT = re.compile(r"^energy(\d+)_input$")
_SOCKET = re.compile(r"^Esocket(\d+)$")


@dataclass(frozen=True)
class SocketCounter:
    """One socket's counter file and the channel it feeds."""

    path: Path
    socket: int
    channel: Channel


def _driver_dirs(root: Path) -> list[Path]:
    """The ``amd_energy`` hwmon directories under ``root``, each device once."""
    try:
        entries = sorted(root.iterdir(), key=lambda p: (len(p.name), p.name))
    except OSError:
        return []
    found: list[Path] = []
    seen: set[str] = set()
    for entry in entries:
        try:
            name = read_text(entry / "name")
        except (OSError, UnicodeDecodeError):
            continue
        real = os.path.realpath(entry)
        if name != DRIVER or real in seen:
            continue
        seen.add(real)
        found.append(entry)
    return found


def _permission_note(root: Path) -> str:
    return (
        "amd_energy counters exist but are readable only by root; to measure CPU energy: "
        f"sudo chmod a+r {root}/hwmon*/energy*_input (until the driver reloads; not on shared "
        "machines: Platypus side channel, CVE-2020-12912)"
    )


def find_sockets(root: Path = Path("/sys/class/hwmon")) -> tuple[list[SocketCounter], list[str]]:
    """The socket counters of ``amd_energy`` under ``root``, each socket exactly once.

    Returns the readable sockets in socket order and notes: one in all when they exist but are
    not readable by this user, one per socket that fails to read. No driver, no notes. Core
    counters are never returned (see the module's docstring).
    """
    sockets: dict[int, SocketCounter] = {}
    notes: list[str] = []
    unreadable = False
    dirs = _driver_dirs(root)
    for hwmon in dirs:
        try:
            names = sorted(p.name for p in hwmon.iterdir())
        except OSError:
            continue
        for name in names:
            match = _INPUT.match(name)
            if match is None:
                continue
            try:
                label = read_text(hwmon / f"energy{match.group(1)}_label")
            except (OSError, UnicodeDecodeError):
                continue  # unlabelled: whether it is a core or a socket cannot be told
            socket = _SOCKET.match(label)
            if socket is None:
                continue  # a core (Ecore...): part of its socket's count
            index = int(socket.group(1))
            if index in sockets:
                continue  # the same socket through another hwmon entry
            path = hwmon / name
            if not readable(path):
                unreadable = True
                continue
            try:
                int(read_text(path))
            except (OSError, ValueError, UnicodeDecodeError) as err:
                notes.append(f"amd_energy socket {index} could not be read: {why_unreadable(err)}")
                continue
            channel = Channel("cpu", f"package-{index}", "amd-energy-counter", "machine")
            sockets[index] = SocketCounter(path, index, channel)
    if unreadable and not sockets:
        notes.insert(0, _permission_note(root))
    elif dirs and not sockets and not notes:
        notes.append("the amd_energy driver is loaded but lists no socket counter")
    return [sockets[i] for i in sorted(sockets)], notes


class AmdEnergyMeter(LockedMeter):
    """One socket's energy from its ``energyN_input`` file (micro-joules).

    Read afresh on every call, like RAPL's files: a kept descriptor would read a stale file
    after a driver reload. Steps beyond what a socket can draw are refused and named.
    """

    def __init__(self, path: Path, channel: Channel) -> None:
        super().__init__(channel)
        self.path = path
        self._label = f"amd_energy {channel.device}"
        self._closed = False
        t0 = time.monotonic()
        first = self._raw()
        self._counter = WrappingCounter(None, None, 1e-6, max_power_w=PHYSICAL_MAX_W)
        self._counter.update(first, t0, time.monotonic())

    def _raw(self) -> int:
        try:
            return int(read_text(self.path))
        except (OSError, ValueError, UnicodeDecodeError) as err:
            raise MeterError(f"{self._label}: {why_unreadable(err)}") from err

    def _read(self) -> float:
        if self._closed:
            raise MeterError(f"{self._label}: meter closed")
        t0 = time.monotonic()
        raw = self._raw()
        return self._counter.update(raw, t0, time.monotonic())

    def anomalies(self) -> Anomalies:
        return self._counter.anomalies

    @property
    def resets(self) -> int:
        return self._counter.resets

    def close(self) -> None:
        self._closed = True


def open_amd_energy(root: Path = Path("/sys/class/hwmon")) -> tuple[list[AmdEnergyMeter], list[str]]:
    """A meter per socket :func:`find_sockets` keeps; a socket that fails to open is a note."""
    sockets, notes = find_sockets(root)
    meters: list[AmdEnergyMeter] = []
    for socket in sockets:
        try:
            meters.append(AmdEnergyMeter(socket.path, socket.channel))
        except MeterError as err:
            notes.append(f"{err}; not measured")
    return meters, notes
