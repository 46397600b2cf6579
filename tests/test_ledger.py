"""The history ledger: SQLite rows for every record, written off the cell's path, surviving kills.

The database is always a real file in ``tmp_path``; kernels and writers are real processes.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from nbcarbon import intensity
from nbcarbon.footprint import Component, Footprint
from nbcarbon.ledger import (
    SCHEMA_VERSION,
    THREAD_NAME,
    Entry,
    Ledger,
    LedgerWriter,
    notebook_name,
    parse_since,
)
from nbcarbon.session import priced
from tests.conftest import kernel_env

ROOT = Path(__file__).resolve().parents[1]


def footprint(i: int = 0, energy_j: float = 10.0, started: datetime | None = None,
              region: str = "SE") -> Footprint:
    started = started or datetime.now(timezone.utc)
    fp = Footprint(
        id=f"{i:032x}", cell_id=None, label=f"cell {i}", execution_count=i,
        started_at=started.isoformat(timespec="milliseconds"), duration_s=1.0, status="ok",
        components=(Component("cpu", "cpu", "cpu-time-model", energy_j, energy_j),),
        energy_j=energy_j, pue=1.0, region=priced(intensity.lookup(region), "test"), co2e_g=0.0,
        attribution="process", nbcarbon_version="test",
    )
    return fp.repriced()


def rows_of(path: Path) -> list[dict]:
    ledger = Ledger.open(path, create=False)
    try:
        return ledger.rows()
    finally:
        ledger.close()


def python(code: str, env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# -- pure parts ------------------------------------------------------------------------------
@pytest.mark.parametrize("value, name", [
    ("/home/ada/secret/analysis.ipynb", "analysis.ipynb"),
    ("C:\\Users\\ada\\nb.ipynb", "nb.ipynb"),
    ("relative/dir/x.ipynb", "x.ipynb"),
    ("plain.ipynb", "plain.ipynb"),
    ("", None), ("  ", None), (None, None), (3, None),
])
def test_notebook_name_is_a_base_name_never_a_path(value: object, name: str | None) -> None:
    assert notebook_name(value) == name


def test_parse_since() -> None:
    now = datetime(2024, 6, 1, tzinfo=timezone.utc)
    assert parse_since("30d", now) == now - timedelta(days=30)
    assert parse_since("12h", now) == now - timedelta(hours=12)
    assert parse_since("2w", now) == now - timedelta(weeks=2)
    assert parse_since("2024-05-01", now) == datetime(2024, 5, 1, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="30d"):
        parse_since("last tuesday", now)


def test_repriced_record_updates_its_row_and_totals_group(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "ledger.sqlite3"
    ledger = Ledger.open(path)
    old = datetime.now(timezone.utc) - timedelta(days=40)
    ledger.write([Entry(footprint(1), "magic", "a.ipynb"), Entry(footprint(2), "auto", "a.ipynb"),
                  Entry(footprint(3), "track", None), Entry(footprint(4, started=old), "run", "b.ipynb")])
    # Re-priced for PL: same id, so the row is updated; where it came from stays as first written.
    ledger.write([Entry(footprint(1).repriced(priced(intensity.lookup("PL"), "command")), "auto", "x")])
    assert ledger.count() == 4
    (row,) = [r for r in ledger.rows() if r["id"] == footprint(1).id]
    assert (row["region"], row["source"], row["notebook"]) == ("PL", "magic", "a.ipynb")
    assert row["record"]["region"]["code"] == "PL" and row["co2e_g"] == row["record"]["co2e_g"]
    groups = {g.key: g for g in ledger.totals(parse_since("30d"), "notebook")}
    assert set(groups) == {"a.ipynb", "(no notebook)"}
    assert groups["a.ipynb"].cells == 2 and groups["a.ipynb"].energy_j == 20.0
    days = ledger.totals(None, "day")
    assert len(days) == 2 and sum(d.cells for d in days) == 4
    ledger.close()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# -- the writer ------------------------------------------------------------------------------
def test_writer_commits_promptly_and_stops_its_thread(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    writer = LedgerWriter(path)
    writer.submit([Entry(footprint(1), "magic", "n.ipynb")])
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:  # committed without a flush: another process sees it
        if path.exists() and len(rows_of(path)) == 1:
            break
        time.sleep(0.005)
    assert len(rows_of(path)) == 1
    assert writer.running
    writer.close()
    assert not writer.running
    writer.submit([Entry(footprint(2), "magic", None)])  # after close: ignored, no thread
    assert not writer.running and len(rows_of(path)) == 1


def _until(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def test_a_burst_of_records_wakes_the_writer_once_and_shares_its_transactions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While records keep coming the thread lingers instead of waiting on the queue, so their puts
    wake nothing and one transaction takes them all; a quiet linger puts it back to sleep.

    A linger of 30 s makes the order certain on any machine: only flush() ends one early.
    """
    import nbcarbon.ledger

    monkeypatch.setattr(nbcarbon.ledger, "LINGER_S", 30.0)
    writer = LedgerWriter(tmp_path / "ledger.sqlite3")
    writer.submit([Entry(footprint(0), "magic", None)])  # starts the thread, which wakes for it
    assert _until(lambda: writer._queue.empty() and not writer.waiting)  # took it: lingering
    for i in range(1, 50):
        writer.submit([Entry(footprint(i), "auto", None)])
        assert not writer.waiting  # lingering: the put found nobody to wake
    assert writer.batches == 0
    assert writer.flush()
    assert (writer.written, writer.batches) == (50, 1)
    # After the write it lingers again: a record now joins the next transaction without a wake.
    assert not writer.waiting
    writer.submit([Entry(footprint(50), "auto", None)])
    assert not writer.waiting and writer.written == 50
    assert writer.flush()
    assert (writer.written, writer.batches) == (51, 2)
    writer.close()
    assert len(rows_of(tmp_path / "ledger.sqlite3")) == 51


