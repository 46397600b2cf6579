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
    BOX_STYLE,
    ROW_STYLE,
    TABLE_STYLE,
    format_duration,
    format_energy,
    format_mass,
    how_obtained,
    share_basis_label,
    shown_label,
)
from .session import Totals

KIND = "summary"
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

#: The most rows a summary lists. Why: a summary is re-sent whole every time it is re-priced
#: (``update_display_data`` replaces an output; nothing updates part of one), and with a row per
#: cell 10,000 cells made each re-price a 10 MB message. Past this many rows it lists the most
#: costly cells and one line for the rest; the totals still add up every cell, and
#: ``nbcarbon report`` lists each one.
MAX_ROWS = 25

#: Marks a row whose energy is a share of a machine-wide counter, when not every row's is (after
#: the cell's name: the left-aligned column, so the numbers stay aligned).
SHARE_MARK = " *"


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
    """"cells that did not finish: In [4] (error), ..." or ``None``: failures are said, not buried.

    At most :data:`MAX_ROWS` are named (the rest counted), for the size reasons given there.
    """
    bad = [fp for fp in top_level(records) if fp.status != "ok"]
    if not bad:
        return None
    named = ", ".join(f"{cell_name(fp)} ({fp.status})" for fp in bad[:MAX_ROWS])
    more = f" and {len(bad) - MAX_ROWS} more" if len(bad) > MAX_ROWS else ""
    return f"cells that did not finish: {named}{more}"


def is_shared(fp: Footprint) -> bool:
    """Whether any of the record's energy is a share of a machine-wide counter."""
    return fp.attribution == "share" or any(c.share is not None for c in fp.components)


def _row(fp: Footprint, depth: int = 0, mark: bool = False) -> tuple[str, ...]:
    name = "  " * (depth - 1) + NESTED_MARK + cell_name(fp) if depth else cell_name(fp)
    name += SHARE_MARK if mark and is_shared(fp) else ""
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


class _Table:
    """What a summary shows of ``records``: its rows (all, or the most costly cells and one row
    for the rest, see :data:`MAX_ROWS`), columns, total row and the lines under it.

    Built once per summary and drawn twice (text and HTML), so a re-price of 10,000 cells walks
    them a few times, not once per rendering.
    """

    def __init__(self, records: Sequence[Footprint], totals: Totals, region: PricedRegion,
                 pue: float, left_out: int = 0, unshown: int = 0) -> None:
        tree = tree_order(records)
        tops = top_level(records)
        #: Past MAX_ROWS rows nested windows are not listed (detail of their parent, already in
        #: its energy); past MAX_ROWS cells only the most costly cells are, in notebook order.
        self.capped = len(tree) > MAX_ROWS
        self.ranked = len(tops) > MAX_ROWS
        self.left_out = left_out
        self.unshown = unshown
        if self.ranked:
            ranked = sorted(range(len(tops)), key=lambda i: (-tops[i].energy_j, i))[:MAX_ROWS]
            kept = set(ranked)
            listed = [(0, tops[i]) for i in sorted(kept)]
            rest = [fp for i, fp in enumerate(tops) if i not in kept]
        elif self.capped:
            listed, rest = [(0, fp) for fp in tops], []
        else:
            listed, rest = tree, []
        shown = [fp for _, fp in listed]
        shared = [fp for fp in tops if is_shared(fp)]
        mark = bool(shared) and len(shared) < len(tops)
        self.columns = _columns(shown)
        self.rows = [_pick(_row(fp, d, mark), self.columns) for d, fp in listed]
        self.rest: tuple[str, ...] | None = None
        if self.ranked:
            n_nested = len(records) - len(tops)
            nested = f", {n_nested:,} nested windows" if n_nested else ""
            self.rest = _pick((
                f"… {len(rest):,} more cell{'s' if len(rest) != 1 else ''}{nested}", "",
                format_duration(sum(fp.duration_s for fp in rest)),
                format_energy(sum(fp.energy_j for fp in rest)),
                format_mass(sum(fp.co2e_g for fp in rest)), "", ""), self.columns)
        self.total = _pick(_total_row(records, totals), self.columns)
        self.notes = self._notes(records, tops, totals, region, pue, shared, mark)

    def _notes(self, records: Sequence[Footprint], tops: list[Footprint], totals: Totals,
               region: PricedRegion, pue: float, shared: list[Footprint], mark: bool) -> list[str]:
        """The lines under the table: components, how obtained (when one for all), shares,
        pricing, what is not listed, failures."""
        by = ", ".join(f"{k} {format_energy(v)}"
                       for k, v in sorted(totals.energy_by_component_j.items()))
        notes = [f"by component: {by or 'none'}"]
        if all(name != "how obtained" for name, _ in self.columns):
            notes.append(how_obtained([c for fp in records for c in fp.components]))
        if shared:
            notes.append(share_line(shared, all_cells=not mark))
        notes.append(_region_note(region, pue))
        if self.ranked:
            notes.append(f"the {MAX_ROWS} most costly of {len(tops):,} cells are listed; "
                         "the total covers every cell (nbcarbon report lists each one)")
        elif self.capped:
            nested = len(records) - len(tops)
            notes.append(f"{nested:,} nested window{'s are' if nested != 1 else ' is'} not listed, "
                         "each already in its cell's energy (nbcarbon report lists each one)")
        reruns = _reruns(tops)
        if reruns:
            notes.append(f"{reruns} earlier run{'s' if reruns != 1 else ''} of re-run cells "
                         f"{'are' if reruns != 1 else 'is'} counted: {'their' if reruns != 1 else 'its'} "
                         "energy was spent, but the notebook keeps only each cell's last readout, so "
                         "a report on the saved file counts the last runs")
        if self.unshown:
            n = self.unshown
            notes.append(f"{n} window{'s' if n != 1 else ''} with no readout in the notebook "
                         f"({'they were' if n != 1 else 'it was'} measured with display=False) "
                         f"{'are' if n != 1 else 'is'} counted; a report on the saved file leaves "
                         f"{'them' if n != 1 else 'it'} out")
        if self.left_out:
            n = self.left_out
            notes.append(f"{n} window{'s' if n != 1 else ''} inside the cell still running "
                         f"{'are' if n != 1 else 'is'} left out: that cell's record covers "
                         f"{'them' if n != 1 else 'it'}")
        raised = _raised(records)
        return notes + ([raised] if raised else [])


