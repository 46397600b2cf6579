"""The shortcuts that make ``nbcarbon report`` of 50,000 records fast give exactly what the plain
way gives: the record reader's inline checks, the skipped re-pricing and tree order, the JSON
and table writers, the one-look escaping and the paused garbage collector.

Each shortcut is compared with the plain computation it replaces, on ordinary and on hostile
values (the timing itself is measured by ``benchmarks/report_scale.py``, not asserted here).
"""

from __future__ import annotations

import dataclasses
import gc
import json
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbcarbon import report
from nbcarbon.cli import main
from nbcarbon.errors import RecordError
from nbcarbon.footprint import Component, Footprint, PricedRegion, Share, tree_order
from nbcarbon.notebook import collect, collector_paused, load_records, parse_json
from nbcarbon.readout import escape_controls, how_obtained
from tests.reliability.test_report_inputs import FIELDS, JSON, _set, notebook, record

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def read(d: object) -> tuple[str, object]:
    """``from_dict``'s answer as comparable text: the record's repr (1 and 1.0 differ), or the error."""
    try:
        return "record", repr(Footprint.from_dict(d))
    except RecordError as exc:
        return "error", str(exc)


def read_checked_field_by_field(d: object) -> tuple[str, object]:
    """The same through the field-by-field checks only: a read-only view is a Mapping, not a dict,
    so the inline pass leaves it to them."""
    return read(MappingProxyType(d) if isinstance(d, dict) else d)


SHARE = {"basis": "cpu-time", "fraction": 0.25, "machine_energy_j": 400.0}
NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 10 ** 310),
                    st.booleans(), st.just(-0.0), st.just(0))
MORE_FIELDS = [*FIELDS, "components.0.share", "components.0.device", "components.0.mean_power_w",
               "components.0.component", "region.year", "region.chosen_by", "parent_id",
               "iterations", "nbcarbon_version", "execution_count", "cell_id"]


def varied_record(energy: float, pue: float, g: float, share: bool, parent: str | None) -> dict:
    r = record(energy_j=energy, pue=pue, co2e_g=energy / 3.6e6 * pue * g, parent_id=parent)
    r["region"]["g_per_kwh"] = g
    r["components"].append({"component": "memory", "device": "process", "method": "memory-model",
                            "energy_j": 0.5, "mean_power_w": 0.25})
    if share:
        r["components"][0]["share"] = dict(SHARE)
    return r


@FUZZ
@given(st.sampled_from(MORE_FIELDS), st.one_of(JSON, NUMBERS))
def test_inline_checks_agree_with_the_field_checks_on_one_field_replaced(field, value) -> None:
    d = _set(varied_record(100.0, 1.2, 35.82, True, None), field, value)
    assert read(d) == read_checked_field_by_field(d)


@FUZZ
@given(st.floats(0, 1e12), st.floats(1, 3), NUMBERS, st.booleans(),
       st.one_of(st.none(), st.text(max_size=8)))
def test_inline_checks_agree_with_the_field_checks_on_varied_records(energy, pue, g, share,
                                                                     parent) -> None:
    d = varied_record(energy, pue, 1.0, share, parent)
    d["region"]["g_per_kwh"] = g
    assert read(d) == read_checked_field_by_field(d)


@FUZZ
@given(JSON)
def test_inline_checks_agree_with_the_field_checks_on_any_json(value) -> None:
    assert read(value) == read_checked_field_by_field(value)


def test_a_valid_record_reads_the_same_both_ways_with_whole_numbers_and_negative_zero() -> None:
    for changes in ({}, {"energy_j": 0, "co2e_g": 0, "duration_s": 3}, {"execution_count": None},
                    {"parent_id": "p" * 32}, {"warnings": ["partly measured"]}):
        d = record(**changes)
        assert read(d)[0] == "record" and read(d) == read_checked_field_by_field(d)
    zero, minus_zero = record(), record()
    zero["region"]["g_per_kwh"], minus_zero["region"]["g_per_kwh"] = 0.0, -0.0
    # Regions are shared between records of equal fields: 0.0 and -0.0 are equal, yet kept apart.
    for d in (zero, minus_zero, zero, minus_zero):
        assert read(d) == read_checked_field_by_field(d)
    assert str(Footprint.from_dict(minus_zero).region.g_per_kwh) == "-0.0"