def test_an_idle_writer_sleeps_on_the_queue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One linger with nothing new and the thread waits on the queue again: idle costs nothing,
    and the next record (after the lull) wakes it and is written within the linger."""
    import nbcarbon.ledger

    monkeypatch.setattr(nbcarbon.ledger, "LINGER_S", 0.01)
    path = tmp_path / "ledger.sqlite3"
    writer = LedgerWriter(path)
    writer.submit([Entry(footprint(0), "magic", None)])
    assert _until(lambda: writer.written == 1 and writer.waiting)
    writer.submit([Entry(footprint(1), "magic", None)])
    assert _until(lambda: writer.written == 2 and writer.waiting)
    assert writer.batches == 2
    writer.close()
    assert not writer.running and len(rows_of(path)) == 2


def test_corrupt_file_is_moved_aside_with_one_warning(tmp_path: Path) -> None:
    from tests.reliability.test_ledger_ownership import corrupt_marked_ledger

    path = tmp_path / "ledger.sqlite3"
    corrupt_marked_ledger(path)  # only a ledger nbcarbon made is ever moved aside
    notes: list[str] = []
    writer = LedgerWriter(path, notify=notes.append)
    writer.submit([Entry(footprint(1), "magic", None)])
    writer.submit([Entry(footprint(2), "magic", None)])
    writer.close()
    assert len(notes) == 1 and "moved it aside" in notes[0]
    (aside,) = tmp_path.glob("ledger.sqlite3.corrupt-*")
    assert aside.read_bytes().startswith(b"SQLite format 3")
    assert [r["id"] for r in rows_of(path)] == [footprint(1).id, footprint(2).id]


def test_unwritable_place_is_one_warning_and_never_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    notes: list[str] = []
    writer = LedgerWriter(blocker / "ledger.sqlite3", notify=notes.append)  # parent is a file
    for i in range(5):
        writer.submit([Entry(footprint(i), "magic", None)])
        writer.flush()
    writer.close()
    assert len(notes) == 1 and "cannot be written" in notes[0]
    assert writer.dropped == 5 and writer.written == 0


def test_a_newer_schema_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    Ledger.open(path).close()  # a ledger nbcarbon made (marked), later written by a newer nbcarbon
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    notes: list[str] = []
    writer = LedgerWriter(path, notify=notes.append)
    writer.submit([Entry(footprint(1), "magic", None)])
    writer.close()
    assert len(notes) == 1 and "newer than this nbcarbon" in notes[0]
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1


def test_recording_leaves_the_writing_to_the_writer_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The session's listener runs on the cell's path, so it only builds an entry and queues it:
    no JSON, no SQLite on the cell's thread. What that costs per record is a benchmark row
    (``bench_kernel.py``, the ledger table), not an assertion here.

    A linger of 30 s keeps the writer from writing anything until ``close()``, so "nothing was
    written while the records were taken" holds on any machine.
    """
    import threading

    import nbcarbon.ledger
    from nbcarbon.api import LedgerHook
    from nbcarbon.session import Session
    from nbcarbon.settings import Settings

    monkeypatch.setattr(nbcarbon.ledger, "LINGER_S", 30.0)
    writers: set[str] = set()
    real_write = Ledger.write

    def write(self: Ledger, entries) -> None:
        writers.add(threading.current_thread().name)
        real_write(self, entries)

    monkeypatch.setattr(Ledger, "write", write)
    session = Session(Settings(), {"NBCARBON_REGION": "SE"})
    hook = LedgerHook(session, tmp_path / "ledger.sqlite3", {"JPY_SESSION_NAME": "x.ipynb"})
    for i in range(2000):
        hook._on_record(footprint(i))
    assert (hook.writer.written, hook.writer.batches) == (0, 0)  # all of them only queued
    hook.close()
    assert writers == {THREAD_NAME}
    assert hook.writer.written == 2000 and hook.writer.batches == 1
    assert len(rows_of(tmp_path / "ledger.sqlite3")) == 2000


