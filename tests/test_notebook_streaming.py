"""``load_records`` reads a notebook's cells one at a time (``nbcarbon.notebook._cells_of``) and
falls back to the whole parse for anything unusual: whatever the file holds, the records, the
problems, the summaries and the errors are those of the whole parse, character for character.

Each case is read both ways: :func:`load_records` and :func:`whole` (the reader as it was:
the whole file parsed, then its cells collected), from the same depth of the call stack.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbcarbon import notebook
from nbcarbon.notebook import (
    NotebookError,
    _cells_of,
    _collect,
    _load_text,
    _NotStreamed,
    collector_paused,
    load_records,
    read_text,
)
from tests.reliability.test_report_inputs import JSON, record

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def whole(path: Path) -> notebook.NotebookRecords:
    """``load_records`` as it was: the whole file parsed, then its cells collected."""
    with collector_paused():
        nb, deep = _load_text([read_text(path, None)], path)
        return _collect(nb["cells"], str(path), deep)


def outcome(read, path: Path) -> tuple[str, object]:
    """What ``read(path)`` gives, comparable: the records' reprs (1 and 1.0 differ), problems
    and summaries as JSON text (NaN is not equal to itself), or the error's text."""
    try:
        found = read(path)
    except NotebookError as exc:
        return "error", str(exc)
    return "found", ([repr(fp) for fp in found.records], found.problems,
                     json.dumps(found.summaries, sort_keys=True, default=repr))


def streamed(text: str) -> bool:
    try:
        for _ in _cells_of(text):
            pass
    except _NotStreamed:
        return False
    return True


def same_both_ways(tmp_path: Path, text: str | bytes, name: str = "nb.ipynb") -> tuple[str, object]:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    got = outcome(load_records, path)
    assert got == outcome(whole, path)
    return got


def cell(*records: object, source: str = "x = 1") -> dict:
    outputs = [{"output_type": "stream", "name": "stdout", "text": "1\n"}]
    outputs += [{"output_type": "display_data", "data": {"text/plain": "nbcarbon: ..."},
                 "metadata": {"nbcarbon": r}} for r in records]
    return {"cell_type": "code", "execution_count": 1, "id": "c", "metadata": {},
            "source": source, "outputs": outputs}


def notebook_text(cells: list, indent: int | None = 1, first: bool = True, **top: object) -> str:
    nb = {"cells": cells, **top} if first else {**top, "cells": cells}
    return json.dumps(nb, indent=indent)


GOOD = [record(id="a" * 32), record(id="b" * 32, label=None, execution_count=None),
        record(id="c" * 32, parent_id="a" * 32, warnings=["partly measured"])]


@pytest.mark.parametrize("indent", [None, 0, 1, 2, 4])
@pytest.mark.parametrize("first", [True, False])
def test_a_notebook_as_written_is_read_one_cell_at_a_time(tmp_path: Path, indent, first) -> None:
    text = notebook_text([cell(r) for r in GOOD] + [cell(), {"cell_type": "markdown", "source": "#"}],
                         indent, first, metadata={"kernelspec": {"name": "python3"}}, nbformat=4,
                         nbformat_minor=5)
    assert streamed(text)
    kind, (records, problems, _) = same_both_ways(tmp_path, text)
    assert kind == "found" and len(records) == 3 and problems == []


@pytest.mark.parametrize("text", [
    '{"cells": []}', '{"cells": [ ]}', ' \n{ "cells" :[{}] }\n ', '{"cells": [{}] , "x": 1 }',
    '{"a": [1, 2, {"b": 3}], "cells": [{"c": []}], "z": null}',
    '{"cells": [{"outputs": [{"metadata": {"nbcarbon": {"kind": "summary", "x": 1}}}]}]}',
])
def test_odd_but_valid_layouts_are_read_one_cell_at_a_time(tmp_path: Path, text: str) -> None:
    assert streamed(text)
    same_both_ways(tmp_path, text)


