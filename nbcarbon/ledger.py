"""The history ledger: every footprint is also kept in a local SQLite database, off the cell's path.

Why this shape:
- A cell must not wait for a disk. :class:`LedgerWriter` takes records through a queue (a put costs
  microseconds) and one daemon thread writes them, committing each batch at once, a few ms after
  the cell. A kernel killed with SIGKILL therefore loses at most the records of the last few ms.
- Waking a thread costs the cell more than the write itself (the GIL changes hands while the cell
  is finishing: about 0.1 ms). So the writer, once woken, lingers :data:`LINGER_S` before writing:
  a burst of quick cells (``nbcarbon run``, auto mode) is one wake-up and one transaction.
- Several kernels share one file: WAL journal, one short ``BEGIN IMMEDIATE`` transaction per batch,
  and a busy timeout, so concurrent writers wait their turn instead of failing.
- History must never break a cell: a corrupt file is moved aside and a new one started, an
  unwritable place is one notice; records that cannot be written are counted, never raised.

The ledger knows nothing of notebooks: a row is a record's JSON plus the indexed columns that
``nbcarbon history`` groups by, including a notebook *name* (a base name, never a path) that the
caller supplies. ``sqlite3`` is imported here only, and only when a ledger is opened.
"""

from __future__ import annotations

import atexit
import json
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import NbcarbonError
from .footprint import Footprint

if TYPE_CHECKING:
    import sqlite3