# -- real processes --------------------------------------------------------------------------
WRITER = """
import sys, time
import nbcarbon
n, label, start = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
while time.time() < start:
    time.sleep(0.001)
for i in range(n):
    with nbcarbon.track(f"{label}-{i}"):
        pass
"""


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    env = kernel_env(tmp_path, NBCARBON_LEDGER=str(path))
    start = str(time.time() + 1.5)  # both begin together, after their imports
    procs = [python(WRITER, env, "400", label, start) for label in ("a", "b")]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert "nbcarbon:" not in err  # no ledger warning: nothing was dropped
    rows = rows_of(path)
    labels = {r["record"]["label"] for r in rows}
    assert len(rows) == 800 and labels == {f"{x}-{i}" for x in "ab" for i in range(400)}
    assert {r["source"] for r in rows} == {"track"}


SHELL = """
import json, threading
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.user_ns["__vsc_ipynb_file__"] = "/home/someone/private/analysis.ipynb"
ip.run_cell("%load_ext nbcarbon")
ip.run_cell("%%carbon --label one\\nsum(range(10**5))")
ip.run_cell("import nbcarbon\\nwith nbcarbon.track('inner'):\\n    pass")
ip.run_cell("%carbon region PL")
before = [t.name for t in threading.enumerate()]
ip.run_cell("%unload_ext nbcarbon")
print(json.dumps({"before": before, "after": [t.name for t in threading.enumerate()]}))
"""


def test_shell_records_reach_the_ledger_and_unload_stops_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    env = kernel_env(tmp_path, NBCARBON_LEDGER=str(path), HOME=str(tmp_path),
                     IPYTHONDIR=str(tmp_path / "ipython"))
    env.pop("JPY_SESSION_NAME", None)
    p = python(SHELL, env)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    threads = json.loads(out.strip().splitlines()[-1])
    assert THREAD_NAME in threads["before"]
    assert not any(name.startswith("nbcarbon") for name in threads["after"])
    rows = rows_of(path)
    assert {(r["source"], r["record"]["label"]) for r in rows} == {("magic", "one"), ("track", "inner")}
    assert {r["notebook"] for r in rows} == {"analysis.ipynb"}
    assert {r["region"] for r in rows} == {"PL"}  # re-priced rows were updated, not duplicated
    raw = b"".join(f.read_bytes() for f in tmp_path.glob("ledger.sqlite3*"))
    assert b"/home/someone" not in raw and b"private" not in raw