@pytest.mark.parametrize("text", [
    "", " ", "[]", "{}", '{"x": 1}', '{"cells": {}}', '{"cells": [1]}', '{"cells": [{}, []]}',
    '{"cells": [{},]}', '{"cells": [{}]} x', '{"cells": [{}]', '{"cells": [{}}', '{"cells" [{}]}',
    '{"cells": [{}] "x": 1}', '{"cells": [{}], }', '{"cells": [], "cells": []}',
    '{"cells": [{"a": 1}], "cells": [{"b": 2}]}', '\ufeff{"cells": []}', '{"cells": [NaN]}',
    '{cells: []}', '{"cells": [{"a": 01}]}', '{"cells": [{"a": "\x01"}]}',
    '{"cells": [{"a": 1' + "9" * 5000 + '}]}', '{"cells": [], "x": 1' + "9" * 5000 + "}",
    '{"cells": [{"outputs": [{"metadata": {"nbcarbon": {"execution_count": 1' + "0" * 4500 + "}}}]}]}",
])
def test_anything_else_is_read_whole_with_the_same_answer(tmp_path: Path, text: str) -> None:
    same_both_ways(tmp_path, text)


def test_cells_given_twice_are_read_as_json_reads_them_the_last(tmp_path: Path) -> None:
    first, second = (json.dumps([cell(r)]) for r in GOOD[:2])
    twice = '{"cells": ' + first + ', "cells": ' + second + "}"
    for text in (twice, '{"cells": ' + first + ', "x": 1, "cells": []}',
                 '{"cells": ' + first + ', "cells": 3}'):
        assert not streamed(text)
        same_both_ways(tmp_path, text)
    assert same_both_ways(tmp_path, twice)[1][0] == [repr(notebook.Footprint.from_dict(GOOD[1]))]


def test_a_cell_of_a_duplicated_record_id_and_bad_records_read_as_before(tmp_path: Path) -> None:
    cells = [cell(record(id="a" * 32, label="first"), record(energy_j=-1.0)),
             cell(record(id="a" * 32, label="second"), "junk", {"kind": "summary", "n": 1}),
             cell(record(id="b" * 32, execution_count=10 ** 4001))]
    text = notebook_text(cells)
    assert streamed(text)
    kind, (records, problems, summaries) = same_both_ways(tmp_path, text)
    assert kind == "found" and len(records) == 1 and "second" in records[0]
    assert len(problems) == 3 and '"n": 1' in summaries


@pytest.mark.parametrize("limit", [None, 300, 5000])
def test_nesting_near_the_recursion_limit_is_never_read_one_by_one_when_whole_would_fail(
        tmp_path: Path, limit) -> None:
    """The standard parser gives up where nesting and the frames below it reach the recursion
    limit; the whole parse then reads the file again without recursion, marking what is too
    deep. Read one cell at a time from deeper in the stack, a cell is never read that the whole
    parse could not read: around the limit, both give the same answer at every depth."""
    old = sys.getrecursionlimit()
    if limit is not None:
        sys.setrecursionlimit(limit)
    try:
        frames, frame = 0, sys._getframe()
        while frame is not None:
            frames, frame = frames + 1, frame.f_back
        room = sys.getrecursionlimit() - frames  # about the deepest nesting json.loads reads here
        answers = set()
        for depth in range(room - 40, room + 5):
            rec = record(extra="HOLE")
            text = notebook_text([cell(rec)], None).replace('"HOLE"', "[" * depth + "]" * depth)
            kind, found = same_both_ways(tmp_path, text)
            answers.add(found[1][0][:60] if found[1] else "read")
        assert len(answers) > 1  # the range reached both sides of the limit
    finally:
        sys.setrecursionlimit(old)


def test_a_file_that_is_not_text_is_refused_as_before(tmp_path: Path) -> None:
    for content in (b"\xff\xfe{}", b'{"cells": ["\xff"]}', b"\x89PNG\r\n\x1a\n\x00\x00"):
        assert same_both_ways(tmp_path, content)[0] == "error"


