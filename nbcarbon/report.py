"""Tables of footprint records: per-cell rows and totals as text, JSON, CSV or Markdown.

Used by ``nbcarbon report``, ``nbcarbon run`` and ``nbcarbon history``; pure (rows in, text out),
so a new format is one function and never touches measurement or the ledger.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any

from .footprint import Footprint, tree_order
from .readout import format_duration, format_energy, format_mass, how_obtained, shown_label

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


def csv_text(rows: Sequence[Any], row_type: type, *extra: Sequence[Any]) -> str:
    """Dataclass rows as CSV under a header of their field names, then any ``extra`` rows."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    fields = list(row_type.__dataclass_fields__)
    writer.writerow(fields)
    for r in rows:
        writer.writerow([getattr(r, f) for f in fields])
    writer.writerows(extra)
    return buf.getvalue().rstrip("\n")


def render(rs: Sequence[Row], fmt: str = "table") -> str:
    """The rows and their total in one of :data:`FORMATS`."""
    total = _total(rs)
    if fmt == "json":
        return json.dumps({"cells": [r.__dict__ for r in rs], "total": total}, indent=2)
    if fmt == "csv":
        return csv_text(rs, Row, ["TOTAL", "", "", total["duration_s"], total["energy_j"],
                                  total["co2e_g"], "", "", "", "", "", "", ""])
    head = ["notebook", "cell", "status", "duration", "energy", "CO2e", "region", "method"]
    # JSON and CSV carry labels as given; the tables show them on one line, shortened.
    body = [[shown_label(r.notebook), _cell_shown(r), r.status, format_duration(r.duration_s),
             format_energy(r.energy_j), format_mass(r.co2e_g),
             f"{r.region} {r.g_per_kwh:.4g} g/kWh", r.method] for r in rs]
    foot = ["total", f"{total['cells']} cells", "", format_duration(total["duration_s"]),
            format_energy(total["energy_j"]), format_mass(total["co2e_g"]), "", ""]
    return _markdown(head, body, foot) if fmt == "markdown" else _text(head, body, foot)


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
            writer.writerow([g.key, g.cells, g.duration_s, g.energy_j, g.co2e_g])
        writer.writerow(["TOTAL", total["cells"], total["duration_s"], total["energy_j"],
                         total["co2e_g"]])
        return buf.getvalue().rstrip("\n")
    head = [by, "cells", "duration", "energy", "CO2e"]
    body = [[g.key, str(g.cells), format_duration(g.duration_s), format_energy(g.energy_j),
             format_mass(g.co2e_g)] for g in groups]
    foot = ["total", str(total["cells"]), format_duration(total["duration_s"]),
            format_energy(total["energy_j"]), format_mass(total["co2e_g"])]
    return _markdown(head, body, foot) if fmt == "markdown" else _text(head, body, foot)


def _markdown(head: Sequence[str], body: Sequence[Sequence[str]], foot: Sequence[str]) -> str:
    def line(cells: Sequence[str]) -> str:
        # Markdown renders inline HTML: a label's "<script>" must arrive as text.
        return "| " + " | ".join(escape(c, quote=False).replace("|", "\\|") for c in cells) + " |"
    return "\n".join([line(head), line(["---"] * len(head)), *map(line, body),
                      line([f"**{c}**" if c else "" for c in foot])])


def _text(head: Sequence[str], body: Sequence[Sequence[str]], foot: Sequence[str]) -> str:
    widths = [max(len(str(row[i])) for row in [head, *body, foot]) for i in range(len(head))]

    def fmt_row(cells: Sequence[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt_row(head), rule, *map(fmt_row, body), rule, fmt_row(foot)])
