"""Reading the records embedded in saved notebooks, without executing or trusting them.

A saved ``.ipynb`` is plain JSON; the records live in ``outputs[].metadata.nbcarbon``. This
module uses the ``json`` module alone (no nbformat), validates every record, and reports each
problem with where it was found, so one bad record never hides the good ones.
"""

from __future__ import annotations

import gc
import json
import json.decoder
import json.scanner
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

from .errors import NbcarbonError, RecordError
from .footprint import METADATA_KEY, Footprint
from .settings import PUE_RANGE


class NotebookError(NbcarbonError, ValueError):
    """A file that is not a readable Jupyter notebook."""


@dataclass
class NotebookRecords:
    """What one notebook holds: valid cell records, raw summaries, and what could not be read."""

    path: str
    records: list[Footprint] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


#: How deep a saved notebook's JSON may nest before the part below is set aside as
#: :data:`TOO_DEEP`. nbformat itself nests a dozen levels; widget state a few dozen more.
MAX_DEPTH = 200
#: Longest integer literal parsed as an int; longer ones (Python refuses more than 4,300 digits)
#: are read as floats, i.e. as infinity, which no record field accepts.
_MAX_INT_DIGITS = 4000


class _TooDeep:
    """Stands in for a value nested deeper than :data:`MAX_DEPTH` (its record is then invalid)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<nested too deep>"


TOO_DEEP = _TooDeep()


def _kind_of(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "a special file"


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} TiB"  # pragma: no cover - the loop returns


def read_text(path: str | Path, max_bytes: int | None = None) -> str:
    """The text of a notebook file: a regular file of at most ``max_bytes``, decoded as JSON is.

    Why so careful: ``nbcarbon report`` is given whatever is at hand. A FIFO would block forever
    on ``open``/``read``, ``/dev/zero`` would be read until memory runs out. So the file is opened
    without blocking, checked to be a regular file on the open descriptor (no race with a
    rename), and read no further than the limit (``NBCARBON_MAX_NOTEBOOK_MB``, 1 GiB by default).
    Raises :class:`NotebookError`, one line.
    """
    if max_bytes is None:
        from .settings import max_notebook_bytes

        max_bytes = max_notebook_bytes()
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise NotebookError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotebookError(f"{path}: cannot read: it is {_kind_of(mode)}, not a notebook file")
        with os.fdopen(fd, "rb") as f:
            fd = -1  # the file object closes it now
            size = os.fstat(f.fileno()).st_size
            data = f.read(max_bytes + 1) if size <= max_bytes else b""
    except OSError as exc:
        raise NotebookError(f"{path}: cannot read: {exc.strerror or exc}") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if size > max_bytes or len(data) > max_bytes:
        raise NotebookError(
            f"{path}: cannot read: {_size(max(size, len(data)))} is more than the "
            f"{_size(max_bytes)} nbcarbon reads as a notebook (set NBCARBON_MAX_NOTEBOOK_MB to allow more)")
    try:
        return data.decode(json.detect_encoding(data), "surrogatepass")
    except (UnicodeDecodeError, LookupError) as exc:
        raise NotebookError(f"{path}: not a notebook: the file is not valid JSON ({exc})") from None


def _parse_int(digits: str) -> int | float:
    return int(digits) if len(digits) <= _MAX_INT_DIGITS else float(digits)


def parse_json(text: str) -> Any:
    """JSON text to Python values, where one bad part never spoils the rest.

    The standard parser is tried first (fast). An integer too long for Python becomes a float
    (infinity), so only the record holding it is invalid. A file nested deeper than the
    standard parser's recursion allows is parsed again without recursion, each value below
    :data:`MAX_DEPTH` replaced by :data:`TOO_DEEP`. Raises :class:`ValueError` for text that is
    not JSON.
    """
    return _parse(text)[0]


def _parse(text: str) -> tuple[Any, bool]:
    """:func:`parse_json`, and whether the fallback parser ran (only it leaves :data:`TOO_DEEP`).

    The cyclic garbage collector is paused meanwhile: the parser makes millions of containers and
    no cycle, so the collector's passes (each walking every container made so far) free nothing;
    they were half the time of reading a 100 MB notebook.
    """
    with collector_paused():
        try:
            return json.loads(text, parse_int=_parse_int), False
        except RecursionError:
            return _parse_flat(text, MAX_DEPTH), True


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector (reference counting still frees what is dropped).

    Only around work that builds many objects and no cycles; it runs again afterwards, even on
    an error, unless it was already paused by the caller.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_TOKEN = re.compile(r"""[ \t\n\r]*(?:
      (?P<str>"[^"\\\x00-\x1f]*(?:\\.[^"\\\x00-\x1f]*)*")
    | (?P<num>-?(?:0|[1-9][0-9]*)(?P<frac>(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?))
    | (?P<punct>[\[\]{}:,])
    | (?P<lit>true|false|null|NaN|Infinity|-Infinity)
    )""", re.X)
_LITERALS = {"true": True, "false": False, "null": None, "NaN": float("nan"),
             "Infinity": float("inf"), "-Infinity": float("-inf")}
_SPACE = re.compile(r"[ \t\n\r]*")


#: An array or object below :data:`MAX_DEPTH` on the parser's stack: parsed (so checked), not kept.
_DEEP_ARRAY, _DEEP_OBJECT = object(), object()


def _parse_flat(text: str, max_depth: int) -> Any:
    """An iterative JSON parser (a stack, no recursion): the fallback of :func:`parse_json`.

    As strict as ``json`` everywhere; a container opened deeper than ``max_depth`` is checked
    but not kept: its parent holds :data:`TOO_DEEP` instead.
    """
    stack: list[Any] = []  # open containers, outermost first (_DEEP_* markers below max_depth)
    keys: list[Any] = []   # the pending key of each open object (None for arrays)
    root: Any = None
    state = "value"  # value | first-value | first-key | key | colon | next | end
    pos = 0

    def is_array(container: Any) -> bool:
        return container is _DEEP_ARRAY or (isinstance(container, list) and container is not _DEEP_OBJECT)

    def put(value: Any) -> str:
        nonlocal root
        if not stack:
            root = value
            return "end"
        top = stack[-1]
        if top is _DEEP_ARRAY or top is _DEEP_OBJECT:
            pass
        elif isinstance(top, list):
            top.append(value)
        else:
            top[keys[-1]] = value
        return "next"

    while True:
        m = _TOKEN.match(text, pos)
        if m is None:  # no token here: the end of the text, or something that is not JSON
            end = _SPACE.match(text, pos).end()
            if end == len(text) and state == "end":
                return root
            raise ValueError(f"unexpected text at char {end}" if end < len(text)
                             else "unexpected end of the file")
        pos = m.end()
        kind = m.lastgroup if m.lastgroup != "frac" else "num"
        token = m.group(kind)
        if kind == "punct" and token in "[{" and state in ("value", "first-value"):
            container: Any
            if len(stack) >= max_depth:
                if len(stack) == max_depth:
                    put(TOO_DEEP)
                container = _DEEP_ARRAY if token == "[" else _DEEP_OBJECT
            else:
                container = [] if token == "[" else {}
                put(container)
            stack.append(container)
            keys.append(None)
            state = "first-value" if token == "[" else "first-key"
        elif kind == "punct" and token in "]}" and (
                state == ("first-value" if token == "]" else "first-key")
                or (state == "next" and is_array(stack[-1]) == (token == "]"))):
            stack.pop()
            keys.pop()
            state = "next" if stack else "end"
        elif kind == "punct" and token == "," and state == "next":
            state = "value" if is_array(stack[-1]) else "key"
        elif kind == "punct" and token == ":" and state == "colon":
            state = "value"
        elif kind == "str" and state in ("first-key", "key"):
            keys[-1] = json.loads(token)
            state = "colon"
        elif kind in ("str", "num", "lit") and state in ("value", "first-value"):
            if kind == "str":
                value = json.loads(token)
            elif kind == "lit":
                value = _LITERALS[token]
            else:
                value = float(token) if m.group("frac") else _parse_int(token)
            state = put(value)
        else:
            raise ValueError(f"unexpected {token[:20]!r} at char {m.start(kind)}")


def load_json(path: str | Path, max_bytes: int | None = None) -> dict[str, Any]:
    """Parse a notebook file; raise :class:`NotebookError` saying why it is not one.

    Only a regular file up to ``max_bytes`` is read (:func:`read_text`); a value that is too
    long or too deep spoils only what holds it (:func:`parse_json`).
    """
    return _load(path, max_bytes)[0]


def _load(path: str | Path, max_bytes: int | None) -> tuple[dict[str, Any], bool]:
    """:func:`load_json`, and whether the notebook may hold :data:`TOO_DEEP` (see :func:`_parse`)."""
    text = [read_text(path, max_bytes)]
    return _load_text(text, path)


def _load_text(text: list[str], path: str | Path) -> tuple[dict[str, Any], bool]:
    """:func:`_load` of the text read from ``path``, passed in a list so that it is dropped
    (emptied) as soon as it is parsed."""
    try:
        nb, deep = _parse(text[0])
    except ValueError as exc:
        raise NotebookError(f"{path}: not a notebook: the file is not valid JSON ({exc})") from None
    finally:
        text.clear()
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        if isinstance(nb, dict) and isinstance(nb.get("worksheets"), list):
            version = nb.get("nbformat")
            raise NotebookError(
                f"{path}: a notebook in the old format {version if isinstance(version, int) else 3}"
                " (its cells are in 'worksheets'); convert it first: jupyter nbconvert --to "
                "notebook --nbformat 4 --output NEW.ipynb FILE")
        raise NotebookError(f"{path}: not a notebook: JSON without a 'cells' list")
    cells = nb["cells"]
    bad = None if all(map(isinstance, cells, repeat(dict))) else next(
        i for i, cell in enumerate(cells) if not isinstance(cell, dict))
    if bad is not None:
        raise NotebookError(f"{path}: not a notebook: cell {bad} is not a JSON object")
    return nb, deep


def _too_deep(value: Any) -> bool:
    """Whether ``value`` holds :data:`TOO_DEEP` anywhere (iteratively: it is deep by nature)."""
    todo = [value]
    while todo:
        v = todo.pop()
        if v is TOO_DEEP:
            return True
        if isinstance(v, dict):
            todo.extend(v.values())
        elif isinstance(v, list):
            todo.extend(v)
    return False


def iter_outputs(nb: dict[str, Any]) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(cell index, output)`` for every output of every code cell."""
    for index, cell in enumerate(nb["cells"]):
        if not isinstance(cell, dict):
            continue
        outputs = cell.get("outputs")
        if not isinstance(outputs, list):
            continue
        for output in outputs:
            if isinstance(output, dict):
                yield index, output


def collect(nb: dict[str, Any], path: str = "notebook", *, deep: bool = True) -> NotebookRecords:
    """Validate the records of a parsed notebook; duplicates of one record id count once.

    ``deep=False`` says ``nb`` cannot hold :data:`TOO_DEEP` (the standard parser read it all), so
    no record is walked looking for it: that walk was a fifth of reading 50,000 records.
    """
    with collector_paused():  # records and their parts are acyclic: see _parse
        return _collect(nb["cells"], path, deep)


def _collect(cells: Iterable[Any], path: str, deep: bool) -> NotebookRecords:
    """:func:`collect` of a notebook's ``cells``, read one after the other (see :func:`_cells_of`)."""
    found = NotebookRecords(path)
    records, problems = found.records, found.problems
    seen: dict[str, int] = {}
    read = Footprint.from_dict
    # iter_outputs, inline: the cells may be an iterator (_cells_of), not a notebook's list.
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict):
            continue
        outputs = cell.get("outputs")
        if not isinstance(outputs, list):
            if outputs is not None and cell.get("cell_type") == "code":
                problems.append(f"{path}: cell {index}: its 'outputs' is not a list (a damaged "
                                "notebook); any record there is not read")
            continue
        for output in outputs:
            if not isinstance(output, dict):
                continue
            metadata = output.get("metadata")
            if not isinstance(metadata, dict) or METADATA_KEY not in metadata:
                continue
            raw = metadata[METADATA_KEY]
            if deep and _too_deep(raw):
                problems.append(f"{path}: cell {index}: the record holds a value nested more than "
                                f"{MAX_DEPTH} levels deep")
                continue
            kind = raw.get("kind") if isinstance(raw, dict) else None
            if kind == "summary":
                found.summaries.append(raw)
                continue
            try:
                record = read(raw)
            except RecordError as exc:
                problems.append(f"{path}: cell {index}: {exc}")
                continue
            wrong = _implausible(record)
            if wrong is not None:
                problems.append(f"{path}: cell {index}: {wrong}")
                continue
            if record.id in seen:
                records[seen[record.id]] = record
            else:
                seen[record.id] = len(records)
                records.append(record)
    return found


def _implausible(record: Footprint) -> str | None:
    """What no record nbcarbon writes can say, for a record whose fields are each well formed:
    a PUE outside the range nbcarbon accepts, or a total that is not its components' sum (a
    hand-edited number would otherwise be reported, re-priced and summed as measured)."""
    low, high = PUE_RANGE
    if not low <= record.pue <= high:
        return f"the record's PUE {record.pue:g} is outside {low:g} to {high:g}"
    parts = 0.0
    for c in record.components:
        parts += c.energy_j
    if abs(record.energy_j - parts) > 1e-6 * max(record.energy_j, parts) + 1e-9:
        return (f"the record's energy ({record.energy_j:.6g} J) is not the sum of its components "
                f"({parts:.6g} J)")
    return None


def load_records(path: str | Path, max_bytes: int | None = None) -> NotebookRecords:
    """Records of a notebook file; problems are collected, a non-notebook raises NotebookError."""
    # The collector stays paused until the parsed notebook is dropped: resumed earlier, its next
    # pass would walk all of it once more (0.6 s for 100 MB); after, only the records.
    with collector_paused():
        text = [read_text(path, max_bytes)]
        try:  # a cell at a time (see _cells_of); anything out of the ordinary, whole as before
            return _deeper(_STREAM_DEPTH, _collect, _cells_of(text[0]), str(path), False)
        except _NotStreamed:
            pass
        nb, deep = _load_text(text, path)
        found = _collect(nb["cells"], str(path), deep)
        del nb
    return found


#: How many frames deeper than :func:`load_records` the cells are read one by one. The standard
#: parser gives up (``RecursionError``) where the nesting of what it reads and the frames below
#: it reach Python's recursion limit; read whole, a cell is read from within the frames of
#: :func:`_load_text` and ``json.loads`` and the levels of the notebook's object and its cells
#: array (7). Read from deeper, a cell is never read one by one that would not be read whole.
_STREAM_DEPTH = 8


def _deeper(frames: int, function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``, called from ``frames`` more frames down the stack."""
    return _deeper(frames - 1, function, *args) if frames else function(*args)


#: The smallest integers whose JSON text is longer than :data:`_MAX_INT_DIGITS` characters
#: (a minus sign counts: ``_parse_int`` is given the text of the number).
_LONG_INT, _LONG_NEGATIVE_INT = 10 ** _MAX_INT_DIGITS, -(10 ** (_MAX_INT_DIGITS - 1))


def _cell_scanner(exact: Callable[[str, int], tuple[Any, int]]) -> Callable[[str, int], tuple[Any, int]]:
    """``exact`` (the standard scanner with ``parse_int=_parse_int``), faster for the cells of a
    notebook: ``parse_int`` is a Python call per integer (a tenth of the parse).

    A cell is scanned without it, reading integers in C, and the same as ``exact`` would read it
    unless an integer has more than :data:`_MAX_INT_DIGITS` characters, which only a cell that
    long can hold: such a cell, or one the plain scan refuses (Python's own limit on digits is
    one reason), is scanned again by ``exact``.
    """
    plain = json.scanner.make_scanner(json.JSONDecoder())

    def scan(text: str, at: int) -> tuple[Any, int]:
        try:
            value, end = plain(text, at)
        except ValueError:
            return exact(text, at)
        if end - at > _MAX_INT_DIGITS and _has_long_int(value):
            return exact(text, at)
        return value, end

    return scan


def _has_long_int(value: Any) -> bool:
    """Whether ``value`` holds an integer ``_parse_int`` would read as a float (iteratively)."""
    todo = [value]
    while todo:
        v = todo.pop()
        kind = type(v)
        if kind is dict:
            todo.extend(v.values())
        elif kind is list:
            todo.extend(v)
        elif kind is int and (v >= _LONG_INT or v <= _LONG_NEGATIVE_INT):
            return True
    return False


class _NotStreamed(Exception):
    """:func:`_cells_of` met what only the whole parse (:func:`_load_text`) can answer for."""


#: What JSON counts as whitespace between tokens (as ``json.decoder.WHITESPACE``).
_WHITESPACE = re.compile(r"[ \t\n\r]*").match
#: Between two values of an array: space, a comma and space; or space and the closing bracket.
_NEXT_ITEM = re.compile(r"[ \t\n\r]*(?:,[ \t\n\r]*|(\]))").match


def _cells_of(text: str) -> Iterator[dict[str, Any]]:
    """The cells of the notebook ``text``, parsed one at a time, each dropped once read.

    Why: parsed whole, a notebook of 50,000 records (107 MB) is 250 MB of objects made in fresh
    memory (the kernel's page faults alone were a tenth of a report), then walked again to be
    freed, out of the processor's cache. One cell at a time, each is read while it is in the
    cache and the next one is made in the memory it leaves: parsing and freeing take two thirds
    of the time, and the memory the notebook takes is its text and its records.

    The same parser (the standard one, as :func:`_parse` uses it) reads each value; this reads
    only what lies between the values of the top-level object and of its ``cells`` array,
    exactly as that parser does. Whatever it does not expect (text that is not JSON, an
    integer too long, nesting too deep, "cells" twice or not a list, a cell that is not an
    object, a top-level value that is not an object) raises :class:`_NotStreamed` for the
    caller to read the notebook whole, which says what is wrong; so does a notebook it has
    partly given out, whose records the caller then drops.
    """
    scan = json.scanner.make_scanner(json.JSONDecoder(parse_int=_parse_int))
    scan_cell = _cell_scanner(scan)
    scanstring, space, next_item = json.decoder.scanstring, _WHITESPACE, _NEXT_ITEM
    try:
        at = space(text, 0).end()
        if text[at] != "{":
            raise _NotStreamed
        at = space(text, at + 1).end()
        has_cells = False
        while True:  # each "key": value of the top-level object
            if text[at] != '"':
                raise _NotStreamed
            key, at = scanstring(text, at + 1, True)
            at = space(text, at).end()
            if text[at] != ":":
                raise _NotStreamed
            at = space(text, at + 1).end()
            if key != "cells":
                at = scan(text, at)[1]
            elif has_cells or text[at] != "[":
                raise _NotStreamed
            else:
                has_cells = True
                at = space(text, at + 1).end()
                if text[at] == "]":
                    at += 1
                else:
                    while True:
                        cell, at = scan_cell(text, at)
                        if not isinstance(cell, dict):
                            raise _NotStreamed
                        yield cell
                        del cell
                        after = next_item(text, at)  # the "," and the space around it, or "]"
                        if after is None:
                            raise _NotStreamed
                        at = after.end()
                        if after.lastindex:  # the "]"
                            break
            at = space(text, at).end()
            if text[at] == "}":
                break
            if text[at] != ",":
                raise _NotStreamed
            at = space(text, at + 1).end()
        if space(text, at + 1).end() != len(text) or not has_cells:
            raise _NotStreamed
    except (ValueError, RecursionError, StopIteration, IndexError):
        raise _NotStreamed from None


def read_notebook(path: str | Path) -> list[Footprint]:
    """The valid cell records of a saved notebook, in cell order.

    Raises :class:`NotebookError` for a file that is not a notebook and :class:`RecordError`
    for the first record that does not follow the schema (use :func:`load_records` to get the
    valid ones and the list of problems instead).
    """
    found = load_records(path)
    if found.problems:
        raise RecordError(found.problems[0])
    return found.records
