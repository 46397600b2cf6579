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
from itertools import chain, compress, repeat
from operator import attrgetter, is_, itemgetter
from typing import TYPE_CHECKING, Any

from .footprint import Footprint, PricedRegion, co2e_g, instance_maker, tree_order
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


#: ``Row(...)`` with every field given, without the frozen dataclass's ``__init__`` (a call per
#: field: half the time of making 50,000 rows). See :func:`~nbcarbon.footprint.instance_maker`.
_make_row = instance_maker(Row)
_methods, _parent_id, _id = attrgetter("method"), attrgetter("parent_id"), attrgetter("id")
_share = attrgetter("share")
#: What :func:`rows` reads from each record, in one call.
_ROW_SOURCES = attrgetter("label", "execution_count", "components", "region", "status", "duration_s",
                          "energy_j", "co2e_g", "pue", "id", "parent_id")
#: The fields of a row, in order (the keys of its JSON object, the columns of its CSV).
_FIELDS = tuple(Row.__dataclass_fields__)
_ROW_VALUES = itemgetter(*_FIELDS)


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
    append = out.append
    # Records of one notebook share a few ways of being measured: name each set of methods once.
    how: dict[tuple[str, ...], str] = {}
    for depth, fp in _tree_order(records):
        (label, count, components, region, status, duration_s, energy_j, co2e, pue, ident,
         parent_id) = _ROW_SOURCES(fp)
        cell = label if label is not None else (
            f"[{count}]" if count is not None else ident[:8])
        methods = tuple(map(_methods, components))
        shares = tuple(map(_share, components))
        if any(shares):  # how each share was split is said too (how_obtained)
            methods += tuple(s.basis if s is not None else "" for s in shares)
        method = how.get(methods)
        if method is None:
            method = how[methods] = how_obtained(components)
        append(_make_row(notebook, cell, status, duration_s, energy_j, co2e, region.code,
                         region.g_per_kwh, pue, method, depth, ident, parent_id if depth else None))
    return out


def _tree_order(records: Sequence[Footprint]) -> Iterable[tuple[int, Footprint]]:
    """:func:`~nbcarbon.footprint.tree_order`, skipped when it would change nothing.

    With no nested window and each id once (nearly every notebook), the tree order is the
    records' own order, all at depth 0: no need for its tree of 50,000 parents.
    """
    if (all(map(is_, map(_parent_id, records), repeat(None)))
            and len(set(map(_id, records))) == len(records)):
        return zip(repeat(0), records)
    return tree_order(records)


def _total(rs: Sequence[Row]) -> dict[str, float]:
    """Totals of the top-level rows: a nested window is never counted twice."""
    return _total_of(_columns(rs))


def _columns(rs: Sequence[Row]) -> list[tuple[Any, ...]]:
    """The fields of the rows as columns, in the order of :data:`_FIELDS`.

    Why: the writers look at every field of 50,000 rows; one pass over the rows, each row's
    fields taken at once (from its ``__dict__``, as ``json.dumps(r.__dict__)`` did), costs half
    of a pass per field.
    """
    if not rs:
        return [()] * len(_FIELDS)
    return list(zip(*map(_ROW_VALUES, map(vars, rs)), strict=True))


def _total_of(columns: Sequence[Sequence[Any]]) -> dict[str, float]:
    """:func:`_total` of the rows given as :func:`_columns` (the same sums, in the same order)."""
    duration, energy, co2e, depth = (columns[_FIELDS.index(f)]
                                     for f in ("duration_s", "energy_j", "co2e_g", "depth"))
    if depth.count(0) != len(depth):  # nested windows: only the top-level rows count
        top = [d == 0 for d in depth]
        duration, energy, co2e = (list(compress(c, top)) for c in (duration, energy, co2e))
    return {"cells": len(duration), "duration_s": sum(duration), "energy_j": sum(energy),
            "co2e_g": sum(co2e)}


def _cell_shown(r: Row) -> str:
    return _shown_cell(r.cell, r.depth)


