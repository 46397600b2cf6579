"""Tables of footprint records: per-cell rows and totals as text, JSON, CSV or Markdown.

Used by ``nbcarbon report``, ``nbcarbon run`` and ``nbcarbon history``; pure (rows in, text out),
so a new format is one function and never touches measurement or the ledger.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any

from .footprint import Footprint, PricedRegion, co2e_g, tree_order
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


def repriced(records: Sequence[Footprint], region: PricedRegion | None = None,
             pue: float | None = None) -> list[Footprint]:
    """The records priced for ``region`` and ``pue`` (each record's own where ``None``).

    Why not ``fp.repriced()`` for each: it copies the record, and a report without
    ``--region`` or ``--pue`` copied 50,000 records to get them back as they were. A record is
    copied only when its price changes, i.e. when its stored CO2e is not what its energy, PUE
    and intensity give (the stored figure is re-derived, as it always was).
    """
    if region is not None or pue is not None:
        return [fp.repriced(region, pue) for fp in records]
    return [fp if fp.co2e_g == co2e_g(fp.energy_j, fp.pue, fp.region.g_per_kwh) else fp.repriced()
            for fp in records]


def rows(notebook: str, records: Sequence[Footprint]) -> list[Row]:
    """One row per record, each parent followed by its nested windows (``depth`` > 0)."""
    out = []
    # Records of one notebook share a few ways of being measured: name each set of methods once.
    how: dict[tuple[str, ...], str] = {}
    for depth, fp in _tree_order(records):
        cell = fp.label if fp.label is not None else (
            f"[{fp.execution_count}]" if fp.execution_count is not None else fp.id[:8])
        methods = tuple([c.method for c in fp.components])
        method = how.get(methods)
        if method is None:
            method = how[methods] = how_obtained(fp.components)
        out.append(Row(notebook, cell, fp.status, fp.duration_s, fp.energy_j, fp.co2e_g,
                       fp.region.code, fp.region.g_per_kwh, fp.pue, method,
                       depth, fp.id, fp.parent_id if depth else None))
    return out


def _tree_order(records: Sequence[Footprint]) -> Iterable[tuple[int, Footprint]]:
    """:func:`~nbcarbon.footprint.tree_order`, skipped when it would change nothing.

    With no nested window and each id once (nearly every notebook), the tree order is the
    records' own order, all at depth 0: no need for its tree of 50,000 parents.
    """
    if all(fp.parent_id is None for fp in records) and len({fp.id for fp in records}) == len(records):
        return ((0, fp) for fp in records)
    return tree_order(records)


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
        return _json(rs, total)
    if fmt == "csv":
        return csv_text(rs, Row, ["TOTAL", "", "", total["duration_s"], total["energy_j"],
                                  total["co2e_g"], "", "", "", "", "", "", ""])
    return _table(rs, total, fmt)


#: What ``json.dumps(indent=2)`` puts between two fields of a row, and between two rows.
_FIELD_SEPARATOR = ",\n      "
_ROW_SEPARATOR = "},\n      {"


def _json(rs: Sequence[Row], total: dict[str, float]) -> str:
    """``json.dumps({"cells": [row fields...], "total": total}, indent=2)``, character for character.

    Why not that call: with ``indent`` the standard library encodes in Python, not in C: 0.6 s
    for 50,000 rows. Every row is flat (its fields are numbers, text or null), so the C encoder,
    told to put the newline and indent between fields, writes each row as the indented form
    would; only the braces between rows need their own lines. A row's text holds no newline of
    its own (strings are written with ``\n`` escapes), so the separator between rows is found
    only there.
    """
    cells = "[]"
    if rs:
        flat = json.dumps([r.__dict__ for r in rs], separators=(_FIELD_SEPARATOR, ": "))
        cells = ("[\n    {\n      " + flat[2:-2].replace(_ROW_SEPARATOR, "\n    },\n    {\n      ")
                 + "\n    }\n  ]")
    return '{\n  "cells": ' + cells + ',\n  "total": ' + json.dumps(total, indent=2).replace(
        "\n", "\n  ") + "\n}"


def _table(rs: Sequence[Row], total: dict[str, float], fmt: str) -> str:
    """The human table: each notebook named once, region and method as columns only where they vary.

    Why: a reader wants the per-cell numbers side by side; the notebook's name, the region and the
    method repeated on every row made 190-character lines that wrap in any terminal.
    """
    notebooks = list(dict.fromkeys(r.notebook for r in rs))
    # Each distinct pricing is written out once (50,000 rows share one or two).
    priced_as = {key: f"{key[0]} {key[1]:.4g} g/kWh · PUE {key[2]:g}"
                 for key in {(r.region, r.g_per_kwh, r.pue) for r in rs}}
    pricing = set(priced_as.values())
    methods = {r.method for r in rs}
    name_column = fmt == "markdown" or len(notebooks) > 1
    region_column, method_column = len(pricing) > 1, len(methods) > 1
    head = (["notebook"] if name_column else []) + ["cell", "status", "duration", "energy", "CO2e"]
    head += (["region"] if region_column else []) + (["method"] if method_column else [])
    body = []
    previous = None
    for r in rs:
        # JSON and CSV carry labels as given; the tables show them on one line, shortened.
        row = [_cell_shown(r), r.status, format_duration(r.duration_s), format_energy(r.energy_j),
               format_mass(r.co2e_g)]
        if name_column:
            row.insert(0, shown_label(r.notebook) if r.notebook != previous else "")
            previous = r.notebook
        if region_column:
            row.append(priced_as[r.region, r.g_per_kwh, r.pue])
        if method_column:
            row.append(r.method)
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
    rows = [head, *body, foot]
    # Every cell, not only labels: a saved notebook's record can hold anything in any field.
    # Escaping only lengthens text, so one look at all the cells tells whether any needs it.
    everything = " ".join([c for row in rows for c in row])
    if len(escape_controls(everything)) != len(everything):
        rows = [[escape_controls(c) for c in row] for row in rows]
    widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
    # One format per row, not one ljust per cell: "{:<w}" pads as ljust does.
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line.format(*rows[0]).rstrip(), rule,
                      *(line.format(*row).rstrip() for row in rows[1:-1]), rule,
                      line.format(*rows[-1]).rstrip()])
