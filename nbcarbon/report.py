"""Tables of footprint records: per-cell rows and totals as text, JSON, CSV or Markdown.

Used by ``nbcarbon report``, ``nbcarbon run`` and ``nbcarbon history``; pure (rows in, text out),
so a new format is one function and never touches measurement or the ledger.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any

from .footprint import Footprint, tree_order
from .readout import (
    escape_controls,
    format_duration,
    format_energy,
    format_mass,
    how_obtained,
    shown_label,
)

if TYPE_CHECKING:
    from .ledger import HistoryRow

FORMATS = ("table", "json", "csv", "markdown")


@dataclass(frozen=True)
class Row:
    notebook: str
    cell: str
    status: str
    duration_s: float
    energy_j: float
    co2e_g: float
    region: str
    g_per_kwh: float
    pue: float
    method: str
    #: 0 for a top-level record; n for a window nested n deep (its energy is in its parent's).
    depth: int = 0
    id: str = ""
    parent_id: str | None = None


def rows(notebook: str, records: Sequence[Footprint]) -> list[Row]:
    """One row per record, each parent followed by its nested windows (``depth`` > 0)."""
    out = []
    for depth, fp in tree_order(records):
        cell = fp.label if fp.label is not None else (
            f"[{fp.execution_count}]" if fp.execution_count is not None else fp.id[:8])
        out.append(Row(notebook, cell, fp.status, fp.duration_s, fp.energy_j, fp.co2e_g,
                       fp.region.code, fp.region.g_per_kwh, fp.pue, how_obtained(fp.components),
                       depth, fp.id, fp.parent_id if depth else None))
    return out


def _total(rs: Sequence[Row]) -> dict[str, float]:
    """Totals of the top-level rows: a nested window is never counted twice."""
    top = [r for r in rs if r.depth == 0]
    return {
        "cells": len(top),
        "duration_s": sum(r.duration_s for r in top),
        "energy_j": sum(r.energy_j for r in top),
        "co2e_g": sum(r.co2e_g for r in top),
    }


def _cell_shown(r: Row) -> str:
    name = shown_label(r.cell)
    return "  " * (r.depth - 1) + "↳ " + name if r.depth else name


#: What a spreadsheet reads as a formula when a cell starts with it (CSV injection, OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """One CSV value as spreadsheets and terminals should see it; numbers pass through.

    Text has its control and bidi characters escaped (a CSV is printed to a terminal as often as
    opened), and text starting with a formula character gets a leading ``'`` so that
    ``=HYPERLINK(...)`` in a label stays text in Excel, LibreOffice and Sheets. ``--format json``
    carries every value exactly as recorded.
    """
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_STARTS):
        value = "'" + value
    return escape_controls(value)


def csv_text(rows: Sequence[Any], row_type: type, *extra: Sequence[Any]) -> str:
    """Dataclass rows as CSV under a header of their field names, then any ``extra`` rows.

    Every text value goes through :func:`csv_cell`.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    fields = list(row_type.__dataclass_fields__)
    writer.writerow(fields)
    for r in rows:
        writer.writerow([csv_cell(getattr(r, f)) for f in fields])
    writer.writerows([csv_cell(v) for v in row] for row in extra)
    return buf.getvalue().rstrip("\n")


def render(rs: Sequence[Row], fmt: str = "table") -> str:
    """The rows and their total in one of :data:`FORMATS`."""
    total = _total(rs)
    if fmt == "json":
        return json.dumps({"cells": [r.__dict__ for r in rs], "total": total}, indent=2)
    if fmt == "csv":
        return csv_text(rs, Row, ["TOTAL", "", "", total["duration_s"], total["energy_j"],
                                  total["co2e_g"], "", "", "", "", "", "", ""])
    return _table(rs, total, fmt)