def _shown_cell(cell: str, depth: int) -> str:
    name = shown_label(cell)
    return "  " * (depth - 1) + "↳ " + name if depth else name


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
    columns = _columns(rs)
    total = _total_of(columns)
    if fmt == "json":
        return _json(columns, total)
    if fmt == "csv":
        return csv_text(rs, Row, ["TOTAL", "", "", total["duration_s"], total["energy_j"],
                                  total["co2e_g"], "", "", "", "", "", "", ""])
    return _table(columns, total, fmt)


#: Put between the values of a column encoded at once: ``json.dumps`` writes it where the
#: separator goes and nowhere else (it writes a NUL inside a string as ``\u0000``).
_SPLIT = "\x00"


def _json(columns: Sequence[Sequence[Any]], total: dict[str, float]) -> str:
    """``json.dumps({"cells": [row fields...], "total": total}, indent=2)``, character for character.

    Why not that call: with ``indent`` the standard library encodes in Python, not in C: 0.6 s
    for 50,000 rows. Every row is flat (its fields are numbers, text or null), so each column is
    encoded by the C encoder in one call, as a list whose separator is a NUL (which the encoder
    writes nowhere else: it escapes NULs inside strings), so that splitting there gives each
    value as the indented form writes it. A column of one value (the notebook, the region, often
    the status or the PUE) is encoded once, into the text between the values. The text is then
    joined once: each value, then what follows it up to the next value (the next row's start
    after the last value of a row).
    """
    total_text = ',\n  "total": ' + json.dumps(total, indent=2).replace("\n", "\n  ") + "\n}"
    n = len(columns[0])
    if not n:
        return '{\n  "cells": []' + total_text
    # between[i]: the text after the i-th varying value, up to the next one; between[0] opens a row.
    between, varying = ["{\n      "], []
    for i, (name, column) in enumerate(zip(_FIELDS, columns, strict=True)):
        between[-1] += ("" if i == 0 else ",\n      ") + json.dumps(name) + ": "
        if _one_value(column):
            between[-1] += json.dumps(column[0])
            continue
        values = json.dumps(list(column), separators=(_SPLIT, ": "))[1:-1].split(_SPLIT)
        if len(values) != n:  # a list or an object in a row: not a flat row, written as ever
            rows = [dict(zip(_FIELDS, row, strict=True)) for row in zip(*columns, strict=True)]
            return _json_of_dicts(rows, total_text)
        varying.append(values)
        between.append("")
    if not varying:  # every row the same
        return ('{\n  "cells": [\n    ' + ",\n    ".join(repeat(between[0] + "\n    }", n)) + "\n  ]"
                + total_text)
    end = between.pop() + "\n    }"
    head = '{\n  "cells": [\n    ' + between[0]
    after = [*between[1:], end + ",\n    " + between[0]]
    parts = list(chain.from_iterable(zip(*chain.from_iterable(
        (column, repeat(text, n)) for column, text in zip(varying, after, strict=True)), strict=True)))
    parts[-1] = end + "\n  ]" + total_text
    parts.insert(0, head)
    return "".join(parts)


#: The values :func:`_one_value` looks at: those ``json.dumps`` writes alike in a list and alone.
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _json_of_dicts(rows: list[dict[str, Any]], total_text: str) -> str:
    """What :func:`_json` wrote before it wrote a column at a time (from the C encoder told to
    put the newline and indent between the fields of a row, and between rows)."""
    flat = json.dumps(rows, separators=(",\n      ", ": "))
    return ('{\n  "cells": [\n    {\n      ' + flat[2:-2].replace("},\n      {", "\n    },\n    {\n      ")
            + "\n    }\n  ]" + total_text)


def _one_value(column: Sequence[Any]) -> bool:
    """Whether ``json.dumps`` writes every value of the column as it writes the first, alone.

    So it does when they are all one text, number, boolean or null object; or all text (``str``
    itself) and equal; or all floats, equal and not zero (``0.0 == -0.0``, a NaN equals nothing).
    """
    first = column[0]
    kind = type(first)
    if kind not in _SCALARS:
        return False
    if all(map(is_, column, repeat(first))):
        return True
    return ((kind is str or (kind is float and first != 0.0)) and set(map(type, column)) == {kind}
            and column.count(first) == len(column))


