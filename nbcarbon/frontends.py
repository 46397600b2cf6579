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

The protocol, version 1 (comm target :data:`TARGET`, opened by the frontend; the extension's
``labextension/src/repricer.ts`` is the other side):

- frontend -> kernel, in ``comm_open`` or a message: ``{"version": 1, "holds": [record ids]}``:
  the frontend shows readouts of these records. ``{"version": 1, "drops": [ids]}``: no longer.
- kernel -> frontend: ``{"version": 1, "seq": n, "updates": [[record id, data, metadata], ...]}``
  (at most :data:`CHUNK` to a message): write ``data`` and ``metadata`` into every output whose
  ``metadata["nbcarbon"]["id"]`` is the record id.
- frontend -> kernel: ``{"version": 1, "ack": n, "applied": k}``: message ``n`` replaced ``k``
  outputs (counted in :func:`stats`; the kernel never waits for it).
"""

from __future__ import annotations

import threading

TYPE_CHECKING = False  # no ``typing`` at import (see nbcarbon/session.py)
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

TARGET = "nbcarbon.reprice"
VERSION = 1
#: Updates per comm message: ~1.2 MB of readouts, so 10,000 readouts are 20 messages, far under
#: the server's message rate limit, and no single message holds a frontend's thread for long.
CHUNK = 500
#: The most record ids kept per frontend (the session re-prices at most its last 10,000 records).
HOLDS_KEPT = 20_000


class _Frontend:
    """One open comm and the records its frontend holds."""

    def __init__(self, comm: Any) -> None:
        self.comm = comm
        self.holds: dict[str, None] = {}  # insertion-ordered set: the oldest are dropped first
        self.seq = 0


class Frontends:
    """The comms of the frontends that re-price readouts, in one kernel process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, _Frontend] = {}  # comm id -> frontend
        self._attached_to: object | None = None
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
            self._open[comm.comm_id] = frontend
            self._stats["opened"] += 1
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
        """Send each frontend the updates of the records it holds; the record ids delivered.

        A comm that fails to send (its frontend gone in a way the kernel saw) is closed and
        dropped, and what it held is not in the result, so the caller updates those readouts
        the usual way.
        """
        with self._lock:
            targets = [(f, [u for u in updates if u[0] in f.holds]) for f in self._open.values()]
        delivered: set[str] = set()
        for frontend, mine in targets:
            try:
                for start in range(0, len(mine), CHUNK):
                    chunk = mine[start:start + CHUNK]
                    frontend.seq += 1
                    frontend.comm.send({"version": VERSION, "seq": frontend.seq,
                                        "updates": [list(u) for u in chunk]})
                    delivered.update(u[0] for u in chunk)
                    with self._lock:
                        self._stats["updates_sent"] += len(chunk)
                        self._stats["messages_sent"] += 1
            except Exception:  # noqa: BLE001 - a broken comm costs its shortcut, not the re-price
                self._drop(frontend)
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
    return (f"re-pricing: {s['holds']} readout(s) held by {s['comms']} frontend(s) "
            "(nbcarbon's JupyterLab extension), updated in a few messages; the rest readout by "
            "readout")
