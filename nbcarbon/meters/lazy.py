"""psutil, imported on first use.

Why: importing psutil costs ~13 ms, most of a kernel's cold start, and a kernel whose process
tree has no child (the usual notebook) never needs it on Linux: its own CPU time comes from
``os.times()``, its memory from ``/proc/PID/statm``, its children from ``/proc``. The first
attribute looked up (``psutil.Process``, or ``psutil.Error`` in an ``except`` clause, which is
evaluated only when an exception is being matched) imports the real module.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

_lock = threading.Lock()


class LazyModule:
    """Stands for a module until an attribute of it is needed, then forwards to it."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: Any = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            with _lock:
                if self._module is None:
                    self._module = importlib.import_module(self._name)
                module = self._module
        return getattr(module, attr)


psutil: Any = LazyModule("psutil")
