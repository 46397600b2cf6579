"""The history ledger: every footprint is also kept in a local SQLite database, off the cell's path.

Why this shape:
- A cell must not wait for a disk. :class:`LedgerWriter` takes records through a queue (a put costs
  microseconds) and one daemon thread writes them, committing each batch at once, at most
  :data:`LINGER_S` (a tenth of a second) after the cell. A kernel killed with SIGKILL loses at
  most the records of about that last tenth of a second.
- A cell must not pay for the thread either. Waking it costs the cell more than the write itself
  (the GIL changes hands while the cell is finishing), and a write lands in whatever cell runs
  then. So the writer, once woken by a record, lingers :data:`LINGER_S` before writing, and after
  writing lingers again instead of waiting on the queue: while cells keep coming (``nbcarbon run``,
  auto mode, Run All) their puts wake nothing, and they share one transaction per
  :data:`LINGER_S`. Only a linger with nothing new sends it back to waiting, where it costs
  nothing while the kernel is idle. :meth:`LedgerWriter.flush` and ``close`` cut a linger short.
- Several kernels share one file: WAL journal, one short ``BEGIN IMMEDIATE`` transaction per batch,
  and a busy timeout, so concurrent writers wait their turn instead of failing.
- History must never break a cell: a corrupt file is moved aside and a new one started, an
  unwritable place is one notice; records that cannot be written are counted, never raised.
- History must never break someone else's file either. Every ledger nbcarbon creates carries
  :data:`APPLICATION_ID` in its SQLite header; only such a file (or an empty one, or an unmarked
  ledger of an earlier nbcarbon, recognised by its table) is ever written, upgraded or moved
  aside. Anything else at ``NBCARBON_LEDGER`` (a text file, another program's database,
  ``/dev/null``, a FIFO) is refused with one notice and the ledger is off for the session.
- Notices reach the cell's stderr, and so the saved notebook: they never name the ledger's path
  (``nbcarbon status`` in a terminal does).

The ledger knows nothing of notebooks: a row is a record's JSON plus the indexed columns that
``nbcarbon history`` groups by, including a notebook *name* (a base name, never a path) that the
caller supplies. ``sqlite3`` is imported here only, and only when a ledger is opened.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import queue
import re
import stat
import sys
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
#: Written into the SQLite header of every ledger nbcarbon creates (``PRAGMA application_id``;
#: "nbCO" in ASCII), so that it never mistakes another program's database for its own.
APPLICATION_ID = 0x6E62434F
#: The columns of nbcarbon's ``records`` table in schema 1: how an unmarked ledger made by an
#: earlier nbcarbon is recognised (and then marked).
_V1_COLUMNS = frozenset({"id", "started_at", "duration_s", "energy_j", "co2e_g", "region", "notebook",
                         "source", "record"})
_SQLITE_MAGIC = b"SQLite format 3\x00"
#: What notices say instead of the ledger's path (they end up in shared notebooks).
WHERE = "`nbcarbon status` shows where"
SOURCES = ("magic", "auto", "track", "loop", "run")
GROUPINGS = ("notebook", "day")
BUSY_TIMEOUT_S = 10.0
#: How long the writer gathers records before a write, and how long a quiet spell must be before
#: it waits on the queue again (module docstring).
LINGER_S = 0.1
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
    """The ledger file cannot be opened or read (e.g. written by a newer nbcarbon, or corrupt).

    Messages never name the path: callers that may show it (the command line) add it.
    """


class LedgerRefused(LedgerError):
    """The file at the ledger's place is not one nbcarbon created: it is never changed or moved."""

    def __init__(self, why: str) -> None:
        super().__init__(f"not an nbcarbon ledger: {why}; nbcarbon leaves it untouched")
        self.why = why


