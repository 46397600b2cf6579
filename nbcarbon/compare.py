"""The same measured work priced in several regions side by side (``%carbon compare``,
``nbcarbon report --compare``).

Records in, rows out: the stored energy of each record (joules, before PUE) is priced with its
own PUE at each region's intensity, so only the grid changes between rows. Renderers are
functions of the rows (text with bars, HTML, JSON, CSV, Markdown, a matplotlib figure); nothing
is measured here and matplotlib is imported only by :func:`compare_figure`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from html import escape
from typing import TYPE_CHECKING

from . import intensity
from .errors import NbcarbonError
from .footprint import Footprint, co2e_g, top_level
from .readout import format_energy, format_mass
from .report import csv_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMATS = ("table", "json", "csv", "markdown")
_BAR_WIDTH = 24


class CompareError(NbcarbonError, ValueError):
    """Nothing to compare: no regions named, or no records."""


@dataclass(frozen=True)
class CompareRow:
    """One region's price for the whole set of records."""

    code: str
    name: str
    g_per_kwh: float
    year: int | None
    source: str
    basis: str
    records: int
    energy_j: float          # measured IT energy, before PUE (the same in every row)
    facility_energy_j: float  # with each record's PUE (or the override)
    co2e_g: float
    ratio: float              # co2e_g over the lowest row's (1.0 for the lowest)


def compare(records: Sequence[Footprint], codes: Sequence[str], pue: float | None = None) -> list[CompareRow]:
    """Price ``records`` in each region of ``codes``, in the order given (duplicates dropped).

    Every code is looked up first, so an unknown one raises :class:`~nbcarbon.errors.RegionError`
    (naming the closest matches) before anything is computed. ``pue`` replaces each record's own
    PUE when given (already validated by the caller).
    """
    if not codes:
        raise CompareError("name at least one region to compare, e.g. SE PL US-CA")
    regions: list[intensity.Region] = []
    for code in codes:
        region = intensity.lookup(code)
        if region not in regions:
            regions.append(region)
    records = top_level(records)  # a nested window is in its parent's energy already
    if not records:
        raise CompareError("no footprint records to compare: measure some cells first "
                           "(%%carbon, %carbon auto on, nbcarbon run)")
    energy_j = sum(fp.energy_j for fp in records)
    facility_j = sum(fp.energy_j * (fp.pue if pue is None else pue) for fp in records)
    priced = [(r, sum(co2e_g(fp.energy_j, fp.pue if pue is None else pue, r.g_per_kwh)
                      for fp in records)) for r in regions]
    lowest = min(g for _, g in priced)
    return [
        CompareRow(code=r.code, name=r.name, g_per_kwh=r.g_per_kwh, year=r.year, source=r.source,
                   basis=r.basis, records=len(records), energy_j=energy_j,
                   facility_energy_j=facility_j, co2e_g=g,
                   ratio=g / lowest if lowest > 0 else (1.0 if g == 0 else float("inf")))
        for r, g in priced
    ]


def cli_compare(records: Sequence[Footprint], codes: Sequence[str], fmt: str = "table",
                pue: float | None = None, plot_path: str | None = None) -> str:
    """What ``nbcarbon report --compare CODE...`` prints; with ``plot_path``, also saves the chart."""
    rows = compare(records, codes, pue)
    if plot_path is not None:
        compare_figure(rows).savefig(plot_path, dpi=120)
    return render(rows, fmt)


def _headline(rows: Sequence[CompareRow]) -> str:
    r = rows[0]
    pue = f", {format_energy(r.facility_energy_j)} with PUE" if r.facility_energy_j != r.energy_j else ""
    return (f"nbcarbon compare: the same {r.records} record(s), {format_energy(r.energy_j)} "
            f"measured{pue}, priced in {len(rows)} region(s)")


def _notes(rows: Sequence[CompareRow]) -> list[str]:
    bases = sorted({r.basis for r in rows})
    if len(bases) > 1:
        return [f"bases differ ({', '.join(bases)}): lifecycle figures count more than direct ones, "
                "so those rows are not strictly comparable"]
    return []


def _year(r: CompareRow) -> str:
    return f" {r.year}" if r.year and str(r.year) not in r.source else ""


def _ratio(r: CompareRow) -> str:
    return "lowest" if r.ratio == 1.0 else f"x{r.ratio:.3g}"