RECORDS = st.one_of(JSON, st.sampled_from(GOOD), st.builds(
    lambda r, k, v: {**r, k: v}, st.sampled_from(GOOD),
    st.sampled_from(["energy_j", "execution_count", "label", "components", "region", "kind"]), JSON))
OUTPUTS = st.one_of(JSON, st.builds(lambda r: {"output_type": "display_data", "data": {},
                                               "metadata": {"nbcarbon": r}}, RECORDS))
CELLS = st.one_of(JSON, st.builds(lambda outputs: {"cell_type": "code", "outputs": outputs},
                                  st.lists(OUTPUTS, max_size=3)))
TOP = st.dictionaries(st.sampled_from(["metadata", "nbformat", "x", "Cells"]), JSON, max_size=3)


@FUZZ
@given(st.lists(CELLS, max_size=4), TOP, st.booleans(), st.sampled_from([None, 0, 1, 2]))
def test_any_notebook_is_read_as_before(tmp_path: Path, cells, top, first, indent) -> None:
    same_both_ways(tmp_path, notebook_text(cells, indent, first, **top))


@FUZZ
@given(st.lists(CELLS, min_size=1, max_size=3), st.data())
def test_any_damaged_notebook_is_read_as_before(tmp_path: Path, cells, data) -> None:
    text = notebook_text(cells, data.draw(st.sampled_from([None, 1])))
    at = data.draw(st.integers(0, len(text)))
    edit = data.draw(st.sampled_from(["cut", "drop", "insert"]))
    if edit == "cut":
        text = text[:at]
    elif edit == "drop":
        text = text[:at] + text[at + 1:]
    else:
        text = text[:at] + data.draw(st.sampled_from(list(' \n\t,:[]{}"0-eE.\\xn'))) + text[at:]
    same_both_ways(tmp_path, text)


def test_the_cells_are_freed_as_they_are_read(tmp_path: Path) -> None:
    """One cell at a time: what is alive at once is one cell, not the notebook."""
    import weakref

    class Probe(dict):
        pass

    alive = []

    def hook(pairs):
        d = Probe(pairs)
        if "probe" in d:
            alive.append(weakref.ref(d))
        return d

    text = notebook_text([{"probe": i, "outputs": []} for i in range(50)])
    scan = json.scanner.make_scanner(json.JSONDecoder(object_pairs_hook=hook))
    original = json.scanner.make_scanner
    json.scanner.make_scanner = lambda _context: scan
    try:
        most = 0
        for _ in _cells_of(text):
            most = max(most, sum(r() is not None for r in alive))
    finally:
        json.scanner.make_scanner = original
    assert len(alive) == 50 and most <= 2


@pytest.mark.parametrize("limit", [None, 0, 1000])
def test_long_integers_are_read_as_before_whatever_the_limit_on_digits(tmp_path: Path, limit) -> None:
    """``_parse_int`` reads an integer of more than 4,000 characters as a float (infinity);
    the cells are scanned without it, and again with it when they might hold one."""
    old = sys.get_int_max_str_digits()
    if limit is not None:
        sys.set_int_max_str_digits(limit)
    try:
        for digits in (999, 1001, 3999, 4000, 4001, 4299, 4300, 4301, 5000):
            for sign in ("", "-"):
                number = sign + "1" + "0" * (digits - 1)
                short = cell(record(id="a" * 32, execution_count=None), record(id="b" * 32))
                text = notebook_text([short, cell(record(id="c" * 32, execution_count=7))], None)
                for placed in (text.replace('"execution_count": null', '"execution_count": ' + number),
                               text.replace('"execution_count": 7', '"execution_count": 7, "x": ' + number),
                               text.replace('"source": "x = 1"', '"source": ' + number, 1)):
                    same_both_ways(tmp_path, placed)
    finally:
        sys.set_int_max_str_digits(old)
