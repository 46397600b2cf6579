"""Picks the best meter this machine offers for each component, and says what it could not measure.

Why one function: the magics and the CLI must agree on what is measured and how, and a person
must learn once, in plain words, what is estimated instead of measured and how to fix it. The
order is fixed: RAPL package zones (cpu), RAPL DRAM zones (dram), the CPU-time model where no
package is readable, the memory model where no DRAM zone is, then NVIDIA GPUs.

This module imports no hardware library at module level (psutil and pynvml are imported when
:func:`probe` runs), so ``import nbcarbon.meters`` stays cheap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbcarbon.errors import MeterError
from nbcarbon.meters.base import Meter


@dataclass
class ProbeResult:
    """The meters to sample, and one-line notes on what is not measured and why."""

    meters: list[Meter] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def probe(
    powercap_root: Path,
    nvml: Any = None,
    pid: int | None = None,
    use_gpu: bool = True,
    cpuinfo_path: Path = Path("/proc/cpuinfo"),
) -> ProbeResult:
    """Opens every meter this machine supports; never raises for missing hardware.

    ``powercap_root`` is normally ``/sys/class/powercap``; ``nvml`` is the NVML module (None
    imports ``pynvml``); ``pid`` is the process whose tree the models follow (default: this one).
    """
    from nbcarbon.meters.rapl import open_rapl

    pid = os.getpid() if pid is None else pid
    result = ProbeResult()
    rapl_meters, rapl_notes = open_rapl(powercap_root)
    result.notes.extend(rapl_notes)
    cpu = [m for m in rapl_meters if m.channel.component == "cpu"]
    dram = [m for m in rapl_meters if m.channel.component == "dram"]
    result.meters.extend(cpu)
    result.meters.extend(dram)
    if any(note.startswith("RAPL counters exist") for note in rapl_notes):
        why_cpu = "RAPL counters readable only by root"
    elif rapl_notes:
        why_cpu = "RAPL counters could not be read"
    else:
        why_cpu = f"no RAPL counters under {powercap_root}"

    tree = None  # one list of child processes, shared by the two models
    if not cpu or not dram:
        import psutil

        from nbcarbon.meters.cputime import ChildProcesses

        try:
            tree = ChildProcesses(pid)
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

        why_dram = "no RAPL DRAM counter on this CPU" if cpu else why_cpu
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
        from nbcarbon.meters.nvml import open_gpus

        gpu_meters, gpu_notes = open_gpus(nvml)
        result.meters.extend(gpu_meters)
        result.notes.extend(gpu_notes)
    return result