def render(rows: Sequence[CompareRow], fmt: str = "table") -> str:
    """The rows in one of :data:`FORMATS`; ``table`` draws a text bar per region."""
    if fmt not in FORMATS:
        raise CompareError(f"format must be one of {FORMATS}, not {fmt!r}")
    if fmt == "json":
        return json.dumps({"regions": [asdict(r) for r in rows], "notes": _notes(rows)}, indent=2)
    if fmt == "csv":
        return csv_text(rows, CompareRow)
    head = ["region", "intensity", "CO2e", "vs lowest", "source"]
    body = [[f"{r.code} {r.name}", f"{r.g_per_kwh:.4g} g/kWh", format_mass(r.co2e_g), _ratio(r),
             f"{r.source}{_year(r)}, {r.basis}"] for r in rows]
    if fmt == "markdown":
        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
        return "\n".join([_headline(rows), "", line(head), line(["---"] * len(head)),
                          *map(line, body), *(f"\n{n}" for n in _notes(rows))])
    top = max(r.co2e_g for r in rows) or 1.0
    bars = ["█" * max(1 if r.co2e_g > 0 else 0, round(r.co2e_g / top * _BAR_WIDTH)) for r in rows]
    head.insert(3, "")
    for cells, bar in zip(body, bars, strict=True):
        cells.insert(3, bar)
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]

    def fmt_row(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
    return "\n".join([_headline(rows), fmt_row(head), "  ".join("-" * w for w in widths),
                      *map(fmt_row, body), *(f"! {n}" for n in _notes(rows))])


def compare_table(rows: Sequence[CompareRow]) -> tuple[str, str]:
    """``(text, html)`` of the comparison; the HTML is script-free, every value escaped."""
    top = max(r.co2e_g for r in rows) or 1.0
    cell = 'style="padding:1px 10px 1px 0;text-align:{}"'
    trs = []
    for r in rows:
        width = r.co2e_g / top * 160
        bar = (f'<div style="background:#3a7d44;height:10px;width:{width:.1f}px;'
               f'min-width:{1 if r.co2e_g > 0 else 0}px"></div>')
        trs.append("<tr>" + "".join([
            f"<td {cell.format('left')}>{escape(r.code)} {escape(r.name)}</td>",
            f"<td {cell.format('right')}>{r.g_per_kwh:.4g} g/kWh</td>",
            f"<td {cell.format('right')}><b>{escape(format_mass(r.co2e_g))}</b></td>",
            f"<td {cell.format('left')}>{bar}</td>",
            f"<td {cell.format('right')}>{escape(_ratio(r))}</td>",
            f"<td {cell.format('left')}>{escape(f'{r.source}{_year(r)}, {r.basis}')}</td>",
        ]) + "</tr>")
    ths = "".join(f"<th {cell.format('left')}>{h}</th>"
                  for h in ("region", "intensity", "CO2e", "", "vs lowest", "source"))
    notes = "".join(f'<div style="color:#b35900">⚠ {escape(n)}</div>' for n in _notes(rows))
    html = (
        '<div style="font-family:var(--jp-code-font-family,monospace);font-size:12px;'
        'border-left:3px solid #3a7d44;padding:2px 8px;margin:2px 0">'
        f"<div>{escape(_headline(rows))}</div>"
        f'<table style="border-collapse:collapse;margin:4px 0"><tr>{ths}</tr>{"".join(trs)}</table>'
        f"{notes}</div>"
    )
    return render(rows, "table"), html


def compare_figure(rows: Sequence[CompareRow]) -> "Figure":
    """A bar chart of CO2e per region (grams), each bar labelled with its mass and ratio.

    Closed in pyplot before it is returned, so the inline backend shows it once, as ``Out[n]``.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(rows) + 2.5), 4.0), layout="constrained")
    plt.close(fig)
    x = range(len(rows))
    # The axis in the unit the bar labels use (format_mass: mg below 1 g, kg from 1000 g).
    top = max(r.co2e_g for r in rows)
    unit, scale = ("mg", 1e3) if top < 1.0 else ("kg", 1e-3) if top >= 1000.0 else ("g", 1.0)
    heights = [r.co2e_g * scale for r in rows]
    ax.bar(x, heights, color="#3a7d44", width=0.6)
    for i, r in enumerate(rows):
        ax.annotate(f"{heights[i]:.3g} {unit}\n{_ratio(r)}", (i, heights[i]), ha="center",
                    va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(list(x), [f"{r.code}\n{r.g_per_kwh:.4g} g/kWh" for r in rows], fontsize=8)
    ax.set_ylim(0, max(heights) * 1.25 or 1.0)
    ax.set_xlabel("region (grid carbon intensity)")
    ax.set_ylabel(f"{unit} CO2e")
    bases = sorted({r.basis for r in rows})
    caveat = f"\n(bases differ: {', '.join(bases)}; not strictly comparable)" if len(bases) > 1 else ""
    ax.set_title(f"nbcarbon: the same {format_energy(rows[0].energy_j)} priced by region{caveat}",
                 fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return fig
