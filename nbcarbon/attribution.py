"""Charging a window its share of machine-wide energy (``attribution: share``).

The meters measure what the machine did; :mod:`nbcarbon.meters.share` says how much of each
device the kernel's processes used over the window. This module turns the two into the
record's components: each machine-wide component keeps the machine's energy in its ``share``
and charges the window the share of it, and the record says ``attribution: share``. Every total,
CO2e figure and view adds the charged energy, so nothing else needs to know about shares.
"""

from __future__ import annotations

from collections.abc import Sequence

from .footprint import Component, Measured, Share
from .meters.base import Channel
from .meters.share import ShareMeter, Split

#: Shares are stored to this many decimal places (a tenth of a percent point is far below
#: what CPU-time ticks and utilisation samples can tell apart).
FRACTION_DIGITS = 4


def splits(shares: Sequence[ShareMeter], begin: Sequence[object], end: Sequence[object],
           duration_s: float) -> list[Split]:
    """Each share meter's split of the window; a failed read at either end is a ``Split`` with
    no fraction and the reason (strings are the sampler's failure messages)."""
    out = []
    for share, b, e in zip(shares, begin, end, strict=True):
        if isinstance(b, str) or isinstance(e, str):
            out.append(Split(None, share.basis, str(e if isinstance(e, str) else b)))
            continue
        try:
            out.append(share.split(b, e, duration_s))
        except Exception as exc:  # noqa: BLE001 - a bad split costs the share, not the record
            out.append(Split(None, share.basis, f"{type(exc).__name__} while splitting"))
    return out


def charge(measured: Measured, channels: Sequence[Channel], shares: Sequence[ShareMeter],
           window_splits: Sequence[Split], duration_s: float) -> None:
    """Replace each machine-wide component of ``measured`` by the window's share of it.

    A component whose device has no share meter, or whose share could not be worked out, is
    charged whole and a warning says so: a number never looks more personal than it is.
    """
    by_key = {(ch.component, ch.device, ch.method): ch for ch in channels}
    split_any = False
    machine_whole = False
    components = []
    for c in measured.components:
        ch = by_key.get((c.component, c.device, c.method))
        if ch is None or ch.attribution != "machine" or c.share is not None:
            components.append(c)  # a model's own tree, or a collector's (Dask) component
            continue
        name = f"{c.component} {c.device} ({c.method})"
        found = next((i for i, s in enumerate(shares) if s.covers(ch)), None)
        if found is None:
            measured.warnings.append(f"{name}: charged whole, no per-process use is read for this "
                                     "device (attribution: machine for it)")
            components.append(c)
            machine_whole = True
            continue
        split = window_splits[found]
        if split.fraction is None:
            measured.warnings.append(f"{name}: charged whole, its share could not be worked out "
                                     f"({split.why or 'no reading'})")
            components.append(c)
            machine_whole = True
            continue
        fraction = round(min(1.0, max(0.0, split.fraction)), FRACTION_DIGITS)
        energy_j = c.energy_j * fraction
        components.append(Component(
            c.component, c.device, c.method, energy_j,
            energy_j / duration_s if duration_s > 0 else 0.0,
            Share(split.basis, fraction, c.energy_j)))
        split_any = True
    measured.components = components
    if split_any:
        measured.attribution = "share"
    elif machine_whole:
        measured.attribution = "machine"