def test_kernel_killed_mid_cell_keeps_the_earlier_records(tmp_path: Path) -> None:
    from jupyter_client import KernelManager

    path = tmp_path / "ledger.sqlite3"
    env = kernel_env(tmp_path, NBCARBON_LEDGER=str(path), JPY_SESSION_NAME="/srv/work/killed.ipynb")
    km = KernelManager(kernel_name="python3")
    km.start_kernel(env=env)
    kc = km.blocking_client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        out: list[str] = []

        def collect(msg: dict) -> None:
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])

        for code in ["%load_ext nbcarbon", "%carbon auto on", "x = sum(range(10**5))", "y = x * 2",
                     "import os, nbcarbon.api as a\n"
                     "print('ids:', os.getpid(), *[r.id for r in a.default_session().records])"]:
            reply = kc.execute_interactive(code, timeout=60, output_hook=collect)
            assert reply["content"]["status"] == "ok"
        pid, *ids = "".join(out).split("ids:")[-1].split()
        assert len(ids) == 2
        kc.execute("import time\ntime.sleep(60)")  # measured, and killed in the middle

        def committed() -> int:  # the writer commits within its linger; however busy the machine
            try:
                return len(rows_of(path))
            except Exception:  # noqa: BLE001 - not created yet, or mid-write
                return 0

        assert _until(lambda: committed() == 3, 60.0), committed()
        time.sleep(0.5)  # the measured cell is running by now (it is not asserted: any moment will do)
        os.kill(int(pid), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while km.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not km.is_alive()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    rows = {r["id"]: r for r in rows_of(path)}
    assert set(ids) <= set(rows)
    assert len(rows) == 3  # the two cells and the print cell before the killed one
    assert {r["notebook"] for r in rows.values()} == {"killed.ipynb"}
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# -- nested windows ----------------------------------------------------------------------------
def test_history_adds_top_level_rows_only(tmp_path: Path) -> None:
    from dataclasses import replace

    path = tmp_path / "ledger.sqlite3"
    cell = footprint(1, 100.0)
    inner = replace(footprint(2, 40.0), parent_id=cell.id)
    orphan = replace(footprint(3, 5.0), parent_id="f" * 32)  # its parent never reached the ledger
    ledger = Ledger.open(path)
    try:
        ledger.write([Entry(inner, "track", "nb.ipynb"), Entry(cell, "magic", "nb.ipynb"),
                      Entry(orphan, "track", "nb.ipynb")])
        (group,) = ledger.totals()
        assert group.cells == 2 and group.energy_j == 105.0
        assert {r["id"]: r["record"]["parent_id"] for r in ledger.rows()}[inner.id] == cell.id
    finally:
        ledger.close()


def test_a_version_1_ledger_is_upgraded_in_place_and_keeps_its_rows(tmp_path: Path) -> None:
    from dataclasses import replace

    path = tmp_path / "ledger.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE records (id TEXT PRIMARY KEY, started_at TEXT NOT NULL, duration_s REAL NOT NULL,
            energy_j REAL NOT NULL, co2e_g REAL NOT NULL, region TEXT NOT NULL, notebook TEXT,
            source TEXT NOT NULL, record TEXT NOT NULL);
        PRAGMA user_version = 1;
    """)
    old = footprint(1, 7.0)
    conn.execute("INSERT INTO records VALUES (?, ?, 1.0, 7.0, 0.1, 'SE', 'old.ipynb', 'magic', ?)",
                 (old.id, old.started_at, json.dumps(old.to_dict())))
    conn.commit()
    conn.close()
    reader = Ledger.open(path, create=False)  # read as it is: no parent column yet, all top level
    try:
        assert [g.energy_j for g in reader.totals()] == [7.0]
    finally:
        reader.close()
    cell = footprint(2, 100.0)
    ledger = Ledger.open(path)
    try:
        ledger.write([Entry(replace(footprint(3, 40.0), parent_id=cell.id), "track", "new.ipynb"),
                      Entry(cell, "magic", "new.ipynb")])
        totals = {g.key: g.energy_j for g in ledger.totals()}
        assert totals == {"old.ipynb": 7.0, "new.ipynb": 100.0}
    finally:
        ledger.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2


class _LooksBetween:
    """A connection that lets another kernel try to commit right after the ledger's header
    (application id and version) has been read: what two kernels starting at once can do."""

    def __init__(self, conn: sqlite3.Connection, between) -> None:
        self._conn = conn
        self._between = between

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    def execute(self, sql: str, *args):
        cursor = self._conn.execute(sql, *args)
        if sql == "PRAGMA user_version":
            self._between()
        return cursor


def test_a_ledger_another_kernel_creates_while_it_is_looked_at_is_not_refused(tmp_path: Path) -> None:
    """The first look at a ledger is one snapshot: a schema committed between two of its reads
    (version read before, table after) made a ledger being created look like someone else's
    database, and a kernel starting at that moment kept no history."""
    import nbcarbon.ledger as ledger_module

    path = tmp_path / "ledger.sqlite3"
    other = sqlite3.connect(str(path), isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    for statement in filter(str.strip, ledger_module._SCHEMA.split(";")):
        other.execute(statement)
    other.execute(f"PRAGMA application_id = {ledger_module.APPLICATION_ID}")
    other.execute(f"PRAGMA user_version = {ledger_module.SCHEMA_VERSION}")
    committed = []

    def other_commits() -> None:
        try:
            other.execute("COMMIT")
        except sqlite3.OperationalError:  # the look holds its snapshot: the other kernel waits
            return
        committed.append(True)

    looking = sqlite3.connect(str(path), isolation_level=None)
    owner, _ = Ledger._ownership(_LooksBetween(looking, other_commits), path)
    assert owner == ("ours" if committed else "empty")
    assert not looking.in_transaction  # the look's snapshot is let go
    if not committed:
        other.execute("COMMIT")
    other.close()
    looking.close()
    ledger = Ledger.open(path)  # and the kernel that looked opens it as nbcarbon's
    assert ledger.count() == 0
    ledger.close()
