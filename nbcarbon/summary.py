"""``%carbon summary``: one static table of the session's cells and totals, with its own record.

Why static: a summary is read long after the kernel is gone, on GitHub or nbviewer, where no
widget state and no script runs. So it is plain HTML (inline styles, every value escaped) plus a
``text/plain`` table, and its ``metadata["nbcarbon"]`` carries a ``kind: "summary"`` record that
names the cells it covers by record id, so tools can check the totals against the cells' records.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from html import escape
from typing import Any

from .footprint import METADATA_KEY, Footprint, PricedRegion, top_level, tree_order
from .readout import (
    ROW_STYLE,
    TABLE_STYLE,
    format_duration,
    format_energy,
    format_mass,
    how_obtained,
    shown_label,
    td,
)
from .session import Totals

KIND = "summary"
#: A rule that reads on light and dark backgrounds alike (half-transparent grey).
_RULE = ";border-bottom:1px solid rgba(128,128,128,.4);padding-top:1px;padding-bottom:1px"
_BOX = ("font-family:var(--jp-code-font-family,monospace);font-size:12px;line-height:1.4;"
        "border-left:3px solid #3a7d44;padding:2px 8px;margin:2px 0")
_COLUMNS = (("cell", "left"), ("status", "left"), ("duration", "right"), ("energy", "right"),
            ("CO2e", "right"), ("region", "left"), ("how obtained", "left"))


def totals_of(records: Sequence[Footprint]) -> Totals:
    """Sums over the top-level ``records`` (energy before PUE; CO2e as each is priced now).

    Nested windows are detail of their parent (:func:`~nbcarbon.footprint.top_level`).
    """
    records = top_level(records)
    by_component: dict[str, float] = {}
    for fp in records:
        for name, energy_j in fp.energy_by_component().items():
            by_component[name] = by_component.get(name, 0.0) + energy_j
    return Totals(cells=len(records), duration_s=sum(fp.duration_s for fp in records),
                  energy_j=sum(fp.energy_j for fp in records),
                  co2e_g=sum(fp.co2e_g for fp in records), energy_by_component_j=by_component)


def cell_name(fp: Footprint) -> str:
    """What a cell is called in tables: its label, else ``In [n]``, else ``window``."""
    if fp.label is not None:
        return shown_label(fp.label)
    return f"In [{fp.execution_count}]" if fp.execution_count is not None else "window"


def summary_record(
    records: Sequence[Footprint],
    totals: Totals,
    region: PricedRegion,
    pue: float,
    version: str,
    summary_id: str | None = None,
    created_at: str | None = None,
) -> dict[str, Any]:
    """The ``kind: "summary"`` record (schema 1) for ``records`` priced in ``region``/``pue``.

    ``co2e_g`` is the sum of the cells' own prices: a cell pinned to another region by
    ``--region`` keeps its price, so the total always equals the sum of the rows shown.
    ``summary_id``/``created_at`` are passed when a shown summary is re-priced in place.
    ``cells`` names the top-level records the totals add up; ``nested`` the windows shown
    indented under them (their energy is already in their parent's).
    """
    tops = top_level(records)
    top_ids = {fp.id for fp in tops}
    return {
        "schema": 1,
        "kind": KIND,
        "id": summary_id or uuid.uuid4().hex,
        "created_at": created_at or datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "cells": [fp.id for fp in tops],
        "nested": [fp.id for fp in records if fp.id not in top_ids],
        "n_cells": totals.cells,
        "duration_s": totals.duration_s,
        "energy_j": totals.energy_j,
        "co2e_g": totals.co2e_g,
        "pue": pue,
        "region": {"code": region.code, "name": region.name, "g_per_kwh": region.g_per_kwh,
                   "year": region.year, "source": region.source, "basis": region.basis,
                   "chosen_by": region.chosen_by},
        "energy_by_component_j": dict(totals.energy_by_component_j),
        "nbcarbon_version": version,
    }


#: How a nested window is marked in tables: indented under its parent, never added again.
NESTED_MARK = "↳ "


def _columns(records: Sequence[Footprint]) -> tuple[tuple[str, str], ...]:
    """The table's columns: region and method only when they differ between cells.

    Why: when every row says "SE · PUE 1" and "estimated: CPU-time model", the columns are noise;
    the lines under the table say them once.
    """
    drop = set()
    if len({(fp.region.code, fp.pue) for fp in records}) <= 1:
        drop.add("region")
    if len({how_obtained(fp.components) for fp in records}) <= 1:
        drop.add("how obtained")
    return tuple(c for c in _COLUMNS if c[0] not in drop)


def _pick(values: tuple[str, ...], columns: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    names = [name for name, _ in _COLUMNS]
    return tuple(values[names.index(name)] for name, _ in columns)


def _raised(records: Sequence[Footprint]) -> str | None:
    """"cells that did not finish: In [4] (error), ..." or ``None``: failures are said, not buried."""
    bad = [f"{cell_name(fp)} ({fp.status})" for fp in top_level(records) if fp.status != "ok"]
    return f"cells that did not finish: {', '.join(bad)}" if bad else None


def _row(fp: Footprint, depth: int = 0) -> tuple[str, ...]:
    name = "  " * (depth - 1) + NESTED_MARK + cell_name(fp) if depth else cell_name(fp)
    return (name, fp.status, format_duration(fp.duration_s), format_energy(fp.energy_j),
            format_mass(fp.co2e_g), f"{fp.region.code} · PUE {fp.pue:g}", how_obtained(fp.components))


def _total_row(records: Sequence[Footprint], totals: Totals) -> tuple[str, ...]:
    components = [c for fp in records for c in fp.components]
    nested = len(records) - totals.cells
    inside = f", {nested} nested window{'s' if nested != 1 else ''} counted in them" if nested else ""
    cells = f"{totals.cells} cell{'s' if totals.cells != 1 else ''}"
    return (f"total ({cells}{inside})", "", format_duration(totals.duration_s),
            format_energy(totals.energy_j), format_mass(totals.co2e_g), "", how_obtained(components))


def _region_note(region: PricedRegion, pue: float) -> str:
    year = f" {region.year}" if region.year and str(region.year) not in region.source else ""
    return (f"priced for {region.code} {region.name}, {region.g_per_kwh:.4g} g CO2e/kWh "
            f"({region.source}{year}, {region.basis}) · PUE {pue:g}")


def _notes(records: Sequence[Footprint], totals: Totals, region: PricedRegion, pue: float,
           columns: tuple[tuple[str, str], ...]) -> list[str]:
    """The lines under the table: components, how obtained (when one for all), pricing, failures."""
    by = ", ".join(f"{k} {format_energy(v)}" for k, v in sorted(totals.energy_by_component_j.items()))
    notes = [f"by component: {by or 'none'}"]
    if all(name != "how obtained" for name, _ in columns):
        notes.append(how_obtained([c for fp in records for c in fp.components]))
    notes.append(_region_note(region, pue))
    raised = _raised(records)
    return notes + ([raised] if raised else [])


def text(records: Sequence[Footprint], totals: Totals, region: PricedRegion, pue: float) -> str:
    """The plain-text table (terminals, ``nbconvert --to script``, diffs)."""
    columns = _columns(records)
    rows = [tuple(name for name, _ in columns),
            *(_pick(_row(fp, d), columns) for d, fp in tree_order(records)),
            _pick(_total_row(records, totals), columns)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    lines = []
    for r in rows:
        cells = [r[i].ljust(widths[i]) if columns[i][1] == "left" else r[i].rjust(widths[i])
                 for i in range(len(widths))]
        lines.append("  ".join(cells).rstrip())
    lines.extend(_notes(records, totals, region, pue, columns))
    return "nbcarbon summary\n" + "\n".join(lines)


def html(records: Sequence[Footprint], totals: Totals, region: PricedRegion, pue: float) -> str:
    """Script-free HTML with inline styles (sanitisers keep them); every value escaped."""
    columns = _columns(records)

    def tr(values: tuple[str, ...], tag: str = "td", bold: bool = False) -> str:
        extra = _RULE + (";font-weight:bold" if bold else "")
        return f'<tr style="{ROW_STYLE}">' + "".join(
            td(v, align, tag, extra) for v, (_, align) in zip(values, columns, strict=True)) + "</tr>"

    head = tr(tuple(name for name, _ in columns), "th", bold=True)
    body = "".join(tr(_pick(_row(fp, d), columns)) for d, fp in tree_order(records))
    foot = tr(_pick(_total_row(records, totals), columns), bold=True)
    notes = "".join(f"<div>{escape(n)}</div>" for n in _notes(records, totals, region, pue, columns))
    return (f'<div style="{_BOX}"><div><b>nbcarbon summary</b></div>'
            f'<table style="{TABLE_STYLE}"><thead>{head}</thead>'
            f"<tbody>{body}</tbody><tfoot>{foot}</tfoot></table>{notes}</div>")


def mimebundle(
    records: Sequence[Footprint], region: PricedRegion, pue: float, version: str,
    summary_id: str | None = None, created_at: str | None = None,
) -> tuple[dict[str, str], dict[str, Any]]:
    """``(data, metadata)`` of the summary's ``display_data`` output."""
    totals = totals_of(records)
    data = {"text/plain": text(records, totals, region, pue),
            "text/html": html(records, totals, region, pue)}
    record = summary_record(records, totals, region, pue, version, summary_id, created_at)
    return data, {METADATA_KEY: record}