def test_records_with_a_share_and_iterations_round_trip() -> None:
    fp = Footprint.from_dict(varied_record(100.0, 1.0, 35.82, True, None))
    assert fp.components[0].share == Share("cpu-time", 0.25, 400.0)
    assert Footprint.from_dict(fp.to_dict()) == fp
    d = record(iterations={"label": "epoch", "duration_s": [1.0, 2.0], "energy_j": [3.0, 4.0],
                           "statuses": {"1": "error"}})
    assert read(d) == read_checked_field_by_field(d) and read(d)[0] == "record"


@pytest.mark.parametrize(("field", "value", "says"), [
    ("components.0.share", {"basis": "moon-phase", "fraction": 0.5, "machine_energy_j": 1.0},
     "record component 0: share basis must be one of"),
    ("components.0.share", {"basis": "cpu-time", "fraction": 1.5, "machine_energy_j": 1.0},
     "record component 0: share fraction must be from 0 to 1"),
    ("components.0.energy_j", float("inf"), "record component 0: record field 'energy_j' must be"),
    ("region.g_per_kwh", True, "record field 'g_per_kwh' must be a finite number >= 0"),
    ("energy_j", 10 ** 400, "record field 'energy_j' must be a finite number >= 0"),
])
def test_bad_records_are_still_named_precisely(field, value, says) -> None:
    with pytest.raises(RecordError, match="^" + says.replace("(", r"\(")):
        Footprint.from_dict(_set(varied_record(100.0, 1.0, 35.82, False, None), field, value))


def test_collect_without_the_deep_walk_finds_the_same_records() -> None:
    nb = notebook(record(id="a" * 32), record(id="b" * 32, parent_id="a" * 32), {"kind": "summary"},
                  record(energy_j=-1.0), "junk")
    deep, shallow = collect(nb, "nb"), collect(nb, "nb", deep=False)
    assert deep == shallow and len(deep.records) == 2 and len(deep.problems) == 2


def test_a_too_deep_value_is_still_found_in_a_file_the_standard_parser_refuses(tmp_path) -> None:
    nested = "[" * 5000 + "]" * 5000
    text = json.dumps(notebook(record(extra="HOLE"), record(id="b" * 32))).replace('"HOLE"', nested)
    path = tmp_path / "deep.ipynb"
    path.write_text(text)
    found = load_records(path)
    assert [fp.id for fp in found.records] == ["b" * 32]
    assert len(found.problems) == 1 and "nested more than" in found.problems[0]


def test_the_garbage_collector_runs_again_after_a_pause_even_on_an_error() -> None:
    assert gc.isenabled()
    with pytest.raises(ValueError), collector_paused():
        assert not gc.isenabled()
        parse_json("not json")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # paused by someone else: left paused
    finally:
        gc.enable()


def fp(id_: str, *, parent: str | None = None, co2e: float | None = None,
       methods: tuple[str, ...] = ("rapl-counter",), share: bool = False) -> Footprint:
    region = PricedRegion("SE", "Sweden", 35.82, 2024, "Ember", "lifecycle", "test")
    comps = tuple(Component("cpu" if m != "memory-model" else "memory", "d", m, 10.0, 5.0,
                            Share("cpu-time", 0.5, 20.0) if share else None) for m in methods)
    energy = 10.0 * len(comps)
    return Footprint(id_, None, None, 1, "2024-05-01T00:00:00+00:00", 2.0, "ok", comps, energy,
                     1.0, region, energy / 3.6e6 * 35.82 if co2e is None else co2e, "machine",
                     parent_id=parent)


def test_records_keep_their_price_without_region_or_pue_unless_it_is_not_the_formula() -> None:
    right, edited = fp("a"), fp("b", co2e=123.0)
    out = report.repriced([right, edited])
    assert out[0] is right and out[1] == edited.repriced() and out[1].co2e_g != 123.0
    other = PricedRegion("PL", "Poland", 662.0, 2024, "Ember", "lifecycle", "test")
    assert report.repriced([right], other, 1.5) == [right.repriced(other, 1.5)]
    assert report.repriced([right], None, 1.5) == [right.repriced(None, 1.5)]