def _table(rs: Sequence[Row], total: dict[str, float], fmt: str) -> str:
    """The human table: each notebook named once, region and method as columns only where they vary.

    Why: a reader wants the per-cell numbers side by side; the notebook's name, the region and the
    method repeated on every row made 190-character lines that wrap in any terminal.
    """
    notebooks = list(dict.fromkeys(r.notebook for r in rs))
    pricing = {f"{r.region} {r.g_per_kwh:.4g} g/kWh · PUE {r.pue:g}" for r in rs}
    methods = {r.method for r in rs}
    name_column = fmt == "markdown" or len(notebooks) > 1
    head = (["notebook"] if name_column else []) + ["cell", "status", "duration", "energy", "CO2e"]
    head += (["region"] if len(pricing) > 1 else []) + (["method"] if len(methods) > 1 else [])
    body = []
    previous = None
    for r in rs:
        # JSON and CSV carry labels as given; the tables show them on one line, shortened.
        row = ([shown_label(r.notebook) if r.notebook != previous else ""] if name_column else [])
        previous = r.notebook
        row += [_cell_shown(r), r.status, format_duration(r.duration_s),
                format_energy(r.energy_j), format_mass(r.co2e_g)]
        row += ([f"{r.region} {r.g_per_kwh:.4g} g/kWh · PUE {r.pue:g}"] if len(pricing) > 1 else [])
        row += [r.method] if len(methods) > 1 else []
        body.append(row)
    foot = (["total"] if name_column else []) + [
        ("" if name_column else "total ") + f"{total['cells']} cells", "",
        format_duration(total["duration_s"]), format_energy(total["energy_j"]),
        format_mass(total["co2e_g"])]
    foot += [""] * (len(head) - len(foot))
    notes = [f"priced for {next(iter(pricing))}"] if len(pricing) == 1 else []
    notes += [f"how obtained: {next(iter(methods))}"] if len(methods) == 1 else []
    if fmt == "markdown":
        return "\n".join([_markdown(head, body, foot), "", *(markdown_cell(n) for n in notes)])
    heading = [escape_controls(shown_label(notebooks[0]))] if len(notebooks) == 1 else []
    return "\n".join([*heading, _text(head, body, foot), *(escape_controls(n) for n in notes)])


def render_history(groups: Sequence["HistoryRow"], by: str, fmt: str = "table") -> str:
    """Ledger totals per notebook or per day, and their sum, in one of :data:`FORMATS`."""
    total = {"cells": sum(g.cells for g in groups), "duration_s": sum(g.duration_s for g in groups),
             "energy_j": sum(g.energy_j for g in groups), "co2e_g": sum(g.co2e_g for g in groups)}
    if fmt == "json":
        return json.dumps({"by": by, "groups": [{by: g.key, "cells": g.cells,
                                                  "duration_s": g.duration_s, "energy_j": g.energy_j,
                                                  "co2e_g": g.co2e_g} for g in groups],
                           "total": total}, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([by, "cells", "duration_s", "energy_j", "co2e_g"])
        for g in groups:
            writer.writerow([csv_cell(g.key), g.cells, g.duration_s, g.energy_j, g.co2e_g])
        writer.writerow(["TOTAL", total["cells"], total["duration_s"], total["energy_j"],
                         total["co2e_g"]])
        return buf.getvalue().rstrip("\n")
    head = [by, "cells", "duration", "energy", "CO2e"]
    # Notebook names come from the ledger, i.e. from whatever file names the kernels were given.
    body = [[shown_label(g.key), str(g.cells), format_duration(g.duration_s), format_energy(g.energy_j),
             format_mass(g.co2e_g)] for g in groups]
    foot = ["total", str(total["cells"]), format_duration(total["duration_s"]),
            format_energy(total["energy_j"]), format_mass(total["co2e_g"])]
    return _markdown(head, body, foot) if fmt == "markdown" else _text(head, body, foot)


#: Characters Markdown acts on inside a table cell (emphasis, code, links, the cell separator).
_MARKDOWN_ACTIVE = re.compile(r"([\\`*_\[\]|~])")


def markdown_cell(text: str) -> str:
    """A value as literal text in a Markdown table cell.

    Controls and bidi characters are escaped, then Markdown's own syntax is backslash-escaped and
    HTML is entity-escaped (Markdown renders inline HTML: a label's ``<script>`` must arrive as
    text, ``[x](javascript:...)`` must not become a link).
    """
    return escape(_MARKDOWN_ACTIVE.sub(r"\\\1", escape_controls(text)), quote=False)


def _markdown(head: Sequence[str], body: Sequence[Sequence[str]], foot: Sequence[str]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"
    return "\n".join([line([markdown_cell(c) for c in head]), line(["---"] * len(head)),
                      *(line([markdown_cell(c) for c in row]) for row in body),
                      line([f"**{markdown_cell(c)}**" if c else "" for c in foot])])


def _text(head: Sequence[str], body: Sequence[Sequence[str]], foot: Sequence[str]) -> str:
    # Every cell, not only labels: a saved notebook's record can hold anything in any field.
    rows = [[escape_controls(str(c)) for c in row] for row in [head, *body, foot]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]

    def fmt_row(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt_row(rows[0]), rule, *map(fmt_row, rows[1:-1]), rule, fmt_row(rows[-1])])
