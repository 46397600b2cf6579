"""What this platform can measure, what this machine does measure, and how to measure more.

Why apart from the probe's notes: a note says why one thing failed here ("RAPL counters readable
only by root"); a person reading ``%carbon status`` also needs the map: which hardware nbcarbon
reads on this operating system at all, which of it this machine gave, what is only estimated,
and the one step that would turn an estimate into a measurement. :func:`platform_lines` derives
all of it from a :class:`~nbcarbon.meters.probe.ProbeResult`, so it never probes twice and the
CLI and the magics say the same.
"""

from __future__ import annotations

from nbcarbon.meters.base import METHOD_KIND
from nbcarbon.meters.probe import ProbeResult

#: What each method reads, in the words of the lines below.
SOURCE = {
    "rapl-counter": "RAPL",
    "amd-energy-counter": "amd_energy",
    "nvml-counter": "NVML",
    "nvml-power": "NVML power",
    "amdsmi-counter": "AMD SMI",
    "amdsmi-power": "AMD SMI power",
    "ioreport-counter": "IOReport",
    "cpu-time-model": "CPU-time model",
    "memory-model": "memory model",
}

#: Per platform: what nbcarbon reads there with counters (None: nothing but NVIDIA, or models).
READS = {
    "linux": ("RAPL powercap (CPU packages of Intel and AMD Zen; DRAM on Intel), AMD's amd_energy "
              "driver (AMD sockets), NVML (NVIDIA GPUs), AMD SMI (AMD GPUs)"),
    "darwin-arm64": "IOReport (Apple Silicon CPU, GPU, Neural Engine and, on some chips, DRAM)",
    "darwin": "nothing without sudo on an Intel Mac: CPU and memory are estimated",
    "win32": "NVML (NVIDIA GPUs); CPU and memory are estimated (RAPL needs a kernel driver)",
}

_NO_RAPL = ("load the powercap RAPL driver (sudo modprobe intel_rapl_msr: Intel, and AMD Zen on "
            "recent kernels) or AMD's amd_energy driver; a virtual machine or container sees no "
            "counters of its host")
_NO_DRAM = ("RAPL has DRAM zones on Intel server and desktop CPUs only; AMD CPUs and most laptops "
            "have none, so the memory model stands in")
_APPLE = ("pip install 'nbcarbon[apple]' (zeus-apple-silicon reads the IOReport counters of "
          "Apple Silicon, no sudo)")
_ROSETTA = ("on an Apple Silicon Mac under Rosetta, use a native arm64 Python and "
            "pip install 'nbcarbon[apple]'")
_GPUS = ("NVIDIA GPUs need their driver (NVML, installed with nbcarbon); AMD GPUs need "
         "pip install 'nbcarbon[amd]' and ROCm's amd-smi-lib")


def _platform_key(result: ProbeResult) -> str:
    system = result.platform or ""
    if system.startswith("linux"):
        return "linux"
    if system == "darwin":
        return "darwin-arm64" if result.machine == "arm64" else "darwin"
    return system


def _system_name(system: str) -> str:
    if system.startswith("linux"):
        return "Linux"
    return {"darwin": "macOS", "win32": "Windows"}.get(system, system or "unknown")


def platform_lines(result: ProbeResult) -> list[str]:
    """Lines for ``%carbon status`` / ``nbcarbon status``: the platform and what nbcarbon reads
    there, then what is measured, sampled and estimated here, then one ``to measure ...`` line per
    component that a step (named in the line) would measure instead of estimating, or a
    ``... cannot be measured here`` line where this hardware has no counter for it."""
    key = _platform_key(result)
    where = _system_name(result.platform) + (f" ({result.machine})" if result.machine else "")
    reads = READS.get(key, "NVML (NVIDIA GPUs); CPU and memory are estimated")
    lines = [f"platform: {where}; nbcarbon reads {reads}"]

    by_kind: dict[str, list[str]] = {"measured": [], "sampled": [], "estimated": []}
    components: dict[str, set[str]] = {"measured": set(), "sampled": set(), "estimated": set()}
    for meter in result.meters:
        ch = meter.channel
        kind = METHOD_KIND[ch.method]
        device = "Neural Engine" if (ch.component, ch.device) == ("gpu", "ane") else ch.device
        by_kind[kind].append(f"{ch.component} {device} ({SOURCE.get(ch.method, ch.method)})")
        components[kind].add(ch.component)
    for kind in ("measured", "sampled", "estimated"):
        if by_kind[kind]:
            lines.append(f"{kind} here: " + ", ".join(by_kind[kind]))
    if not result.meters:
        lines.append("measured here: nothing")

    lines.extend(_hints(result, key, components))
    return lines


def _hints(result: ProbeResult, key: str, components: dict[str, set[str]]) -> list[str]:
    """``to measure <what>: <how>`` for each estimated or unmeasured component that a step would
    measure, and ``<what> cannot be measured here: <why>`` where no step would.

    A GPU is mentioned only where the probe looked for one (its notes say what it found), so a
    probe with ``use_gpu=False`` gets no GPU advice.
    """
    notes = result.notes
    cpu_estimated = "cpu" in components["estimated"]
    mem_estimated = "memory" in components["estimated"]
    has_gpu = "gpu" in components["measured"] | components["sampled"]
    gpu_looked = any("GPU" in n or "NVML" in n for n in notes)
    hints: list[str] = []
    if key == "linux":
        if cpu_estimated:
            if any(n.startswith(("RAPL counters exist", "amd_energy counters exist")) for n in notes):
                hints.append("to measure cpu: make the counters readable (the note above says how)")
            elif not any(n.startswith(("RAPL", "amd_energy")) for n in notes):
                hints.append(f"to measure cpu: {_NO_RAPL}")  # a failing counter has its own note
        if mem_estimated and not cpu_estimated:
            hints.append(f"dram cannot be measured here: {_NO_DRAM}")
        if not has_gpu and gpu_looked:
            amd_note = any("amdsmi" in n or "AMD SMI" in n or "AMD GPU" in n for n in notes)
            hints.append("to measure gpu: " + ("see the AMD GPU note above" if amd_note else
                                               f"no GPU found; {_GPUS}"))
    elif key == "darwin-arm64":
        if any(n.startswith("Apple Silicon energy counters not read") for n in notes):
            hints.append(f"to measure cpu and gpu: {_APPLE}")
        elif any(n.startswith("IOReport") for n in notes):
            hints.append("to measure cpu and gpu: IOReport could not be read (the note above says why)")
        if mem_estimated and not cpu_estimated:
            hints.append("dram cannot be measured here: this chip's IOReport has no DRAM channel; "
                         "the memory model stands in")
    elif key == "darwin":
        hints.append(f"to measure cpu: {_ROSETTA}")
    elif key == "win32" and not has_gpu and gpu_looked:
        hints.append("to measure gpu: NVIDIA GPUs need their driver (NVML, installed with nbcarbon)")
    return hints