def _table(columns: Sequence[Sequence[Any]], total: dict[str, float], fmt: str) -> str:
    """The human table: each notebook named once, region and method as columns only where they vary.

    Why: a reader wants the per-cell numbers side by side; the notebook's name, the region and the
    method repeated on every row made 190-character lines that wrap in any terminal.

    Built a column at a time (``map`` over the rows' fields), not a row at a time: 50,000 rows.
    """
    (names, cells, statuses, durations, energies, co2es, regions, g_per_kwhs, pues, methods,
     depths, _, _) = columns
    notebooks = list(dict.fromkeys(names))
    # Each distinct pricing is written out once (50,000 rows share one or two).
    priced_as = {key: f"{key[0]} {key[1]:.4g} g/kWh · PUE {key[2]:g}"
                 for key in set(zip(regions, g_per_kwhs, pues, strict=True))}
    pricing = set(priced_as.values())
    kinds = set(methods)
    name_column = fmt == "markdown" or len(notebooks) > 1
    region_column, method_column = len(pricing) > 1, len(kinds) > 1
    head = (["notebook"] if name_column else []) + ["cell", "status", "duration", "energy", "CO2e"]
    head += (["region"] if region_column else []) + (["method"] if method_column else [])
    # JSON and CSV carry labels as given; the tables show them on one line, shortened.
    shown = [list(map(shown_label, cells)) if not any(depths) else list(map(_shown_cell, cells, depths)),
             list(statuses), list(map(format_duration, durations)), list(map(format_energy, energies)),
             list(map(format_mass, co2es))]
    if name_column:
        named, previous = [], None
        for name in names:
            named.append(shown_label(name) if name != previous else "")
            previous = name
        shown.insert(0, named)
    if region_column:
        shown.append(list(map(priced_as.__getitem__, zip(regions, g_per_kwhs, pues, strict=True))))
    if method_column:
        shown.append(list(methods))
    cells = f"{total['cells']} cell{'s' if total['cells'] != 1 else ''}"
    foot = (["total"] if name_column else []) + [
        ("" if name_column else "total ") + cells, "",
        format_duration(total["duration_s"]), format_energy(total["energy_j"]),
        format_mass(total["co2e_g"])]
    foot += [""] * (len(head) - len(foot))
    notes = [f"priced for {next(iter(pricing))}"] if len(pricing) == 1 else []
    notes += [f"how obtained: {next(iter(kinds))}"] if len(kinds) == 1 else []
    if fmt == "markdown":
        body = list(map(list, zip(*shown, strict=True)))
        return "\n".join([_markdown(head, body, foot), "", *(markdown_cell(n) for n in notes)])
    heading = [escape_controls(shown_label(notebooks[0]))] if len(notebooks) == 1 else []
    return "\n".join([*heading, _text_columns(head, shown, foot),
                      *(escape_controls(n) for n in notes)])


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
    """The rows ``body`` between ``head`` and ``foot``, each column padded to its widest cell."""
    columns = [list(column) for column in zip(head, *body, foot, strict=True)]
    if not columns:  # not one column: a line per row, each empty
        return "\n".join([""] * (len(body) + 4))
    return _text_columns(head, [column[1:-1] for column in columns], foot)


def _text_columns(head: Sequence[str], columns: Sequence[Sequence[str]], foot: Sequence[str]) -> str:
    """:func:`_text` of the body given as its columns (all of one length)."""
    if not (len(head) == len(columns) == len(foot)):
        raise ValueError("the head, the columns and the foot differ in length")
    # Every cell, not only labels: a saved notebook's record can hold anything in any field.
    # Escaping only lengthens text, so one look at all the cells tells whether any needs it.
    everything = " ".join([*head, *foot, *(" ".join(column) for column in columns)])
    if len(escape_controls(everything)) != len(everything):
        head, foot = [escape_controls(c) for c in head], [escape_controls(c) for c in foot]
        columns = [list(map(escape_controls, column)) for column in columns]
    widths = [max(len(h), len(f), max(map(len, column), default=0))
              for h, column, f in zip(head, columns, foot, strict=True)]
    # One format per row, not one ljust per cell: "{:<w}" pads as ljust does.
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    rule = "  ".join("-" * w for w in widths)
    body = map(str.rstrip, map(line.format, *columns)) if columns else ()
    return "\n".join([line.format(*head).rstrip(), rule, *body, rule, line.format(*foot).rstrip()])
