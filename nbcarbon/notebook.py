"""Reading the records embedded in saved notebooks, without executing or trusting them.

A saved ``.ipynb`` is plain JSON; the records live in ``outputs[].metadata.nbcarbon``. This
module uses the ``json`` module alone (no nbformat), validates every record, and reports each
problem with where it was found, so one bad record never hides the good ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import NbcarbonError, RecordError
from .footprint import METADATA_KEY, Footprint


class NotebookError(NbcarbonError, ValueError):
    """A file that is not a readable Jupyter notebook."""


@dataclass
class NotebookRecords:
    """What one notebook holds: valid cell records, raw summaries, and what could not be read."""

    path: str
    records: list[Footprint] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def load_json(path: str | Path) -> dict[str, Any]:
    """Parse a notebook file; raise :class:`NotebookError` saying why it is not one."""
    try:
        with open(path, "rb") as f:
            nb = json.load(f)
    except OSError as exc:
        raise NotebookError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (ValueError, RecursionError) as exc:
        raise NotebookError(f"{path}: not a notebook: the file is not valid JSON ({exc})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError(f"{path}: not a notebook: JSON without a 'cells' list")
    return nb


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


def collect(nb: dict[str, Any], path: str = "notebook") -> NotebookRecords:
    """Validate the records of a parsed notebook; duplicates of one record id count once."""
    found = NotebookRecords(path)
    seen: dict[str, int] = {}
    for index, output in iter_outputs(nb):
        metadata = output.get("metadata")
        if not isinstance(metadata, dict) or METADATA_KEY not in metadata:
            continue
        raw = metadata[METADATA_KEY]
        kind = raw.get("kind") if isinstance(raw, dict) else None
        if kind == "summary":
            found.summaries.append(raw)
            continue
        try:
            record = Footprint.from_dict(raw)
        except RecordError as exc:
            found.problems.append(f"{path}: cell {index}: {exc}")
            continue
        if record.id in seen:
            found.records[seen[record.id]] = record
        else:
            seen[record.id] = len(found.records)
            found.records.append(record)
    return found


def load_records(path: str | Path) -> NotebookRecords:
    """Records of a notebook file; problems are collected, a non-notebook raises NotebookError."""
    return collect(load_json(path), str(path))


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
