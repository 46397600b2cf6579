"""Frontends that re-price readouts themselves: nbcarbon's JupyterLab extension, over a comm.

Why: re-pricing (``%carbon region``, ``%carbon pue``, the dashboard's selector) redraws every
readout shown. The Jupyter protocol has no message that updates several outputs with different
contents, so without help each readout is one ``update_display_data``, and behind a Jupyter
server those must be paced (``shown.py``): 10,000 readouts take at least 10 s. A frontend that
says which readouts it holds can take their new bundles a few hundred to a message instead: the
server limits a kernel's message rate, and the byte rate of streams only. The kernel still
renders every bundle, so the notebook holds exactly what ``update_display_data`` would have put
there; only the envelope changes.

Readouts no frontend has claimed (a console, a client without the extension, readouts claimed
after the re-price began) are updated as before, by display id and paced. A claim is dropped when
its comm closes (the frontend closed it, its kernel connection changed).

Each update is sent once, on one comm, and every frontend reads it. Why: the kernel cannot tell
a live frontend from a dead one. A reloaded page never closes its comm, so the kernel keeps the
old comm and its claims; sending every comm its own updates would send them once per comm, and
every client of the kernel receives every comm message (IOPub is broadcast), so each reload
would multiply the bytes of every later re-price. Instead an update goes on the newest comm that
claims its record, and every extension applies every update message it sees on its kernel
connection, whichever comm carries it. At most :data:`FRONTENDS_KEPT` comms are kept: opening
one more closes the oldest.

The protocol, version 2 (comm target :data:`TARGET`, opened by the frontend; the extension's
``labextension/src/repricer.ts`` is the other side):

- frontend -> kernel, in ``comm_open`` or a message: ``{"version": 2, "holds": [record ids]}``:
  the frontend shows readouts of these records. ``{"version": 2, "drops": [ids]}``: no longer.
- kernel -> frontends: ``{"version": 2, "target": "nbcarbon.reprice", "seq": n, "updates":
  [[record id, data, metadata], ...]}`` (at most :data:`CHUNK` to a message, ``seq`` rising
  across the kernel's comms): every frontend writes ``data`` and ``metadata`` into every output
  whose ``metadata["nbcarbon"]["id"]`` is the record id, whichever comm carried the message.
- frontend -> kernel: ``{"version": 2, "ack": n, "applied": k}``: message ``n`` replaced ``k``
  outputs in that frontend (counted in :func:`stats`; the kernel never waits for it).

Version 1 (each comm sent its own claims' updates) is refused: its frontends' readouts are then
updated by display id, as for a client without the extension.
"""

from __future__ import annotations

import threading

TYPE_CHECKING = False  # no ``typing`` at import (see nbcarbon/session.py)
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

TARGET = "nbcarbon.reprice"
VERSION = 2
#: Updates per comm message: ~1.2 MB of readouts, so 10,000 readouts are 20 messages, far under
#: the server's message rate limit, and no single message holds a frontend's thread for long.
CHUNK = 500
#: The most record ids kept per frontend (the session re-prices at most its last 10,000 records).
HOLDS_KEPT = 20_000
#: The most comms kept open: a page reloaded many times leaves a dead comm each time, and each
#: keeps its claims. More live notebook panels than this on one kernel would close each other's.
FRONTENDS_KEPT = 32


class _Frontend:
    """One open comm and the records its frontend holds."""

    def __init__(self, comm: Any) -> None:
        self.comm = comm
        self.holds: dict[str, None] = {}  # insertion-ordered set: the oldest are dropped first


