"""nbcarbon: the energy and carbon cost of notebook work, measured per cell and kept in the notebook.

``%load_ext nbcarbon`` in IPython or Jupyter, then ``%%carbon`` on a cell or ``%carbon auto on``.
In scripts: ``with nbcarbon.track() as t: ...`` then ``t.footprint``.

This module imports nothing heavy: IPython, psutil and NVML are imported where they are used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_ipython_extension", "unload_ipython_extension", "track",
           "read_notebook"]

if TYPE_CHECKING:
    from pathlib import Path

    from .api import Tracker
    from .footprint import Footprint


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbcarbon``: register the magics and the cell hooks."""
    from .magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext nbcarbon``: remove the hooks and stop every thread nbcarbon started."""
    from .magics import unload

    unload(ipython)


def track(label: str | None = None, region: str | None = None, pue: float | None = None) -> "Tracker":
    """Measure a block of code: ``with nbcarbon.track("fit") as t: ...`` then ``t.footprint``."""
    from .api import track as _track

    return _track(label=label, region=region, pue=pue)


def read_notebook(path: "str | Path") -> "list[Footprint]":
    """The cell records embedded in a saved notebook (never executes it)."""
    from .notebook import read_notebook as _read

    return _read(path)
