"""What a notebook shows never contains a path. Ledger notices land on a cell's stderr and so in
the saved ``.ipynb``: they say "the history ledger" and that ``nbcarbon status`` shows where,
never ``/home/<user>/...``. The terminal's ``nbcarbon status`` may (and does) name it.

Every output of the notebooks run here, streams included, goes through the privacy scanner
(``conftest.remember``) with the ledger under a directory named after a planted secret.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from nbcarbon.cli import main
from nbcarbon.ledger import Entry, Ledger, LedgerWriter
from tests.conftest import kernel_env
from tests.reliability.conftest import CANARIES, LEAKS, run_notebook
from tests.reliability.test_ledger_ownership import corrupt_marked_ledger, footprint

NOTICES = {
    "corrupt": "was not a readable database",
    "unwritable": "cannot be written",
    "refused": "not a file nbcarbon created",
}


def ledger_in(home: Path, problem: str) -> Path:
    """A ledger path under ``home`` (a directory named after a secret) with ``problem``."""
    home.mkdir(parents=True, exist_ok=True)
    if problem == "corrupt":
        path = home / "ledger.sqlite3"
        corrupt_marked_ledger(path)
    elif problem == "unwritable":
        (home / "a-file").write_text("x")
        path = home / "a-file" / "ledger.sqlite3"  # its directory is a file
    else:
        path = home / "notes.txt"
        path.write_text("someone's notes")
    return path


def streams(nb) -> str:
    return "".join(o.get("text", "") for cell in nb.cells for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream")


@pytest.mark.parametrize("problem", sorted(NOTICES))
def test_ledger_notices_in_a_saved_notebook_name_no_path(tmp_path: Path, problem: str) -> None:
    home = tmp_path / CANARIES["canary directory"]
    path = ledger_in(home, problem)
    env = kernel_env(tmp_path, NBCARBON_LEDGER=str(path), NBCARBON_INTERVAL="0.1")
    leaks_before = len(LEAKS)
    nb = run_notebook([
        "%load_ext nbcarbon",
        "%%carbon --label first\nsum(range(1000))",
        "import nbcarbon.api\nnbcarbon.api.default_ledger().flush()",
        "%%carbon --label second\nsum(range(1000))",
        "%carbon status",
    ], env, path=tmp_path / "shared.ipynb")
    text = streams(nb)
    assert NOTICES[problem] in text, text  # the user is told, in the notebook
    assert "`nbcarbon status` shows where" in text
    assert str(home) not in text and CANARIES["canary directory"] not in text
    saved = (tmp_path / "shared.ipynb").read_text()
    assert CANARIES["canary directory"] not in saved  # nowhere in the file: streams, data, metadata
    assert LEAKS[leaks_before:] == [], json.dumps(LEAKS[leaks_before:][:3], indent=1)


def test_the_terminal_status_says_where_the_ledger_is(tmp_path: Path, monkeypatch, capsys) -> None:
    path = tmp_path / "somewhere" / "ledger.sqlite3"
    monkeypatch.setenv("NBCARBON_LEDGER", str(path))
    assert main(["status"]) == 0
    assert f"history: {path} (not created yet" in capsys.readouterr().out
    ledger = Ledger.open(path)
    ledger.write([Entry(footprint(1), "magic", None)])
    ledger.close()
    assert main(["status"]) == 0
    assert f"history: {path} (1 record(s))" in capsys.readouterr().out
    path.unlink()
    path.write_text("notes")
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"history: {path} (cannot be used: not an nbcarbon ledger" in out
    assert path.read_text() == "notes"


def test_carbon_status_in_a_notebook_says_whether_never_where(make_shell, monkeypatch, tmp_path,
                                                             capsys) -> None:
    path = tmp_path / CANARIES["canary directory"] / "ledger.sqlite3"
    monkeypatch.setenv("NBCARBON_LEDGER", str(path))
    ip = make_shell()
    capsys.readouterr()
    ip.run_cell("%carbon status")
    out = capsys.readouterr().out
    assert "history: kept in the local ledger (`nbcarbon status` in a terminal shows where)" in out
    assert str(path.parent) not in out


@pytest.mark.parametrize("problem", ["corrupt", "unwritable", "refused", "newer", "busy"])
def test_every_writer_notice_is_path_free(tmp_path: Path, problem: str) -> None:
    home = tmp_path / CANARIES["canary directory"]
    if problem == "newer":
        path = home / "ledger.sqlite3"
        Ledger.open(path).close()
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA user_version = 99")
        conn.commit()
        conn.close()
    elif problem == "busy":
        path = home / "ledger.sqlite3"
        Ledger.open(path).close()
    else:
        path = ledger_in(home, problem)
    notes: list[str] = []
    writer = LedgerWriter(path, notify=notes.append)
    if problem == "busy":
        import nbcarbon.ledger as ledger_module

        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another process holding the file
        old, ledger_module.BUSY_TIMEOUT_S = ledger_module.BUSY_TIMEOUT_S, 0.05
        try:
            writer.submit([Entry(footprint(1), "magic", None)])
            deadline = time.monotonic() + 30
            while not notes and time.monotonic() < deadline:
                writer.flush(1.0)
        finally:
            ledger_module.BUSY_TIMEOUT_S = old
            blocker.execute("ROLLBACK")
            blocker.close()
    else:
        writer.submit([Entry(footprint(1), "magic", None)])
        writer.flush()
    writer.close()
    assert notes, problem
    for note in notes:
        assert str(home) not in note and CANARIES["canary directory"] not in note, note
        assert "`nbcarbon status` shows where" in note or "newer" in note, note