class Frontends:
    """The comms of the frontends that re-price readouts, in one kernel process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, _Frontend] = {}  # comm id -> frontend
        self._attached_to: object | None = None
        self._seq = 0  # the last update message's number, across comms
        self._stats = {"opened": 0, "closed": 0, "updates_sent": 0, "messages_sent": 0,
                       "acks": 0, "applied": 0, "refused": 0}

    @property
    def attached(self) -> bool:
        """Whether this kernel takes frontends' claims (the comm target is registered)."""
        return self._attached_to is not None

    # -- the kernel's side of the comm ----------------------------------------------------------
    def attach(self, kernel: object) -> bool:
        """Register the comm target on ``kernel`` (an ipykernel kernel): once per kernel.
        False where there is no comm manager (a terminal IPython, a kernel without comms)."""
        manager = getattr(kernel, "comm_manager", None)
        register = getattr(manager, "register_target", None)
        if register is None:
            return False
        if self._attached_to is not manager:
            register(TARGET, self._opened)
            self._attached_to = manager
        return True

    def _opened(self, comm: Any, msg: dict[str, Any]) -> None:
        frontend = _Frontend(comm)
        with self._lock:
            self._open[comm.comm_id] = frontend  # newest last: send() looks from the end
            self._stats["opened"] += 1
            oldest = list(self._open.values())[:max(0, len(self._open) - FRONTENDS_KEPT)]
        for old in oldest:
            self._drop(old)
        comm.on_msg(self._message)
        comm.on_close(self._closed)
        self._read(frontend, _data(msg))

    def _message(self, msg: dict[str, Any]) -> None:
        comm_id = msg.get("content", {}).get("comm_id")
        with self._lock:
            frontend = self._open.get(comm_id)
        if frontend is not None:
            self._read(frontend, _data(msg))

    def _closed(self, msg: dict[str, Any]) -> None:
        comm_id = msg.get("content", {}).get("comm_id")
        with self._lock:
            if self._open.pop(comm_id, None) is not None:
                self._stats["closed"] += 1

    def _read(self, frontend: _Frontend, data: object) -> None:
        """Take a frontend's claims and acknowledgements; anything else is counted and ignored
        (a newer extension's message must not break an older kernel)."""
        if not isinstance(data, dict) or data.get("version") != VERSION:
            with self._lock:
                self._stats["refused"] += 1
            return
        with self._lock:
            holds = frontend.holds
            for record_id in _ids(data.get("holds")):
                holds[record_id] = None
            for record_id in _ids(data.get("drops")):
                holds.pop(record_id, None)
            while len(holds) > HOLDS_KEPT:
                del holds[next(iter(holds))]
            applied = data.get("applied")
            if "ack" in data and isinstance(applied, int) and not isinstance(applied, bool):
                self._stats["acks"] += 1
                self._stats["applied"] += applied

    # -- re-pricing -----------------------------------------------------------------------------
    def claimed(self) -> frozenset[str]:
        """Every record id some open frontend holds."""
        with self._lock:
            if not self._open:
                return frozenset()
            return frozenset().union(*(f.holds for f in self._open.values()))

    def send(self, updates: list[tuple[str, dict[str, str], dict[str, Any]]]) -> set[str]:
        """Send each update once, on the newest comm whose frontend holds its record; the record
        ids delivered.

        Every frontend applies every update message it sees (see the module docstring), so one
        copy reaches all of them, and a dead comm's claims cost nothing extra. A comm that fails
        to send (its frontend gone in a way the kernel saw) is closed and dropped, and an older
        comm holding the same records carries them instead; what none could carry is not in the
        result, so the caller updates those readouts the usual way.
        """
        with self._lock:
            carriers = list(reversed(self._open.values()))
        delivered: set[str] = set()
        left = updates
        for frontend in carriers:
            if not left:
                break
            with self._lock:  # claims may arrive on a comm subshell meanwhile
                holds = frontend.holds
                mine = [u for u in left if u[0] in holds]
            if not mine:
                continue
            sent: set[str] = set()
            try:
                for start in range(0, len(mine), CHUNK):
                    chunk = mine[start:start + CHUNK]
                    with self._lock:
                        self._seq += 1
                        seq = self._seq
                    frontend.comm.send({"version": VERSION, "target": TARGET, "seq": seq,
                                        "updates": [list(u) for u in chunk]})
                    sent.update(u[0] for u in chunk)
                    with self._lock:
                        self._stats["updates_sent"] += len(chunk)
                        self._stats["messages_sent"] += 1
            except Exception:  # noqa: BLE001 - a broken comm costs its shortcut, not the re-price
                self._drop(frontend)
            delivered |= sent
            left = [u for u in left if u[0] not in sent]
        return delivered

    def _drop(self, frontend: _Frontend) -> None:
        with self._lock:
            if self._open.pop(frontend.comm.comm_id, None) is not None:
                self._stats["closed"] += 1
        try:
            frontend.comm.close()
        except Exception:  # noqa: BLE001 - already broken
            pass

    def stats(self) -> dict[str, int]:
        """Counts for ``%carbon status``, tests and benchmarks: comms open now, and since the
        kernel started: opened, closed, updates and messages sent, acks and outputs applied."""
        with self._lock:
            return {"comms": len(self._open),
                    "holds": sum(len(f.holds) for f in self._open.values()), **self._stats}


def _data(msg: dict[str, Any]) -> object:
    content = msg.get("content") if isinstance(msg, dict) else None
    return content.get("data") if isinstance(content, dict) else None


def _ids(value: object) -> Iterable[str]:
    if isinstance(value, list):
        return (v for v in value if isinstance(v, str))
    return ()


#: This kernel's frontends (one kernel per process).
frontends = Frontends()


def stats() -> dict[str, int]:
    """:meth:`Frontends.stats` of this process's kernel."""
    return frontends.stats()


def status_line() -> str | None:
    """How readouts are re-priced in this kernel, for ``%carbon status`` (``None`` outside one)."""
    if not frontends.attached:
        return None
    s = frontends.stats()
    if not s["comms"]:
        return ("re-pricing: readout by readout, paced (no frontend holds the readouts; "
                "nbcarbon's JupyterLab extension does)")
    held = len(frontends.claimed())  # each readout once, however many pages hold it
    return (f"re-pricing: {held} readout(s) held by {s['comms']} frontend(s) "
            "(nbcarbon's JupyterLab extension), updated in a few messages; the rest readout by "
            "readout")