#: 2 added ``parent_id`` (nested windows); a version-1 ledger is upgraded in place when written.
SCHEMA_VERSION = 2
SOURCES = ("magic", "auto", "track", "loop", "run")
GROUPINGS = ("notebook", "day")
BUSY_TIMEOUT_S = 10.0
LINGER_S = 0.005
THREAD_NAME = "nbcarbon-ledger"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id         TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    duration_s REAL NOT NULL,
    energy_j   REAL NOT NULL,
    co2e_g     REAL NOT NULL,
    region     TEXT NOT NULL,
    notebook   TEXT,
    source     TEXT NOT NULL,
    record     TEXT NOT NULL,
    parent_id  TEXT
);
CREATE INDEX IF NOT EXISTS records_started_at ON records (started_at);
CREATE INDEX IF NOT EXISTS records_notebook ON records (notebook, started_at);
"""

# A re-priced record updates its row; where and how it was made (notebook, source) stay as first written.
_UPSERT = """
INSERT INTO records (id, started_at, duration_s, energy_j, co2e_g, region, notebook, source, record,
                     parent_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    energy_j = excluded.energy_j, co2e_g = excluded.co2e_g, region = excluded.region,
    record = excluded.record
"""


class LedgerError(NbcarbonError, OSError):
    """The ledger file cannot be opened or read (e.g. written by a newer nbcarbon, or corrupt)."""


@dataclass(frozen=True)
class Entry:
    """One record to write, with what made it and the notebook's base name if known."""

    record: Footprint
    source: str
    notebook: str | None = None


@dataclass(frozen=True)
class HistoryRow:
    """Totals of one group (a notebook or a UTC day) over the chosen period."""

    key: str
    cells: int
    duration_s: float
    energy_j: float
    co2e_g: float


def notebook_name(value: object) -> str | None:
    """The base name of a notebook path (POSIX or Windows), so no directory ever reaches a row."""
    if not isinstance(value, str):
        return None
    name = re.split(r"[\\/]", value.strip())[-1].strip()
    return name or None


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``30d``, ``12h``, ``2w``, ``90m`` before now, or an ISO date/time (UTC if no zone).

    Raises :class:`ValueError` with the accepted forms.
    """
    now = now or datetime.now(timezone.utc)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*", text)
    if m:
        unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[m.group(2)]
        return now - timedelta(**{unit: float(m.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since must be a duration like 30d, 12h, 2w, 90m or a date like 2024-05-01, not {text!r}"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _is_corrupt(exc: BaseException) -> bool:
    """A file that is not (or no longer) a SQLite database, as opposed to a busy or unwritable one."""
    import sqlite3

    name = getattr(exc, "sqlite_errorname", None)  # Python 3.11+
    if name is not None:
        return name in ("SQLITE_NOTADB", "SQLITE_CORRUPT")
    return type(exc) is sqlite3.DatabaseError


class Ledger:
    """A connection to one ledger file: schema, writes in short transactions, history queries."""

    def __init__(self, conn: "sqlite3.Connection", path: Path, empty: bool = False) -> None:
        self._conn = conn
        self.path = path
        self._empty = empty  # opened for reading before any writer made the table
        self._nested = True  # rows know their parent (schema 2); False for a v1 ledger read as is

    @classmethod
    def open(cls, path: Path, create: bool = True) -> "Ledger":
        """Open (and with ``create``, make) the ledger at ``path``.

        Raises :class:`LedgerError` for a ledger of a newer schema, and lets ``sqlite3`` errors
        through otherwise (the writer tells a corrupt file from an unwritable one).
        """
        import sqlite3

        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.is_file():
            raise LedgerError(f"no ledger at {path}")
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise LedgerError(
                    f"the ledger {path} has schema {version}, newer than this nbcarbon understands "
                    f"({SCHEMA_VERSION}); upgrade nbcarbon, or set NBCARBON_LEDGER to another file"
                )
            if create:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")  # in WAL, durable against a killed process
                if version < SCHEMA_VERSION:
                    conn.execute("BEGIN IMMEDIATE")  # two kernels creating it at once take turns
                    version = conn.execute("PRAGMA user_version").fetchone()[0]
                    if version == 1:
                        conn.execute("ALTER TABLE records ADD COLUMN parent_id TEXT")
                    for statement in filter(str.strip, _SCHEMA.split(";")):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    conn.execute("COMMIT")
                    version = SCHEMA_VERSION
        except BaseException:
            conn.close()
            raise
        ledger = cls(conn, path, empty=not create and version < 1)
        ledger._nested = version >= 2
        return ledger

    def write(self, entries: Sequence[Entry]) -> None:
        """Insert or update ``entries`` in one short transaction."""
        rows = []
        for e in entries:
            fp = e.record
            rows.append((fp.id, fp.started_at, fp.duration_s, fp.energy_j, fp.co2e_g, fp.region.code,
                         notebook_name(e.notebook), e.source,
                         json.dumps(fp.to_dict(), separators=(",", ":")), fp.parent_id))
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(_UPSERT, rows)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def count(self) -> int:
        if self._empty:
            return 0
        return int(self._conn.execute("SELECT count(*) FROM records").fetchone()[0])

    def rows(self) -> list[dict[str, Any]]:
        """Every row as a dict (the record JSON parsed), oldest first; for tests and export."""
        if self._empty:
            return []
        cur = self._conn.execute(
            "SELECT id, started_at, duration_s, energy_j, co2e_g, region, notebook, source, record "
            "FROM records ORDER BY started_at, id")
        names = [d[0] for d in cur.description]
        out = []
        for values in cur:
            row = dict(zip(names, values, strict=True))
            row["record"] = json.loads(row["record"])
            out.append(row)
        return out

    def totals(self, since: datetime | None = None, by: str = "notebook") -> list[HistoryRow]:
        """Cells, duration, energy and CO2e per notebook or per UTC day, since ``since``.

        Top-level records only, by the rule of :func:`nbcarbon.footprint.top_level`: a row whose
        parent is in the ledger is detail of that parent, never added again.
        """
        if by not in GROUPINGS:
            raise ValueError(f"group by one of {GROUPINGS}, not {by!r}")
        if self._empty:
            return []
        key = "coalesce(notebook, '(no notebook)')" if by == "notebook" else "substr(started_at, 1, 10)"
        conditions, args = [], []
        if self._nested:
            conditions.append("(parent_id IS NULL OR parent_id = id OR "
                              "parent_id NOT IN (SELECT id FROM records))")
        if since is not None:
            conditions.append("started_at >= ?")
            args.append(since.astimezone(timezone.utc).isoformat(timespec="milliseconds"))
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        order = "co2e_g_sum DESC, k" if by == "notebook" else "k"
        sql = (f"SELECT {key} AS k, count(*), sum(duration_s), sum(energy_j), sum(co2e_g) AS co2e_g_sum "
               f"FROM records {where} GROUP BY k ORDER BY {order}")
        return [HistoryRow(k, int(n), float(d), float(e), float(c))
                for k, n, d, e, c in self._conn.execute(sql, args)]

    def close(self) -> None:
        self._conn.close()


def move_aside(path: Path) -> Path:
    """Rename a corrupt ledger (and its WAL files) out of the way; returns the new name."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    path.replace(target)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.replace(target.with_name(target.name + suffix))
    return target


_STOP = object()


class LedgerWriter:
    """Writes entries to the ledger from one daemon thread, so the cell never waits for the disk.

    :meth:`submit` only enqueues. The thread starts on the first submit, drains whatever is queued,
    writes it in one transaction and commits at once. :meth:`flush` waits until everything
    submitted so far is written; :meth:`close` flushes, stops the thread and closes the file
    (also run at interpreter exit). Problems are reported through ``notify``, once per kind.
    """

    def __init__(self, path: Path, notify: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.written = 0
        self.dropped = 0
        self.problems: list[str] = []
        self._notify = notify
        self._warned: set[str] = set()
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ledger: Ledger | None = None
        self._lock = threading.Lock()
        self._closed = False

    # -- the cell's side ---------------------------------------------------------------------
    def submit(self, entries: Iterable[Entry]) -> None:
        """Queue entries for writing; never blocks on the disk, never raises for the ledger's sake."""
        if self._closed:
            return
        if self._thread is None:
            self._start()
        for entry in entries:
            self._queue.put(entry)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything submitted before this call is written (or dropped)."""
        if self._thread is None or not self._thread.is_alive():
            return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, stop the thread and close the database; later submits are ignored."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        atexit.unregister(self.close)
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
            self._thread.start()
        atexit.register(self.close)

    # -- the thread's side -------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                batch = [self._queue.get()]
                if isinstance(batch[0], Entry):
                    time.sleep(LINGER_S)  # let a burst of cells join this transaction
                while True:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                entries = [e for e in batch if isinstance(e, Entry)]
                if entries:
                    self._write(entries)
                for item in batch:
                    if isinstance(item, threading.Event):
                        item.set()
                if any(item is _STOP for item in batch):
                    return
        finally:
            if self._ledger is not None:
                self._ledger.close()
                self._ledger = None

    def _write(self, entries: list[Entry]) -> None:
        import sqlite3

        for attempt in range(3):
            try:
                if self._ledger is None:
                    self._ledger = Ledger.open(self.path)
                self._ledger.write(entries)
                self.written += len(entries)
                return
            except sqlite3.DatabaseError as exc:
                self._drop_connection()
                if _is_corrupt(exc) and attempt == 0 and self._move_aside(exc):
                    continue
                if "locked" in str(exc) or "busy" in str(exc):
                    time.sleep(0.05 * (attempt + 1))  # another writer held the file too long
                    continue
                why = f"{exc}"
            except (OSError, LedgerError) as exc:
                self._drop_connection()
                why = getattr(exc, "strerror", None) or str(exc)
            self.dropped += len(entries)
            self._warn("unwritable", f"nbcarbon: the ledger {self.path} cannot be written ({why}); "
                       "history is not being kept. Footprints in notebooks are not affected "
                       "(set NBCARBON_LEDGER to another file, or to off).")
            return
        self.dropped += len(entries)
        self._warn("busy", f"nbcarbon: the ledger {self.path} stayed locked by another process; "
                   f"{len(entries)} record(s) were not added to the history.")

    def _move_aside(self, exc: BaseException) -> bool:
        try:
            target = move_aside(self.path)
        except OSError:
            return False
        self._warn("corrupt", f"nbcarbon: the ledger {self.path} was not a readable database ({exc}); "
                   f"moved it to {target.name} and started a new one.")
        return True

    def _drop_connection(self) -> None:
        if self._ledger is not None:
            ledger, self._ledger = self._ledger, None
            ledger.close()

    def _warn(self, kind: str, message: str) -> None:
        if kind in self._warned:
            return
        self._warned.add(kind)
        self.problems.append(message)
        if self._notify is not None:
            self._notify(message)
