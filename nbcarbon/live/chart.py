"""``%carbon forecast``'s figure: the forecast intensity as steps, the greenest window shaded.

Same conventions as :mod:`nbcarbon.plots`: matplotlib imported inside the function, the figure
closed in pyplot before it is returned so the inline backend shows it once (as ``Out[n]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo
from typing import TYPE_CHECKING

from .base import IntensityInterval
from .forecast import GreenWindow

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LINE = "#0072B2"
BEST = "#009E73"
NOW = "#D55E00"


def forecast_figure(series: Sequence[IntensityInterval], window: GreenWindow, title: str,
                    tz: tzinfo | None = None) -> "Figure":
    """Intensity over the next hours (local time by default) with the advice as the caption."""
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.6), layout="constrained")
    plt.close(fig)
    ax.set_ylabel("g CO2e/kWh")
    ax.set_title(title, fontsize=10)
    if not series:
        ax.text(0.5, 0.5, "no forecast values", ha="center", va="center", transform=ax.transAxes)
        return fig
    xs = [iv.start.astimezone(tz) for iv in series] + [series[-1].end.astimezone(tz)]
    ys = [iv.g_per_kwh for iv in series] + [series[-1].g_per_kwh]
    ax.step(xs, ys, where="post", color=LINE, label="forecast intensity")
    ax.axvline(window.now.astimezone(tz), color=NOW, linestyle="--", linewidth=1, label="now")
    if window.covered and window.start is not None and window.end is not None:
        ax.axvspan(window.start.astimezone(tz), window.end.astimezone(tz), color=BEST, alpha=0.2,
                   label=f"greenest {window.duration_h:g} h ({window.mean_g_per_kwh:.0f} g/kWh)")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=tz))
    ax.set_ylim(0, max(ys) * 1.15 or 1.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_xlabel(window.advice(tz), fontsize=9)
    return fig
