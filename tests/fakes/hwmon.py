"""A fake ``/sys/class/hwmon`` with the ``amd_energy`` driver's files, and other drivers beside it.

Why: the meter must count each socket once and never a core, whatever else the tree holds, and
only a tree whose counters move when a test says so makes that checkable. The layout follows the
kernel's: ``hwmonN`` entries are symlinks into the device tree; ``amd_energy`` lists one
``energyN_input`` (micro-joules) per core first, then one per socket, each with an
``energyN_label`` (``Ecore000``..., ``Esocket0``...); a socket's count includes its cores'.
Files are rewritten atomically (temp file + ``os.replace``), as in the powercap fake.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class FakeSocket:
    """One socket's true energy and its counter file, with its cores' files."""

    index: int
    path: Path
    cores: list[Path] = field(default_factory=list)
    start_uj: int = 0
    energy_j: float = 0.0
    mode: int = 0o444


class FakeHwmon:
    """Lays out hwmon devices under ``root`` (a stand-in for ``/sys/class/hwmon``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.devices = root / "_devices"
        self.root.mkdir(parents=True, exist_ok=True)
        self.sockets: dict[int, FakeSocket] = {}
        self._next = 0

    def _device(self, driver_dir: str, name: str) -> Path:
        hwmon = f"hwmon{self._next}"
        self._next += 1
        real = self.devices / driver_dir / "hwmon" / hwmon
        real.mkdir(parents=True)
        (real / "name").write_text(name + "\n")
        (self.root / hwmon).symlink_to(real)
        return real

    def add_other(self, name: str = "k10temp", energy: bool = False) -> Path:
        """Another driver's device: temperatures, and an energy counter of its own if asked
        (``i915`` and ``xe`` have one: never a CPU socket's)."""
        real = self._device(f"{name}.0", name)
        (real / "temp1_input").write_text("45000\n")
        if energy:
            (real / "energy1_input").write_text("123456789\n")
            (real / "energy1_label").write_text("Esocket0\n")  # a misleading label, other driver
        return real

    def add_amd_energy(self, sockets: int = 1, cores_per_socket: int = 4, start_uj: int = 10**12,
                       alias: bool = False) -> Path:
        """The ``amd_energy`` device; ``alias`` also lists it under a second ``hwmonN`` entry."""
        real = self._device("amd_energy.0", "amd_energy")
        n = 1
        cores: dict[int, list[Path]] = {s: [] for s in range(sockets)}
        for s in range(sockets):
            for c in range(cores_per_socket):
                core = real / f"energy{n}_input"
                (real / f"energy{n}_label").write_text(f"Ecore{s * cores_per_socket + c:03d}\n")
                cores[s].append(core)
                n += 1
        for s in range(sockets):
            path = real / f"energy{n}_input"
            (real / f"energy{n}_label").write_text(f"Esocket{s}\n")
            socket = FakeSocket(s, path, cores[s], start_uj=start_uj)
            self.sockets[s] = socket
            self._write(socket)
            n += 1
        if alias:
            (self.root / f"hwmon{self._next}").symlink_to(real)
            self._next += 1
        return real

    # ----- moving and breaking the counters -----------------------------------------------

    def add_energy(self, socket: int, joules: float) -> None:
        """The socket uses ``joules`` (its cores most of it), counters rewritten."""
        s = self.sockets[socket]
        s.energy_j += joules
        self._write(s)

    def show(self, socket: int, text: str) -> None:
        """The socket's file holds ``text`` instead of its counter until the next write."""
        self._put(self.sockets[socket].path, text, self.sockets[socket].mode)

    def restart(self, socket: int, to_uj: int = 0) -> None:
        """The driver reloaded: the counter starts again from ``to_uj``."""
        s = self.sockets[socket]
        s.start_uj = to_uj - int(s.energy_j * 1e6)
        self._write(s)

    def make_root_only(self) -> None:
        """As since CVE-2020-12912 (0440 root:root); mode 000 here, since the tests run as root
        (see :func:`nbcarbon.meters.rapl.readable`)."""
        for s in self.sockets.values():
            s.mode = 0o000
            self._write(s)

    def _write(self, s: FakeSocket) -> None:
        value = s.start_uj + int(s.energy_j * 1e6)
        self._put(s.path, f"{value}\n", s.mode)
        per_core = int(s.energy_j * 1e6 * 0.8 / max(1, len(s.cores)))
        for core in s.cores:
            self._put(core, f"{per_core}\n", s.mode)

    @staticmethod
    def _put(path: Path, text: str, mode: int) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
