"""The ledger touches only files nbcarbon created. ``NBCARBON_LEDGER`` pointing at someone's text
file, another program's SQLite database, ``/dev/null`` or a FIFO: one notice, the file stays byte
for byte as it was (no rename, no table, no ``user_version``, no WAL, no ``-journal`` beside it),
and the ledger is off for the session. Ledgers nbcarbon creates carry ``PRAGMA application_id``;
unmarked ledgers of earlier versions (schema 1 or 2, nbcarbon's table) are still nbcarbon's.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest

import nbcarbon.api
from nbcarbon import intensity
from nbcarbon.cli import main
from nbcarbon.footprint import Component, Footprint
from nbcarbon.ledger import SCHEMA_VERSION, Entry, Ledger, LedgerWriter
from nbcarbon.session import priced

ROOT = Path(__file__).resolve().parents[2]
#: nbcarbon's mark in the SQLite header: part of the file format, so spelled out here.
APPLICATION_ID = 0x6E62434F  # "nbCO"
V1_TABLE = """
    CREATE TABLE records (id TEXT PRIMARY KEY, started_at TEXT NOT NULL, duration_s REAL NOT NULL,
        energy_j REAL NOT NULL, co2e_g REAL NOT NULL, region TEXT NOT NULL, notebook TEXT,
        source TEXT NOT NULL, record TEXT NOT NULL)"""


def footprint(i: int) -> Footprint:
    return Footprint(
        id=f"{i:032x}", cell_id=None, label=f"cell {i}", execution_count=i,
        started_at=datetime.now(timezone.utc).isoformat(timespec="milliseconds"), duration_s=1.0,
        status="ok", components=(Component("cpu", "cpu", "cpu-time-model", 5.0, 5.0),), energy_j=5.0,
        pue=1.0, region=priced(intensity.lookup("SE"), "test"), co2e_g=0.0, attribution="process",
        nbcarbon_version="test").repriced()


def marked(path: Path) -> bool:
    """The mark read from the file's own header (bytes 68-71), as a crash would leave it."""
    header = path.read_bytes()[:100]
    return (header.startswith(b"SQLite format 3\x00")
            and int.from_bytes(header[68:72], "big") == APPLICATION_ID)


def write(path: Path, *ids: int) -> tuple[LedgerWriter, list[str]]:
    """Three batches through a writer, as three cells would send them; then close it."""
    notes: list[str] = []
    writer = LedgerWriter(path, notify=notes.append)
    for i in ids:
        writer.submit([Entry(footprint(i), "magic", "nb.ipynb")])
        writer.flush()
    writer.close()
    return writer, notes