@pytest.mark.parametrize("records", [
    [fp("a"), fp("b"), fp("c")],
    [fp("a"), fp("a"), fp("b")],  # one id twice: the tree shows it once
    [fp("b", parent="a"), fp("a"), fp("c", parent="c")],
    [fp("a", parent="b"), fp("b", parent="a")],
    [],
])
def test_rows_follow_the_tree_order(records) -> None:
    assert [(r.depth, r.id) for r in report.rows("nb", records)] == [
        (depth, f.id) for depth, f in tree_order(records)]


def test_each_row_says_how_its_record_was_obtained() -> None:
    records = [fp("a"), fp("b", methods=("rapl-counter", "memory-model")),
               fp("c", methods=("cpu-time-model",)), fp("d", methods=()),
               fp("e", methods=("rapl-counter",), share=True), fp("f")]
    assert [r.method for r in report.rows("nb", records)] == [
        how_obtained(f.components) for f in records]


ROW_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["},\n      {", '"},\n      {"', "\u202e", "\x1b[31m", "=1+1", ""])
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.integers(0, 10 ** 20)
ROWS = st.lists(st.builds(report.Row, ROW_TEXT, ROW_TEXT, ROW_TEXT, FLOATS, FLOATS, FLOATS,
                          ROW_TEXT, FLOATS, FLOATS, ROW_TEXT, st.integers(0, 3), ROW_TEXT,
                          st.none() | ROW_TEXT), max_size=5)


@FUZZ
@given(ROWS)
def test_json_is_what_json_dumps_with_indent_writes(rows) -> None:
    total = report._total(rows)
    expected = json.dumps({"cells": [r.__dict__ for r in rows], "total": total}, indent=2)
    assert report.render(rows, "json") == expected


def plain_text_table(head, body, foot) -> str:
    """The table writer as it was: every cell escaped, then padded with ljust."""
    rows = [[escape_controls(str(c)) for c in row] for row in [head, *body, foot]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]

    def fmt_row(cells) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt_row(rows[0]), rule, *map(fmt_row, rows[1:-1]), rule, fmt_row(rows[-1])])


@FUZZ
@given(st.lists(st.lists(ROW_TEXT, min_size=3, max_size=3), max_size=6))
def test_text_table_is_what_padding_each_escaped_cell_writes(body) -> None:
    head, foot = ["cell", "status", "{0}"], ["total", "", "{}"]
    assert report._text(head, body, foot) == plain_text_table(head, body, foot)


@pytest.mark.parametrize("labels", [["fit", "plot"], ["fit\x1b]0;owned\x07", "\u202eplot"]])
def test_table_rows_with_several_regions_and_methods(labels) -> None:
    other = PricedRegion("PL", "Poland", 662.0, 2024, "Ember", "lifecycle", "test")
    records = [dataclasses.replace(fp("a"), label=labels[0]),
               dataclasses.replace(fp("b", methods=("cpu-time-model",)), label=labels[1]).repriced(
                   other, 1.4)]
    out = report.render(report.rows("nb", records), "table")
    lines = out.splitlines()
    assert "region" in lines[1] and "method" in lines[1]
    assert "PL 662 g/kWh · PUE 1.4" in out and "SE 35.82 g/kWh · PUE 1" in out
    assert "\x1b" not in out and "\u202e" not in out


@pytest.mark.parametrize("label", ["plain", "bell\x07", "rtl\u202e", "line\u2028break"])
def test_printed_report_is_escaped_as_before(tmp_path, capsys, label) -> None:
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(notebook(record(label=label))))
    for fmt in ("table", "csv", "json"):
        assert main(["report", str(path), "--format", fmt]) == 0
        out = capsys.readouterr().out
        assert out == escape_controls(out, keep="\n")
        assert out.rstrip("\n") == escape_controls(report.render(
            report.rows("nb.ipynb", load_records(path).records), fmt), keep="\n")
    assert gc.isenabled()


@pytest.mark.parametrize("text", ["plain\nlines\n", "", "\n\n", "esc\x1b[2J\nbidi\u202e\nnul\x00",
                                  "tab\tand\r\n", "sep\u2028\n"])
def test_a_report_is_printed_escaped_as_everything_else(text, capsys) -> None:
    from nbcarbon.cli import _say, _say_table

    _say(text)
    expected = capsys.readouterr().out
    _say_table(text)
    assert capsys.readouterr().out == expected == escape_controls(text, keep="\n") + "\n"
