"""``%carbon plot cells|timeline``: matplotlib figures of the session's records and power timeline.

Records and the sampler's timeline in, a ``Figure`` out; nothing is measured here. matplotlib is
imported inside the functions, so ``import nbcarbon`` stays light.

Each figure is closed in pyplot before it is returned: the inline backend then does not show it a
second time at the end of the cell, and the magic's return value (``Out[n]``) shows it once.
The legend says how each component's number was obtained (measured, sampled or estimated).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from .footprint import Footprint, top_level
from .meters.base import METHOD_KIND, Channel
from .readout import METHOD_LABEL, format_mass
from .sampler import TimelinePoint
from .summary import cell_name

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: One colour per component, the same in both plots (colour-blind safe Okabe-Ito hues).
COLOURS = {"cpu": "#0072B2", "dram": "#E69F00", "gpu": "#009E73", "memory": "#CC79A7"}
ORDER = ("cpu", "dram", "gpu", "memory")


def _methods_by_component(channels: Sequence[tuple[str, str]]) -> dict[str, str]:
    """component -> 'estimated: CPU-time model' (every method used for it, in order)."""
    out: dict[str, list[str]] = {}
    for component, method in channels:
        label = f"{METHOD_KIND.get(method, '?')}: {METHOD_LABEL.get(method, method)}"
        if label not in out.setdefault(component, []):
            out[component].append(label)
    return {k: ", ".join(v) for k, v in out.items()}


def _energy_unit(max_j: float) -> tuple[str, float]:
    """A unit that keeps the axis numbers readable: J, kJ or Wh."""
    if max_j < 1e4:
        return "J", 1.0
    if max_j < 3.6e6:
        return "Wh", 3600.0
    return "kWh", 3.6e6


def cells_figure(records: Sequence[Footprint], last: int = 30) -> "Figure":
    """Energy per cell, stacked by component, with each cell's CO2e above its bar.

    Only the ``last`` cells are drawn so the labels stay legible; the title says so.
    """
    import matplotlib.pyplot as plt

    nested: dict[str, int] = {}
    for fp in records:
        if fp.parent_id is not None:
            nested[fp.parent_id] = nested.get(fp.parent_id, 0) + 1
    tops = top_level(records)  # nested windows are detail of their cell's bar, not bars
    shown = tops[-last:]
    width = min(16.0, max(8.0, 0.55 * len(shown) + 5.0))
    fig, ax = plt.subplots(figsize=(width, 4.2), layout="constrained")
    plt.close(fig)
    if not shown:
        ax.text(0.5, 0.5, "no cells measured yet (%%carbon or %carbon auto on)",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("cell")
        ax.set_ylabel("energy (J)")
        ax.set_title("nbcarbon: energy per cell by component")
        return fig
    unit, scale = _energy_unit(max(fp.energy_j for fp in shown))
    methods = _methods_by_component([(c.component, c.method) for fp in shown for c in fp.components])
    names = [cell_name(fp) + (f"\n(+{nested[fp.id]} inside)" if fp.id in nested else "")
             for fp in shown]
    x = range(len(shown))
    bottom = [0.0] * len(shown)
    for component in ORDER:
        if component not in methods:
            continue
        heights = [fp.energy_by_component().get(component, 0.0) / scale for fp in shown]
        ax.bar(x, heights, bottom=bottom, color=COLOURS[component], width=0.7,
               label=f"{component} ({methods[component]})")
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    for i, fp in enumerate(shown):
        ax.annotate(f"{format_mass(fp.co2e_g)}", (i, bottom[i]), ha="center", va="bottom",
                    fontsize=8, xytext=(0, 2), textcoords="offset points")
    # Labels are the user's text: "$x$" is a price in dollars, not mathtext to typeset (an
    # unknown command such as "$\notacommand{x}$" would make the whole figure fail to draw).
    # Slanted when the labels would not fit side by side ("train 64 units" beside "train 256
    # units" ran into each other under six bars).
    longest = max(len(line) for name in names for line in name.splitlines())
    slant = len(shown) > 6 or longest * len(shown) > 7 * width
    ax.set_xticks(list(x), names, rotation=30 if slant else 0, ha="right" if slant else "center",
                  parse_math=False)
    ax.set_ylim(0, max(bottom) * 1.15 or 1.0)
    ax.set_xlabel("cell")
    ax.set_ylabel(f"energy ({unit}, before PUE)")
    region = shown[-1].region
    more = f", last {len(shown)} of {len(tops)}" if len(tops) > len(shown) else ""
    ax.set_title(f"nbcarbon: energy per cell by component{more} · CO2e above bars "
                 f"({region.code}, {region.g_per_kwh:.4g} g/kWh, PUE {shown[-1].pue:g})", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # never over the bars
    ax.grid(axis="y", alpha=0.3)
    return fig


def _epoch_s(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def timeline_figure(
    timeline: Sequence[TimelinePoint],
    channels: Sequence[Channel],
    records: Sequence[Footprint] = (),
    *,
    wall_minus_monotonic_s: float | None = None,
) -> "Figure":
    """Power over time per component, as sampled, and each cell's mean power from its record.

    Honest about what was measured where: each sampler point is the mean power since the point
    before it, so it is drawn as a step over exactly that interval, with a tick where the read
    happened; the first point (its interval began before the kept timeline) is only the start.
    Nothing is drawn or shaded outside the sampled span. A step that straddles a cell's end
    mixes the cell and what came after; the cell's own mean power (energy over duration, from
    the counters read at its boundaries) is drawn over exactly the cell, so the two can be told
    apart. The timeline is on the monotonic clock and records carry wall-clock start times;
    ``wall_minus_monotonic_s`` maps one to the other (default: measured now).
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 4.2), layout="constrained")
    plt.close(fig)
    ax.set_xlabel("time since first sample (s)")
    ax.set_ylabel("power (W)")
    ax.set_title("nbcarbon: sampled power (mean between reads, ticks at reads); "
                 "black: each cell's mean from its record", fontsize=10)
    points = list(timeline)
    if len(points) < 2:
        ax.text(0.5, 0.5, "no samples yet", ha="center", va="center", transform=ax.transAxes)
        return fig
    t0 = points[0].t_s
    ts = [p.t_s - t0 for p in points]
    methods = _methods_by_component([(ch.component, ch.method) for ch in channels])
    top_w = 0.0
    for component in ORDER:
        idx = [i for i, ch in enumerate(channels) if ch.component == component]
        if not idx:
            continue
        ys = [float("nan")]  # the first point only starts the first interval
        for p in points[1:]:
            values = [p.power_w[i] for i in idx if i < len(p.power_w) and p.power_w[i] is not None]
            ys.append(sum(values) if values else float("nan"))
        top_w = max([top_w, *(y for y in ys if y == y)])
        ax.plot(ts, ys, color=COLOURS[component], lw=1.4, drawstyle="steps-pre",
                label=f"{component} ({methods[component]})")
        ax.plot(ts[1:], ys[1:], ls="none", marker="|", ms=6, color=COLOURS[component])
    offset = (time.time() - time.monotonic()) if wall_minus_monotonic_s is None \
        else wall_minus_monotonic_s
    labelled = False
    for n, fp in enumerate(top_level(records)):
        start = _epoch_s(fp.started_at) - offset - t0
        end = start + fp.duration_s
        if end <= 0 or start >= ts[-1]:
            continue  # before the kept timeline or after its last point
        shown_start, shown_end = max(start, 0.0), min(end, ts[-1])
        ax.axvspan(shown_start, shown_end, color="#888888", alpha=0.12 if n % 2 else 0.2, lw=0)
        if fp.duration_s > 0:
            mean_w = fp.energy_j / fp.duration_s
            top_w = max(top_w, mean_w)
            ax.plot([shown_start, shown_end], [mean_w, mean_w], color="black", lw=1.0,
                    label=None if labelled else "cell mean power (its record)")
            labelled = True
        if start >= 0:
            ax.axvline(start, color="#555555", lw=0.8, ls="--")
        ax.annotate(cell_name(fp), (shown_start, 1.0), xycoords=("data", "axes fraction"), fontsize=8,
                    rotation=90, va="top", ha="right", xytext=(-1, -2), textcoords="offset points",
                    parse_math=False)  # a label is shown as written, never typeset as mathtext
    ax.set_xlim(0.0, ts[-1])  # only where something was measured
    ax.set_ylim(0.0, top_w * 1.15 or 1.0)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # never over the trace
    ax.grid(alpha=0.3)
    return fig
