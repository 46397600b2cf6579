"""nbcarbon: the energy and carbon cost of notebook work, measured per cell and kept in the notebook.

``%load_ext nbcarbon`` in IPython or Jupyter, then ``%%carbon`` on a cell or ``%carbon auto on``.
In scripts: ``with nbcarbon.track() as t: ...`` then ``t.footprint``.

This module imports nothing heavy: IPython, psutil and NVML are imported where they are used.
"""

from __future__ import annotations

# Not `from typing import TYPE_CHECKING`: typing costs a few ms to import and this module only
# needs it for annotations (strings here), so type checkers see the constant by its name.
TYPE_CHECKING = False

__version__ = "0.1.0"
__all__ = ["__version__", "load_ipython_extension", "unload_ipython_extension", "track",
           "read_notebook", "dashboard"]

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from .api import Tracker
    from .footprint import Footprint
    from .panel import Dashboard


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbcarbon``: register the magics and the cell hooks."""
    from .magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext nbcarbon``: remove the hooks and stop every thread nbcarbon started."""
    from .magics import unload

    unload(ipython)


def track(label: str | None = None, region: str | None = None, pue: float | None = None,
          display: bool = True) -> "Tracker":
    """Measure a block of code: ``with nbcarbon.track("fit") as t: ...`` then ``t.footprint``.

    In a notebook the block gets a compact readout carrying its record (``display=False``: none).
    """
    from .api import track as _track

    return _track(label=label, region=region, pue=pue, display=display)


def read_notebook(path: "str | Path") -> "list[Footprint]":
    """The cell records embedded in a saved notebook (never executes it)."""
    from .notebook import read_notebook as _read

    return _read(path)


def dashboard() -> "Dashboard":
    """The live panel of ``%carbon dashboard``, as an object (display it, or drive its widgets).

    Loads the extension into the running IPython if it is not loaded yet.
    """
    from IPython import get_ipython

    from .magics import open_dashboard

    return open_dashboard(get_ipython())


if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from .loops import Epochs
    from .whatif import Estimate


def epochs(iterable: "Iterable[Any]", total: int | None = None, predict_after: int = 1,
           budget_g: float | None = None, on_budget: str = "warn", **options: Any) -> "Epochs[Any]":
    """Measure each iteration of a loop and predict the whole loop's energy, CO2e and time.

    ``for epoch in nbcarbon.epochs(range(50), budget_g=100): ...``; see
    :func:`nbcarbon.loops.epochs` for every option (label, region, pue, progress).
    """
    from .loops import epochs as _epochs

    return _epochs(iterable, total, predict_after, budget_g, on_budget, **options)


def estimate(*, hours: float, power_w: float | None = None,
             hardware: "str | Mapping[str, int] | None" = None, count: int = 1, load: float = 1.0,
             pue: float = 1.0, region: str | None = None, g_per_kwh: float | None = None,
             lbs_per_kwh: float | None = None) -> "Estimate":
    """What-if energy (kWh, with PUE) and CO2e of a run elsewhere, from watts or a hardware preset.

    ``nbcarbon.estimate(hardware="A100", count=8, hours=24, region="SE")``; see
    :func:`nbcarbon.whatif.estimate`.
    """
    from .whatif import estimate as _estimate

    return _estimate(hours=hours, power_w=power_w, hardware=hardware, count=count, load=load,
                     pue=pue, region=region, g_per_kwh=g_per_kwh, lbs_per_kwh=lbs_per_kwh)


if TYPE_CHECKING:
    from .live.forecast import GreenWindow


def greenest_window(duration_h: float, within_h: float = 24.0, region: str | None = None,
                    **options: Any) -> "GreenWindow":
    """The greenest start for a ``duration_h`` job ending within ``within_h`` hours, from a live forecast.

    ``nbcarbon.greenest_window(3)`` -> start, end, mean g/kWh, saving % vs starting now, provider;
    ``covered=False`` with a ``reason`` when the region has no forecast or it does not cover the job.
    Asks the network (UK, Denmark; elsewhere Electricity Maps with a token); see
    :func:`nbcarbon.live.commands.greenest_window`.
    """
    from .live.commands import greenest_window as _greenest

    return _greenest(duration_h, within_h, region, **options)
