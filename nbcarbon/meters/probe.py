"""Picks the best meter this machine offers for each component, and says what it could not measure.

Why one function: the magics and the CLI must agree on what is measured and how, and a person
must learn once, in plain words, what is estimated instead of measured and how to fix it. The
order is fixed:

- cpu: RAPL package zones (Intel, and AMD Zen through the same powercap driver), else AMD's
  ``amd_energy`` hwmon sockets, else Apple Silicon's IOReport CPU channel, else the CPU-time model;
- dram: RAPL DRAM zones (Intel only), else IOReport's DRAM channel, else the memory model;
- gpu: NVIDIA GPUs (NVML), then AMD GPUs (AMD SMI), then the Apple GPU and Neural Engine.

One source per component and device: a socket measured by RAPL is never also read through
``amd_energy``, and models run only where no counter covers their component.

This module imports no hardware library at module level (psutil, pynvml, amdsmi and
zeus_apple_silicon are imported when :func:`probe` runs, and only where they can apply), so
``import nbcarbon.meters`` stays cheap.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from nbcarbon.errors import MeterError
from nbcarbon.meters.base import Meter
from nbcarbon.meters.share import ShareMeter
from nbcarbon.settings import DEFAULT_POWERCAP_ROOT

TYPE_CHECKING = False  # no ``typing`` at import (see nbcarbon/session.py)
if TYPE_CHECKING:
    from typing import Any


@dataclass
class ProbeResult:
    """The meters to sample, and one-line notes on what is not measured and why.

    ``platform`` (``sys.platform``) and ``machine`` (``platform.machine()``) say where the probe
    ran, so :func:`nbcarbon.meters.platform_notes.platform_lines` can tell what could be enabled.
    """

    meters: list[Meter] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    platform: str = ""
    machine: str = ""
    #: What splits machine-wide meters' energy among the machine's users (``attribution:
    #: share``): one for CPU and DRAM counters, one per NVIDIA GPU; empty where nothing is
    #: machine-wide or the machine's use cannot be read.
    shares: list[ShareMeter] = field(default_factory=list)


def probe(
    powercap_root: Path,
    nvml: Any = None,
    pid: int | None = None,
    use_gpu: bool = True,
    cpuinfo_path: Path = Path("/proc/cpuinfo"),
    *,
    amdsmi: Any = None,
    apple: Any = None,
    hwmon_root: Path = Path("/sys/class/hwmon"),
    drm_root: Path = Path("/sys/class/drm"),
    proc: Path = Path("/proc"),
    platform: str | None = None,
    machine: str | None = None,
    proc_stat: Path = Path("/proc/stat"),
    shares: bool = True,
) -> ProbeResult:
    """Opens every meter this machine supports; never raises for missing hardware.

    ``powercap_root`` is normally ``/sys/class/powercap``; ``nvml``, ``amdsmi`` and ``apple`` are
    the NVML, AMD SMI and zeus_apple_silicon modules (None imports each where it can apply: NVML
    off macOS, AMD SMI on Linux with an AMD GPU listed under ``drm_root``, IOReport on Apple
    Silicon Macs; a module passed in is always used, which is how tests fake hardware).
    ``hwmon_root`` is where ``amd_energy`` is looked for; ``proc`` is where the process-tree models
    look for ``/proc`` (where it is missing they work through psutil alone). ``pid`` is the
    process whose tree the models follow (default: this one). ``platform`` and ``machine``
    default to ``sys.platform`` and ``platform.machine()``. ``shares`` opens the share meters
    of machine-wide counters (:mod:`nbcarbon.meters.share`), reading the machine's CPU time
    from ``proc_stat``.
    """
    from nbcarbon.meters.hwmon import open_amd_energy
    from nbcarbon.meters.rapl import open_rapl

    pid = os.getpid() if pid is None else pid
    system = sys.platform if platform is None else platform
    # os.uname() is what platform.machine() reads on POSIX, without importing platform (~1 ms).
    arch = machine if machine is not None else (os.uname().machine if hasattr(os, "uname") else "")
    result = ProbeResult(platform=system, machine=arch)
    rapl_meters, rapl_notes = open_rapl(powercap_root)
    result.notes.extend(rapl_notes)
    cpu: list[Meter] = [m for m in rapl_meters if m.channel.component == "cpu"]
    dram: list[Meter] = [m for m in rapl_meters if m.channel.component == "dram"]
    if any(note.startswith("RAPL counters exist") for note in rapl_notes):
        why_cpu = "RAPL counters readable only by root"
    elif rapl_notes:
        why_cpu = "RAPL counters could not be read"
    elif system == "darwin":
        why_cpu = "no energy counter read on this Mac"
    elif system.startswith("linux"):
        # Said in %carbon status, which lands in shared notebooks: the system's own directory
        # is named, a directory the user chose (it may hold their name) is not.
        where = (str(powercap_root) if Path(powercap_root) == DEFAULT_POWERCAP_ROOT
                 else "the directory NBCARBON_POWERCAP_ROOT names")
        why_cpu = f"no RAPL counters under {where}"
    else:
        why_cpu = f"no energy counter is read on {'Windows' if system == 'win32' else system}"
    why_dram = "no RAPL DRAM counter on this CPU"

    if not cpu:  # AMD CPUs without the powercap zones: the amd_energy driver's sockets
        hwmon_meters, hwmon_notes = open_amd_energy(hwmon_root)
        cpu.extend(hwmon_meters)
        result.notes.extend(hwmon_notes)
        if hwmon_meters:
            why_dram = "AMD CPUs have no DRAM energy counter"
            # The sockets are measured: how to open RAPL to this user is no longer news.
            result.notes = [n for n in result.notes if not n.startswith("RAPL counters exist")]
        elif any(note.startswith("amd_energy counters exist") for note in hwmon_notes):
            why_cpu = "RAPL and amd_energy counters readable only by root"

    apple_meters: list[Meter] = []
    if apple is not None or system == "darwin":
        apple_meters, apple_notes = _open_apple(apple, use_gpu, arch)
        result.notes.extend(apple_notes)
        if apple_notes and not apple_meters:
            why_cpu = "IOReport counters not read"
    for meter in apple_meters:
        component = meter.channel.component
        if component == "cpu" and not cpu:
            cpu.append(meter)
        elif component == "dram" and not dram:
            dram.append(meter)
    if any(m.channel.method == "ioreport-counter" for m in cpu) and not dram:
        why_dram = "IOReport has no DRAM channel on this chip"
    result.meters.extend(cpu)
    result.meters.extend(dram)

    tree = None  # one list of child processes, shared by the two models and the shares
    machine_wide = any(m.channel.attribution == "machine" for m in cpu + dram)
    if not cpu or not dram or (shares and machine_wide):
        from nbcarbon.meters.cputime import ChildProcesses
        from nbcarbon.meters.lazy import psutil

        try:
            tree = ChildProcesses(pid, proc=proc)
            tree.refresh()
        except psutil.NoSuchProcess:
            tree = None  # each meter then reports the missing process itself

    if not cpu:
        from nbcarbon.meters.cputime import CpuTimeMeter, cpu_model_name, watts_per_core

        w_per_core, source = watts_per_core(cpu_model_name(cpuinfo_path))
        try:
            result.meters.append(CpuTimeMeter(pid, w_per_core, source, tree=tree))
            result.notes.append(
                f"CPU energy not measured ({why_cpu}); estimated from CPU time x "
                f"{w_per_core:.3g} W per core ({source})"
            )
        except MeterError as err:
            result.notes.append(f"CPU energy not measured: {err}")

    if not dram:
        from nbcarbon.meters.memory import DEFAULT_WATTS_PER_GB, MemoryModelMeter

        if not cpu:
            why_dram = why_cpu
        try:
            # One line per record is enough for what the shared tree misses.
            states = not any(m.channel.method == "cpu-time-model" for m in result.meters)
            result.meters.append(MemoryModelMeter(pid, tree=tree, states_caveat=states))
            result.notes.append(
                f"memory energy not measured ({why_dram}); estimated from resident memory x "
                f"{DEFAULT_WATTS_PER_GB} W per GB"
            )
        except MeterError as err:
            result.notes.append(f"memory energy not measured: {err}")

    if use_gpu:
        from nbcarbon.meters.amdgpu import open_amd_gpus
        from nbcarbon.meters.nvml import open_gpus

        gpus: list[Meter] = []
        if nvml is not None or system != "darwin":  # NVIDIA has no macOS driver since 10.13
            nvidia, nvidia_notes = open_gpus(nvml)
            gpus.extend(nvidia)
            result.notes.extend(nvidia_notes)
        if amdsmi is not None or system.startswith("linux"):
            amd, amd_notes = open_amd_gpus(amdsmi, first_index=len(gpus), drm_root=drm_root)
            gpus.extend(amd)
            result.notes.extend(amd_notes)
        gpus.extend(m for m in apple_meters if m.channel.component == "gpu")
        result.meters.extend(gpus)
    if shares:
        _open_shares(result, pid, tree, proc, proc_stat, system)
    for meter in apple_meters:
        if meter not in result.meters:
            meter.close()  # a component another counter already measures
    return result


def _open_shares(result: ProbeResult, pid: int, tree: Any, proc: Path, proc_stat: Path,
                 system: str) -> None:
    """The share meters of ``result``'s machine-wide meters (see :mod:`nbcarbon.meters.share`)."""
    from nbcarbon.meters.gpushare import open_gpu_shares
    from nbcarbon.meters.share import open_cpu_share

    if any(m.channel.attribution == "machine" and m.channel.component in ("cpu", "dram")
           for m in result.meters):
        cpu_share, note = open_cpu_share(pid, tree, proc_stat, system)
        if cpu_share is not None:
            result.shares.append(cpu_share)
        elif note:
            result.notes.append(note)
    if any(m.channel.method.startswith("nvml-") for m in result.meters):
        def pids() -> list[int]:
            return [p.pid for p in tree.children] if tree is not None else []

        gpu_shares, notes = open_gpu_shares(result.meters, pids, proc)
        result.shares.extend(gpu_shares)
        result.notes.extend(notes)


def _open_apple(apple: Any, use_gpu: bool, machine: str) -> tuple[list[Meter], list[str]]:
    """IOReport's meters on a Mac. The library is suggested only to Apple Silicon (arm64): an
    Intel Mac has no IOReport energy channels (and no counter readable without sudo)."""
    from nbcarbon.meters.apple import NO_LIBRARY_NOTE, open_apple

    meters, notes = open_apple(apple, use_gpu=use_gpu)
    if notes == [NO_LIBRARY_NOTE] and machine != "arm64":
        notes = []
    return list(meters), notes