def state(directory: Path) -> dict[str, str]:
    """Every file in ``directory`` and its content's hash: what "left untouched" means."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def assert_refused(notes: list[str], writer: LedgerWriter, says: str) -> None:
    assert len(notes) == 1, notes
    assert "not a file nbcarbon created" in notes[0] and says in notes[0], notes[0]
    assert "untouched" in notes[0] and "\n" not in notes[0]
    assert writer.refused and writer.written == 0 and writer.dropped == 3


def test_a_text_file_is_never_renamed_or_changed(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("my notes, not a database\n" * 50)
    before = state(tmp_path)
    writer, notes = write(path, 1, 2, 3)
    assert_refused(notes, writer, "not an SQLite database")
    assert state(tmp_path) == before  # no .corrupt-<time>, no new ledger in its place


def test_the_ledger_stays_off_for_the_session_once_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("text")
    notes: list[str] = []
    writer = LedgerWriter(path, notify=notes.append)
    writer.submit([Entry(footprint(1), "magic", None)])
    writer.flush()
    path.unlink()  # even with the place now free, this session keeps its hands off it
    writer.submit([Entry(footprint(2), "magic", None)])
    writer.close()
    assert not path.exists() and len(notes) == 1 and writer.dropped == 2


@pytest.mark.parametrize("table", ["CREATE TABLE photos (id INTEGER, name TEXT)",
                                   "CREATE TABLE records (id INTEGER PRIMARY KEY, amount REAL)",
                                   V1_TABLE.replace("record TEXT NOT NULL", "payload BLOB")])
def test_someone_elses_sqlite_database_is_left_as_it_was(tmp_path: Path, table: str) -> None:
    path = tmp_path / "theirs.db"
    conn = sqlite3.connect(path)
    conn.execute(table)
    conn.execute("PRAGMA user_version = 7")
    conn.commit()
    conn.close()
    before = state(tmp_path)
    writer, notes = write(path, 1, 2, 3)
    assert_refused(notes, writer, "SQLite database that nbcarbon did not create")
    assert state(tmp_path) == before  # bytes, user_version, journal mode (no WAL) and no side files


def test_another_programs_marked_database_is_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "geo.gpkg"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 1196444487")  # GeoPackage's "GPKG"
    conn.execute(V1_TABLE)  # even with a table shaped like nbcarbon's
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    before = state(tmp_path)
    writer, notes = write(path, 1, 2, 3)
    assert_refused(notes, writer, "another program's SQLite database")
    assert state(tmp_path) == before


def test_dev_null_gets_no_journal_beside_it() -> None:
    journal = Path("/dev/null-journal")
    existed = journal.exists()
    try:
        writer, notes = write(Path("/dev/null"), 1, 2, 3)
        assert_refused(notes, writer, "not a regular file")
        assert journal.exists() == existed
    finally:
        if journal.exists() and not existed:  # what the unfixed nbcarbon left there (as root)
            journal.unlink()


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "ledger.fifo"
    os.mkfifo(fifo)
    script = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        sys.path.insert(0, {str(ROOT)!r})
        from tests.reliability.test_ledger_ownership import write
        writer, notes = write(Path({str(fifo)!r}), 1, 2, 3)
        print(writer.refused, notes)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("True") and "FIFO" in done.stdout


def test_a_refused_ledger_costs_the_notebook_nothing(tmp_path: Path, make_shell, monkeypatch,
                                                    capsys) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    monkeypatch.setenv("NBCARBON_LEDGER", str(path))
    ip = make_shell()
    values = [ip.run_cell(f"%%carbon --label c{i}\n{i} * 7").result for i in range(3)]
    nbcarbon.api.default_ledger().flush()
    ip.run_cell("%%carbon\n1")  # notices from the writer's thread come with the next readout
    assert values == [0, 7, 14]
    err = capsys.readouterr().err
    assert err.count("not a file nbcarbon created") == 1 and "Traceback" not in err
    assert path.read_text() == "hello\n" and sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_history_refuses_someone_elses_database_in_one_line(tmp_path: Path, monkeypatch,
                                                             capsys) -> None:
    path = tmp_path / "theirs.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE photos (id INTEGER)")
    conn.commit()
    conn.close()
    before = state(tmp_path)
    monkeypatch.setenv("NBCARBON_LEDGER", str(path))
    assert main(["history"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not an nbcarbon ledger" in err
    assert state(tmp_path) == before


def test_ledgers_nbcarbon_creates_are_marked_on_disk_at_once(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger = Ledger.open(path)
    try:
        assert marked(path)  # in the file's own header, not only in a WAL a crash could lose
        assert ledger._conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    finally:
        ledger.close()


@pytest.mark.parametrize("version", [1, 2])
def test_an_unmarked_ledger_of_an_earlier_nbcarbon_is_kept_and_marked(tmp_path: Path,
                                                                      version: int) -> None:
    path = tmp_path / "ledger.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(V1_TABLE if version == 1 else V1_TABLE.replace(
        "record TEXT NOT NULL)", "record TEXT NOT NULL, parent_id TEXT)"))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA user_version = {version}")
    old = footprint(9)
    conn.execute("INSERT INTO records (id, started_at, duration_s, energy_j, co2e_g, region, notebook,"
                 " source, record) VALUES (?, ?, 1.0, 5.0, 0.1, 'SE', 'old.ipynb', 'magic', '{}')",
                 (old.id, old.started_at))
    conn.commit()
    conn.close()
    writer, notes = write(path, 1, 2)
    assert notes == [] and writer.written == 2
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 3
    conn.close()
    assert marked(path)


def corrupt_marked_ledger(path: Path) -> None:
    """A real nbcarbon ledger whose pages after the header were overwritten."""
    ledger = Ledger.open(path)
    ledger.write([Entry(footprint(i), "magic", None) for i in range(50)])
    ledger.close()
    data = bytearray(path.read_bytes())
    data[100:] = b"\xa5" * (len(data) - 100)
    path.write_bytes(bytes(data))


def test_a_corrupt_ledger_of_ours_is_moved_aside_and_anything_else_is_not(tmp_path: Path) -> None:
    ours = tmp_path / "ours" / "ledger.sqlite3"
    corrupt_marked_ledger(ours)
    writer, notes = write(ours, 1, 2, 3)
    assert len(notes) == 1 and "moved it aside" in notes[0] and writer.written == 3
    assert len(list(ours.parent.glob("ledger.sqlite3.corrupt-*"))) == 1

    theirs = tmp_path / "theirs" / "ledger.sqlite3"
    theirs.parent.mkdir()
    conn = sqlite3.connect(theirs)
    conn.executescript(V1_TABLE + "; PRAGMA user_version = 1;")  # unmarked: we cannot know it is ours
    conn.close()
    data = bytearray(theirs.read_bytes())
    data[100:] = b"\xa5" * (len(data) - 100)
    theirs.write_bytes(bytes(data))
    before = state(theirs.parent)
    writer, notes = write(theirs, 1, 2, 3)
    assert len(notes) == 1 and "untouched" in notes[0] and writer.written == 0
    assert state(theirs.parent) == before


def test_a_ledger_of_a_newer_nbcarbon_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    Ledger.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    before = state(tmp_path)
    writer, notes = write(path, 1, 2, 3)
    assert len(notes) == 1 and "newer than this nbcarbon understands" in notes[0]
    assert writer.written == 0 and state(tmp_path) == before
