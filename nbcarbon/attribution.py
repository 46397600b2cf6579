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


def plan(channels: Sequence[Channel], shares: Sequence[ShareMeter]) -> tuple[int | None, ...]:
    """For each channel, the index of the share meter that splits it; ``-1`` for a machine-wide
    channel that none covers; ``None`` for a channel of the kernel's own (a model).

    Worked out once per set of meters (the session keeps it), not at every window.
    """
    out: list[int | None] = []
    for ch in channels:
        if ch.attribution != "machine":
            out.append(None)
            continue
        out.append(next((i for i, s in enumerate(shares) if s.covers(ch)), -1))
    return tuple(out)


def charge(measured: Measured, channels: Sequence[Channel], channel_plan: Sequence[int | None],
           window_splits: Sequence[Split], duration_s: float) -> None:
    """Replace each machine-wide component of ``measured`` by the window's share of it.

    ``channel_plan`` is :func:`plan` of ``channels``. A component whose device has no share
    meter, or whose share could not be worked out, is charged whole and a warning says so: a
    number never looks more personal than it is.
    """
    components = measured.components
    if len(components) == len(channels):  # every channel measured (the usual case): by position
        where: Sequence[int | None] = [
            channel_plan[i] if (c.device == channels[i].device and c.method == channels[i].method)
            else _find(c, channels, channel_plan) for i, c in enumerate(components)]
    else:
        where = [_find(c, channels, channel_plan) for c in components]
    split_any = machine_whole = False
    out = []
    for c, k in zip(components, where, strict=True):
        if k is None or c.share is not None:
            out.append(c)  # the kernel's own (a model), or a collector's (Dask) component
            continue
        split = window_splits[k] if k >= 0 else None
        if split is None or split.fraction is None:
            name = f"{c.component} {c.device} ({c.method})"
            measured.warnings.append(
                f"{name}: charged whole, no per-process use is read for this device (attribution: "
                "machine for it)" if split is None else
                f"{name}: charged whole, its share could not be worked out ({split.why or 'no reading'})")
            out.append(c)
            machine_whole = True
            continue
        fraction = round(min(1.0, max(0.0, split.fraction)), FRACTION_DIGITS)
        energy_j = c.energy_j * fraction
        out.append(Component(c.component, c.device, c.method, energy_j,
                             energy_j / duration_s if duration_s > 0 else 0.0,
                             Share(split.basis, fraction, c.energy_j)))
        split_any = True
    measured.components = out
    if split_any:
        measured.attribution = "share"
    elif machine_whole:
        measured.attribution = "machine"


def _find(c: Component, channels: Sequence[Channel], channel_plan: Sequence[int | None]) -> int | None:
    """The plan entry of the channel ``c`` was measured by (``None``: not one of the meters')."""
    for i, ch in enumerate(channels):
        if ch.component == c.component and ch.device == c.device and ch.method == c.method:
            return channel_plan[i]
    return None