def _kind_of(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "a special file"


def _check_regular(path: Path) -> bool:
    """Whether ``path`` exists; raise :class:`LedgerRefused` if it is not a regular file.

    SQLite would open ``/dev/null`` or a FIFO and then write ``/dev/null-journal`` next to it.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(mode):
        raise LedgerRefused(f"it is {_kind_of(mode)}, not a regular file")
    return True


def marked(path: Path) -> bool:
    """Whether the file's SQLite header carries nbcarbon's :data:`APPLICATION_ID`.

    Read from the raw header, so it works on a file SQLite can no longer open (the one case
    where this is asked: may a corrupt file be moved aside?). Special files are never read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        header = os.read(fd, 100)
    except OSError:
        return False
    finally:
        os.close(fd)
    return (len(header) == 100 and header.startswith(_SQLITE_MAGIC)
            and int.from_bytes(header[68:72], "big") == APPLICATION_ID)


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
    return _base_name(value) if isinstance(value, str) else None


@functools.lru_cache(maxsize=32)
def _base_name(value: str) -> str | None:
    """Kept per path: every record's row asks, on the cell's path, for the same one or two."""
    name = re.split(r"[\\/]", value.strip())[-1].strip()
    try:  # a file name that is not UTF-8 reaches Python as lone surrogates, which SQLite refuses
        name.encode("utf-8")
    except UnicodeEncodeError:
        try:
            name = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeEncodeError:
            name = name.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return name or None


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``30d``, ``12h``, ``2w``, ``90m`` before now, or an ISO date/time (UTC if no zone).

    Raises :class:`ValueError` with the accepted forms.
    """
    now = now or datetime.now(timezone.utc)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*", text)
    try:
        if m:
            unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[m.group(2)]
            return now - timedelta(**{unit: float(m.group(1))})
        try:
            when = datetime.fromisoformat(text.strip())
        except ValueError:
            raise ValueError(
                f"--since must be a duration like 30d, 12h, 2w, 90m or a date like 2024-05-01, not {text!r}"
            ) from None
        when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
        return when.astimezone(timezone.utc)
    except OverflowError:  # 999999999999d: before the year 1, where datetime ends
        raise ValueError(f"--since {text.strip()[:40]!r} reaches back before the year 1; "
                         "give a shorter duration or a date like 2024-05-01") from None


def _is_corrupt(exc: BaseException) -> bool:
    """A file that is not (or no longer) a SQLite database, as opposed to a busy or unwritable one."""
    import sqlite3

    name = getattr(exc, "sqlite_errorname", None)  # Python 3.11+
    if name is not None:
        return name in ("SQLITE_NOTADB", "SQLITE_CORRUPT")
    return type(exc) is sqlite3.DatabaseError


def _newer(version: int) -> LedgerError:
    return LedgerError(
        f"the history ledger has schema {version}, newer than this nbcarbon understands "
        f"({SCHEMA_VERSION}); upgrade nbcarbon, or set NBCARBON_LEDGER to another file")


class Ledger:
    """A connection to one ledger file: schema, writes in short transactions, history queries."""

    def __init__(self, conn: "sqlite3.Connection", path: Path, empty: bool = False) -> None:
        self._conn = conn
        self.path = path
        self._empty = empty  # opened for reading before any writer made the table
        self._nested = True  # rows know their parent (schema 2); False for a v1 ledger read as is

    @classmethod
    def open(cls, path: Path, create: bool = True) -> "Ledger":
        """Open (and with ``create``, make or upgrade) the ledger at ``path``.

        Only a file nbcarbon owns is opened (:meth:`_ownership`); anything else raises
        :class:`LedgerRefused` before a byte of it is changed. Raises :class:`LedgerError` for a
        ledger of a newer schema, and lets ``sqlite3`` errors of a corrupt *marked* ledger
        through (the writer moves that one aside).
        """
        import sqlite3

        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        if not _check_regular(path) and not create:
            raise LedgerError("no ledger file there yet")
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
        try:
            owner, version = cls._ownership(conn, path)
            marking = False
            if create and (owner != "ours" or version < SCHEMA_VERSION):
                conn.execute("BEGIN IMMEDIATE")  # two kernels creating it at once take turns
                # As it is now that we hold the lock (another kernel may have created it).
                owner, version = cls._ownership(conn, path, was_empty=owner == "empty")
                if owner != "ours" or version < SCHEMA_VERSION:
                    if version == 1:
                        conn.execute("ALTER TABLE records ADD COLUMN parent_id TEXT")
                    for statement in filter(str.strip, _SCHEMA.split(";")):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    marking = owner == "unmarked"
                    owner, version = "ours", SCHEMA_VERSION
                conn.execute("COMMIT")
            if create:
                # WAL only now: the mark and the schema went straight into the file's header, so
                # a reader (or a later "may this be moved aside?") sees them on disk at once.
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")  # in WAL, durable against a killed process
                if marking:  # an earlier nbcarbon's ledger, in WAL already: put the mark on disk
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except BaseException:
            conn.close()
            raise
        ledger = cls(conn, path, empty=owner == "empty")
        ledger._nested = version >= 2
        return ledger

    @staticmethod
    def _ownership(conn: "sqlite3.Connection", path: Path, was_empty: bool = False) -> tuple[str, int]:
        """``("ours" | "unmarked" | "empty", user_version)``, or raise :class:`LedgerRefused`.

        ours: marked with :data:`APPLICATION_ID`. unmarked: a ledger of an earlier nbcarbon
        (schema 1 or 2, nbcarbon's ``records`` table), taken as ours and marked when written.
        empty: a new (zero-page) file, e.g. just made by ``connect``; ``was_empty``: it was, and
        starting our write transaction gave it its first page, still without a table. Anything
        else is someone else's. Reads only; a file SQLite cannot read is refused unless marked.
        """
        # One read transaction for every look below: read one statement at a time, another
        # kernel's schema could be committed between two of them (the header's version read
        # before it, the table after), and a ledger being created would look like nobody's.
        began = not conn.in_transaction
        if began:
            conn.execute("BEGIN")
        try:
            return Ledger._look(conn, path, was_empty)
        finally:
            if began and conn.in_transaction:
                conn.execute("ROLLBACK")

    @staticmethod
    def _look(conn: "sqlite3.Connection", path: Path, was_empty: bool) -> tuple[str, int]:
        """:meth:`_ownership`, read within the caller's transaction."""
        import sqlite3

        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if app_id == APPLICATION_ID:
                if version > SCHEMA_VERSION:
                    raise _newer(version)
                return "ours", version
            if app_id != 0:
                raise LedgerRefused("it is another program's SQLite database (its application id "
                                    f"is {app_id:#x})")
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            if pages == 0 or (was_empty and pages == 1 and version == 0 and not conn.execute(
                    "SELECT count(*) FROM sqlite_master").fetchone()[0]):
                return "empty", 0
            columns = {row[1] for row in conn.execute("PRAGMA table_info(records)")}
        except sqlite3.DatabaseError as exc:
            if marked(path):
                raise  # our own ledger, damaged: the writer moves it aside and starts anew
            if _is_corrupt(exc):
                raise LedgerRefused("it is not an SQLite database, or not one nbcarbon made") from None
            raise
        if _V1_COLUMNS <= columns and version >= 1:
            if version > SCHEMA_VERSION:
                raise _newer(version)
            return "unmarked", version
        raise LedgerRefused("it is an SQLite database that nbcarbon did not create")

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
    """Rename a corrupt ledger (and its WAL files) out of the way; returns the new name.

    Only a file marked as nbcarbon's (:func:`marked`) is ever moved: anything else raises
    :class:`LedgerRefused` and stays where and as it is.
    """
    if not marked(path):
        raise LedgerRefused("it cannot be read as a database and nothing marks it as nbcarbon's")
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

    :meth:`submit` only enqueues. The thread starts on the first submit, gathers what comes for
    :data:`LINGER_S`, writes it in one transaction and commits at once (module docstring).
    :meth:`flush` waits until everything submitted so far is written; :meth:`close` flushes,
    stops the thread and closes the file (also run at interpreter exit). Problems are reported
    through ``notify``, once per kind.
    """

    def __init__(self, path: Path, notify: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.written = 0
        self.dropped = 0
        #: Transactions written, and whether the thread sleeps on the queue now (a record would
        #: wake it) rather than lingering: what tests and benchmarks check of the batching.
        self.batches = 0
        self.waiting = False
        #: True once the file at ``path`` proved not to be nbcarbon's: nothing more is tried.
        self.refused = False
        self.problems: list[str] = []
        self._notify = notify
        self._warned: set[str] = set()
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._urgent = threading.Event()  # set by flush() and close(): end the linger now
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
            if sys.is_finalizing():
                # A window closed by the interpreter's teardown (a generator holding one): no
                # thread can start now (Python 3.11's Thread.start() would wait for ever) and no
                # module can be imported, so the record is not written (counted as dropped).
                self.dropped += sum(1 for _ in entries)
                return
            self._start()
        for entry in entries:
            self._queue.put(entry)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything submitted before this call is written (or dropped)."""
        if self._thread is None or not self._thread.is_alive():
            return True
        done = threading.Event()
        self._queue.put(done)
        self._urgent.set()
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
            self._urgent.set()
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
        queue_, urgent = self._queue, self._urgent
        try:
            while True:
                self.waiting = True
                batch = [queue_.get()]  # asleep, at no cost, until the first record after a lull
                self.waiting = False
                while True:
                    # Gather for LINGER_S: the records of a burst of cells join one transaction,
                    # and their puts find no thread waiting on the queue to wake.
                    if not urgent.is_set():
                        urgent.wait(LINGER_S)
                    urgent.clear()
                    while True:
                        try:
                            batch.append(queue_.get_nowait())
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
                    if not entries:
                        break  # a quiet linger: the cells have stopped coming
                    batch = []
        finally:
            if self._ledger is not None:
                self._ledger.close()
                self._ledger = None

    def _write(self, entries: list[Entry]) -> None:
        import sqlite3

        if self.refused:  # someone else's file: off for the rest of the session, never retried
            self.dropped += len(entries)
            return
        for attempt in range(3):
            try:
                if self._ledger is None:
                    self._ledger = Ledger.open(self.path)
                self._ledger.write(entries)
                self.written += len(entries)
                self.batches += 1
                return
            except LedgerRefused as exc:
                self._refuse(exc, len(entries))
                return
            except sqlite3.DatabaseError as exc:
                self._drop_connection()
                if _is_corrupt(exc) and attempt == 0:
                    try:
                        if self._move_aside(exc):
                            continue
                    except LedgerRefused as refused:
                        self._refuse(refused, len(entries))
                        return
                if "locked" in str(exc) or "busy" in str(exc):
                    time.sleep(0.05 * (attempt + 1))  # another writer held the file too long
                    continue
                why = f"{exc}"
            except (OSError, LedgerError) as exc:
                self._drop_connection()
                # LedgerError says what it is without a path; an OSError's str() may hold one.
                why = str(exc) if isinstance(exc, LedgerError) else exc.strerror or type(exc).__name__
            except Exception as exc:  # noqa: BLE001 - a bug here must not kill the writer's thread
                self._drop_connection()
                why = type(exc).__name__
            self.dropped += len(entries)
            self._warn("unwritable", f"nbcarbon: the history ledger cannot be written ({why}); "
                       "history is not being kept. Footprints in notebooks are not affected "
                       f"({WHERE}; set NBCARBON_LEDGER to another file, or to off).")
            return
        self.dropped += len(entries)
        self._warn("busy", "nbcarbon: the history ledger stayed locked by another process; "
                   f"{len(entries)} record(s) were not added to the history ({WHERE}).")

    def _refuse(self, exc: LedgerRefused, n: int) -> None:
        """Leave a file that is not nbcarbon's alone for the rest of the session, with one notice."""
        self._drop_connection()
        self.refused = True
        self.dropped += n
        self._warn("refused", f"nbcarbon: the history ledger is not a file nbcarbon created "
                   f"({exc.why}); nbcarbon leaves it untouched and keeps no history this session. "
                   f"Footprints in notebooks are not affected ({WHERE}; set NBCARBON_LEDGER to a new "
                   "file, or to off).")

    def _move_aside(self, exc: BaseException) -> bool:
        """Move a corrupt ledger of ours aside; :class:`LedgerRefused` if the file is not ours."""
        try:
            move_aside(self.path)
        except LedgerRefused:
            raise
        except OSError:
            return False
        self._warn("corrupt", f"nbcarbon: the history ledger was not a readable database ({exc}); "
                   "moved it aside (its name now ends in .corrupt-<time>) and started a new one "
                   f"({WHERE}).")
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
