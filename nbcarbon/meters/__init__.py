"""Hardware meters: one file per backend; :func:`probe` picks what this machine has.

Importing this package loads no hardware library: ``probe.py`` imports psutil and pynvml only
when :func:`probe` runs.
"""

from nbcarbon.meters.probe import ProbeResult, probe

__all__ = ["ProbeResult", "probe"]
