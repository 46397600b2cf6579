"""The report's writers read the rows a column at a time, records and rows are made without
their frozen ``__init__``, and records as nbcarbon writes them are read by a shorter path: each
gives exactly what the plain computation it replaced gives (kept here as the reference).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbcarbon import report
from nbcarbon.footprint import (
    Component,
    Footprint,
    PricedRegion,
    Share,
    _written_record,
    instance_maker,
    tree_order,
)
from nbcarbon.readout import (
    escape_controls,
    format_duration,
    format_energy,
    format_mass,
    how_obtained,
    shown_label,
)
from nbcarbon.report import Row, _text, markdown_cell
from tests.reliability.test_report_inputs import record

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- the references: the writers as they were, a row at a time ------------------------------------

def plain_total(rs):
    top = [r for r in rs if r.depth == 0]
    return {"cells": len(top), "duration_s": sum(r.duration_s for r in top),
            "energy_j": sum(r.energy_j for r in top), "co2e_g": sum(r.co2e_g for r in top)}


def plain_cell_shown(r):
    name = shown_label(r.cell)
    return "  " * (r.depth - 1) + "↳ " + name if r.depth else name


def plain_table(rs, fmt):
    total = plain_total(rs)
    notebooks = list(dict.fromkeys(r.notebook for r in rs))
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
        row = [plain_cell_shown(r), r.status, format_duration(r.duration_s), format_energy(r.energy_j),
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
        ("" if name_column else "total ")
        + f"{total['cells']} cell{'s' if total['cells'] != 1 else ''}", "",
        format_duration(total["duration_s"]), format_energy(total["energy_j"]),
        format_mass(total["co2e_g"])]
    foot += [""] * (len(head) - len(foot))
    notes = [f"priced for {next(iter(pricing))}"] if len(pricing) == 1 else []
    notes += [f"how obtained: {next(iter(methods))}"] if len(methods) == 1 else []
    if fmt == "markdown":
        return "\n".join([report._markdown(head, body, foot), "", *(markdown_cell(n) for n in notes)])
    heading = [escape_controls(shown_label(notebooks[0]))] if len(notebooks) == 1 else []
    return "\n".join([*heading, plain_text(head, body, foot), *(escape_controls(n) for n in notes)])


def plain_text(head, body, foot):
    rows = [head, *body, foot]
    everything = " ".join([c for row in rows for c in row])
    if len(escape_controls(everything)) != len(everything):
        rows = [[escape_controls(c) for c in row] for row in rows]
    widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line.format(*rows[0]).rstrip(), rule,
                      *(line.format(*row).rstrip() for row in rows[1:-1]), rule,
                      line.format(*rows[-1]).rstrip()])


def plain_json(rs):
    return json.dumps({"cells": [dataclasses.asdict(r) for r in rs], "total": plain_total(rs)},
                      indent=2)


def plain_rows(notebook, records):
    out = []
    for depth, fp in tree_order(records):
        cell = fp.label if fp.label is not None else (
            f"[{fp.execution_count}]" if fp.execution_count is not None else fp.id[:8])
        out.append(Row(notebook, cell, fp.status, fp.duration_s, fp.energy_j, fp.co2e_g,
                       fp.region.code, fp.region.g_per_kwh, fp.pue, how_obtained(fp.components),
                       depth, fp.id, fp.parent_id if depth else None))
    return out


# -- rows with few distinct values, so that whole columns are one value ---------------------------

TEXT = st.sampled_from(["nb", "other.ipynb", "", "fit\x1b[2J", "\u202eplot", "=1+1", "[3]",
                        "a" * 90, "x\ny", "},\n      {", "\x00", "ok"])
NUMBER = st.sampled_from([0.0, -0.0, 1.0, 1, 2.5, 1e-9, 123456.789, 1e300, float("nan"),
                          float("inf"), True, 35.82, 10 ** 20])
ROWS = st.lists(st.builds(Row, TEXT, TEXT, st.sampled_from(["ok", "error", "interrupted"]),
                          NUMBER, NUMBER, NUMBER, TEXT, NUMBER, NUMBER, TEXT,
                          st.sampled_from([0, 0, 0, 1, 2]), TEXT, st.none() | TEXT), max_size=30)
#: What a record can hold (finite numbers >= 0): a duration of NaN cannot be written as a time.
FINITE = st.sampled_from([0.0, -0.0, 1.0, 1, 59.999, 61.0, 7300.5, 2.5, 1e-9, 123456.789, 1e300,
                          True, 35.82, 10 ** 20])
TABLE_ROWS = st.lists(st.builds(Row, TEXT, TEXT, st.sampled_from(["ok", "error", "interrupted"]),
                                FINITE, FINITE, FINITE, TEXT, FINITE, FINITE, TEXT,
                                st.sampled_from([0, 0, 0, 1, 2]), TEXT, st.none() | TEXT),
                      max_size=30)


@FUZZ
@given(ROWS)
def test_json_of_rows_with_columns_of_one_value(rows) -> None:
    assert report.render(rows, "json") == plain_json(rows)


@FUZZ
@given(TABLE_ROWS, st.sampled_from(["table", "markdown"]))
def test_tables_a_column_at_a_time_are_the_tables_a_row_at_a_time(rows, fmt) -> None:
    assert report.render(rows, fmt) == plain_table(rows, fmt)


def test_the_table_of_no_row_is_as_before() -> None:
    for fmt in ("table", "markdown"):
        assert report.render([], fmt) == plain_table([], fmt)


@FUZZ
@given(ROWS)
def test_totals_are_the_same_sums_in_the_same_order(rows) -> None:
    assert repr(report._total(rows)) == repr(plain_total(rows))


def test_a_row_holding_a_list_or_an_object_is_written_as_before() -> None:
    rows = [Row("n", ["a", "b"], "ok", 1.0, 2.0, 3.0, "SE", 1.0, 1.0, "m", 0, "i", None),
            Row("n", {"k": 1, "j": 2}, "ok", 1.0, 2.0, 3.0, "SE", 1.0, 1.0, "m", 0, "i", None)]
    flat = json.dumps([r.__dict__ for r in rows], separators=(",\n      ", ": "))
    expected = ('{\n  "cells": [\n    {\n      '
                + flat[2:-2].replace("},\n      {", "\n    },\n    {\n      ") + "\n    }\n  ],\n"
                + '  "total": ' + json.dumps(plain_total(rows), indent=2).replace("\n", "\n  ") + "\n}")
    assert report.render(rows, "json") == expected


def test_text_of_no_column_is_a_line_per_row() -> None:
    assert _text([], [[], []], []) == plain_text([], [[], []], [])
    with pytest.raises(ValueError):
        _text(["a", "b"], [["1"]], ["x", "y"])


# -- records and rows made without their __init__ ------------------------------------------------

def footprint(id_: str, *, parent: str | None = None, label: str | None = None, count: int | None = 1,
              methods: tuple[str, ...] = ("rapl-counter",), share: bool = False) -> Footprint:
    region = PricedRegion("SE", "Sweden", 35.82, 2024, "Ember", "lifecycle", "test")
    comps = tuple(Component("cpu" if m != "memory-model" else "memory", "d", m, 10.0, 5.0,
                            Share("cpu-time", 0.5, 20.0) if share else None) for m in methods)
    return Footprint(id_, None, label, count, "2024-05-01T00:00:00+00:00", 2.0, "ok", comps,
                     10.0 * len(comps), 1.0, region, 0.0001, "machine", parent_id=parent)


@pytest.mark.parametrize("records", [
    [footprint("a"), footprint("b", label="fit"), footprint("c", count=None)],
    [footprint("b", parent="a"), footprint("a"), footprint("c", parent="c")],
    [footprint("a"), footprint("a")],
    [footprint("a", methods=("rapl-counter", "memory-model")), footprint("b", methods=()),
     footprint("c", share=True, methods=("cpu-time-model",))],
    [],
])
def test_rows_are_the_rows_made_by_their_init(records) -> None:
    made, plain = report.rows("nb", records), plain_rows("nb", records)
    assert made == plain and [repr(r) for r in made] == [repr(r) for r in plain]
    assert [list(vars(r).items()) for r in made] == [list(vars(r).items()) for r in plain]


@pytest.mark.parametrize("cls", [Footprint, Component, Share, PricedRegion, Row])
def test_an_instance_maker_makes_what_the_init_makes(cls) -> None:
    values = {Footprint: tuple(getattr(footprint("a", share=True), f.name)
                               for f in dataclasses.fields(Footprint)),
              Component: ("cpu", "package-0", "rapl-counter", 1.5, 3.0, None),
              Share: ("cpu-time", 0.25, 4.0),
              PricedRegion: ("SE", "Sweden", 35.82, None, "Ember", "lifecycle", "test"),
              Row: ("nb", "[1]", "ok", 1.0, 2.0, 3.0, "SE", 35.82, 1.0, "m", 0, "id", None)}[cls]
    made, plain = instance_maker(cls)(*values), cls(*values)
    assert type(made) is cls and made == plain and hash(made) == hash(plain)
    assert repr(made) == repr(plain) and list(vars(made).items()) == list(vars(plain).items())
    assert pickle.loads(pickle.dumps(made)) == plain and copy.deepcopy(made) == plain
    assert dataclasses.replace(made) == plain and dataclasses.asdict(made) == dataclasses.asdict(plain)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.x = 1  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        instance_maker(cls)(*values[:-1])


def test_an_instance_maker_is_only_for_a_plain_frozen_dataclass() -> None:
    @dataclass
    class Mutable:
        a: int

    @dataclass(frozen=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            raise ValueError

    @dataclass(frozen=True)
    class Hidden:
        a: int
        b: int = field(init=False, default=0)

    @dataclass(frozen=True, slots=True)
    class Slotted:
        a: int

    for cls in (Mutable, Checked, Hidden, Slotted, int):
        with pytest.raises(TypeError):
            instance_maker(cls)


# -- the reader of records as nbcarbon writes them -------------------------------------------------

def written(fp: Footprint) -> dict:
    return json.loads(json.dumps(fp.to_dict()))


@pytest.mark.parametrize("fp", [
    footprint("a"), footprint("b", share=True, methods=("rapl-counter", "memory-model")),
    footprint("c", parent="a", label="fit"), footprint("d", count=None, methods=()),
    dataclasses.replace(footprint("e"), warnings=("partly measured",), cell_id="abc"),
])
def test_records_as_nbcarbon_writes_them_take_the_short_path(fp) -> None:
    d = written(fp)
    fast = _written_record(d)
    assert fast is not None and repr(fast) == repr(fp) and fast == Footprint.from_dict(d)


@pytest.mark.parametrize("change", [
    lambda d: d.update(energy_j=100),  # a whole number: read by the longer path
    lambda d: d.update(iterations={"label": "epoch", "duration_s": [1.0], "energy_j": [1.0]}),
    lambda d: d["components"][0].update(extra=1),
    lambda d: d["components"][0].update(share={"basis": "cpu-time", "fraction": 1, "machine_energy_j": 2.0}),
    lambda d: d["region"].update(g_per_kwh=0.0),
    lambda d: d.update(schema=True),
])
def test_other_shapes_are_left_to_the_longer_path(change) -> None:
    d = written(footprint("a", share=True))
    change(d)
    assert _written_record(d) is None or repr(_written_record(d)) == repr(Footprint.from_dict(d))


@FUZZ
@given(st.sampled_from(["fraction", "machine_energy_j", "basis"]),
       st.sampled_from([0.0, -0.0, 0.5, 1.0, 1.0000001, -1.0, 2, True, None, float("nan"),
                        float("inf"), "cpu-time", "gpu-processes", "moon"]))
def test_shares_read_the_short_way_are_read_as_the_field_checks_read_them(key, value) -> None:
    from types import MappingProxyType

    from nbcarbon.errors import RecordError

    d = written(footprint("a", share=True))
    d["components"][0]["share"][key] = value

    def read(x):
        try:
            return repr(Footprint.from_dict(x))
        except RecordError as exc:
            return str(exc)
    assert read(d) == read(MappingProxyType(d))


def test_a_record_as_written_by_a_session_reads_back_equal() -> None:
    d = record(components=[{"component": "cpu", "device": "package-0", "method": "rapl-counter",
                            "energy_j": 80.0, "mean_power_w": 40.0,
                            "share": {"basis": "cpu-time", "fraction": 0.8, "machine_energy_j": 100.0}}],
               parent_id=None, attribution="share")
    fp = Footprint.from_dict(d)
    assert _written_record(d) is not None and Footprint.from_dict(written(fp)) == fp