def _reruns(tops: Sequence[Footprint]) -> int:
    """How many top-level records are earlier runs of a cell run again later (same cell id)."""
    ids = [fp.cell_id for fp in tops if fp.cell_id is not None]
    return len(ids) - len(set(ids))


def share_line(shared: Sequence[Footprint], all_cells: bool) -> str:
    """Said once under a summary: the energies are the cells' shares of machine-wide counters.

    Why: a shared counter (CPU package, GPU) measures the whole machine; a reader who took the
    figures for the machine's energy would misread them by the other processes' part.
    """
    bases = []
    for fp in shared:
        for c in fp.components:
            if c.share is not None:
                label = share_basis_label(c.share.basis)
                if label not in bases:
                    bases.append(label)
    how = f" ({'; '.join(bases)})" if bases else ""
    which = "energies are each cell's" if all_cells else f"{SHARE_MARK.strip()} energy is the cell's"
    return f"{which} share of machine-wide counters{how}, not the machine's whole energy"


def text(records: Sequence[Footprint], totals: Totals, region: PricedRegion, pue: float) -> str:
    """The plain-text table (terminals, ``nbconvert --to script``, diffs)."""
    return _text(_Table(records, totals, region, pue))


def _text(t: _Table) -> str:
    columns = t.columns
    rows = [tuple(name for name, _ in columns), *t.rows,
            *([t.rest] if t.rest is not None else []), t.total]
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    lines = []
    for r in rows:
        cells = [r[i].ljust(widths[i]) if columns[i][1] == "left" else r[i].rjust(widths[i])
                 for i in range(len(widths))]
        lines.append("  ".join(cells).rstrip())
    lines.extend(t.notes)
    return "nbcarbon summary\n" + "\n".join(lines)


def html(records: Sequence[Footprint], totals: Totals, region: PricedRegion, pue: float) -> str:
    """Script-free HTML with inline styles (sanitisers keep them); every value escaped."""
    return _html(_Table(records, totals, region, pue))


#: A cell's style: as the readout's (see ``readout._CELL_L``), with a rule under each row that
#: reads on light and dark backgrounds alike (half-transparent grey).
_CELL = ("padding:1px 1em 1px 0;border:0;border-bottom:1px solid rgba(128,128,128,.4);"
         "white-space:nowrap;text-align:")
_CELLS = {(tag, align, bold): f'<{tag} style="{_CELL}{align}{";font-weight:bold" if bold else ""}">'
          for tag in ("td", "th") for align in ("left", "right") for bold in (False, True)}


def _html(t: _Table) -> str:
    columns = t.columns

    def tr(values: tuple[str, ...], tag: str = "td", bold: bool = False) -> str:
        return f'<tr style="{ROW_STYLE}">' + "".join(
            f"{_CELLS[tag, align, bold]}{escape(v)}</{tag}>"
            for v, (_, align) in zip(values, columns, strict=True)) + "</tr>"

    head = tr(tuple(name for name, _ in columns), "th", bold=True)
    body = "".join(tr(r) for r in t.rows) + (tr(t.rest) if t.rest is not None else "")
    foot = tr(t.total, bold=True)
    notes = "".join(f"<div>{escape(n)}</div>" for n in t.notes)
    return (f'<div style="{BOX_STYLE}"><div><b>nbcarbon summary</b></div>'
            f'<table style="{TABLE_STYLE}"><thead>{head}</thead>'
            f"<tbody>{body}</tbody><tfoot>{foot}</tfoot></table>{notes}</div>")


def mimebundle(
    records: Sequence[Footprint], region: PricedRegion, pue: float, version: str,
    summary_id: str | None = None, created_at: str | None = None, left_out: int = 0,
    unshown: int = 0,
) -> tuple[dict[str, str], dict[str, Any]]:
    """``(data, metadata)`` of the summary's ``display_data`` output.

    ``left_out``: how many windows inside a cell still running were not given (a summary asked
    for inside a measured cell); ``unshown``: how many of the top-level records have no readout
    in the notebook (``track(display=False)``). The table says both.
    """
    totals = totals_of(records)
    table = _Table(records, totals, region, pue, left_out, unshown)
    data = {"text/plain": _text(table), "text/html": _html(table)}
    record = summary_record(records, totals, region, pue, version, summary_id, created_at)
    return data, {METADATA_KEY: record}
