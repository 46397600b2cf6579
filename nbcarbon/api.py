"""The process-wide session and ``track()``, the API for plain scripts.

One kernel has one sampler thread, so the magics and ``track()`` share one session, made on
first use from the environment (the only place, with the command line, that reads it). The
session's records also go to the history ledger (``NBCARBON_LEDGER``), wired here because only
this layer knows the notebook's name and what made each record.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading

from .footprint import Footprint
from .session import Session, Window
from .settings import Settings

TYPE_CHECKING = False  # no ``typing`` at import (see nbcarbon/session.py)
if TYPE_CHECKING:  # annotations only: nothing to import when the module loads
    from collections.abc import Callable, Mapping
    from pathlib import Path
    from types import TracebackType

    from .ledger import Entry, LedgerWriter

_default: Session | None = None
_hook: "LedgerHook | None" = None
_source_override: str | None = None
_default_lock = threading.Lock()


def default_session() -> Session:
    """The process's session, created on first use from the ``NBCARBON_*`` environment."""
    global _default, _hook
    with _default_lock:
        if _default is None:
            settings = Settings.from_environ(os.environ)
            _default = Session(settings, os.environ)
            if settings.ledger is not None:
                _hook = LedgerHook(_default, settings.ledger, os.environ)
            # Registered before the ledger writer's own exit handler, so it runs after it (atexit
            # is last-in, first-out) and sees a notice the final write raised.
            atexit.register(_say_leftover_notices, _default)
        return _default


def _say_leftover_notices(session: Session) -> None:
    """At exit, print notices no window was left to show (a script's last write failing)."""
    for notice in session.take_notices():
        print(notice, file=sys.stderr)


def close_default_session() -> None:
    """Stop the default session's sampler and ledger thread (after writing what is queued);
    the next use starts a fresh session."""
    global _default, _hook
    with _default_lock:
        session, _default = _default, None
        hook, _hook = _hook, None
    if hook is not None:
        hook.close()
    if session is not None:
        atexit.unregister(_say_leftover_notices)
        _say_leftover_notices(session)
        session.close()


def default_ledger() -> "LedgerWriter | None":
    """The ledger writer of the default session (``None`` when the ledger is off or no session yet)."""
    return _hook.writer if _hook is not None else None


def set_ledger_source(source: str | None) -> None:
    """Tag every later ledger row of this process with ``source`` (``nbcarbon run`` sets "run")."""
    global _source_override
    from .ledger import SOURCES

    if source is not None and source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    _source_override = source


def current_notebook_name(environ: Mapping[str, str]) -> str | None:
    """The running notebook's base name, where the kernel can know it.

    Jupyter sets ``JPY_SESSION_NAME`` for the kernels it starts (and ipykernel copies it into
    ``__session__``); VS Code puts ``__vsc_ipynb_file__`` in the user namespace. Never a path.
    """
    from .ledger import notebook_name

    name = notebook_name(environ.get("JPY_SESSION_NAME"))
    if name:
        return name
    ipython = sys.modules.get("IPython")  # never imported here: only used if already running
    shell = ipython.get_ipython() if ipython is not None else None
    ns = getattr(shell, "user_ns", None) or {}
    for key in ("__vsc_ipynb_file__", "__session__"):
        name = notebook_name(ns.get(key))
        if name:
            return name
    return None


class LedgerHook:
    """Sends a session's new and re-priced records to a :class:`~nbcarbon.ledger.LedgerWriter`.

    Runs on the cell's path, so it only builds small entries and enqueues them; the writer's
    thread does the JSON and the SQL. Ledger problems become session notices, shown once.
    """

    def __init__(self, session: Session, path: Path, environ: Mapping[str, str]) -> None:
        from .ledger import Entry, LedgerWriter

        self._entry_type = Entry
        self.session = session
        self.environ = environ
        self.writer = LedgerWriter(path, notify=session.add_notice)
        self._unsubscribe: list[Callable[[], None]] = [
            session.on_record(self._on_record), session.on_reprice(self._on_reprice)]

    def _entry(self, fp: Footprint) -> "Entry":
        source = _source_override or self.session.source_of(fp.id) or "magic"
        return self._entry_type(fp, source, current_notebook_name(self.environ))

    def _on_record(self, fp: Footprint) -> None:
        self.writer.submit([self._entry(fp)])

    def _on_reprice(self, changed: list[Footprint]) -> None:
        if changed:
            self.writer.submit([self._entry(fp) for fp in changed])

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        self.writer.close()


class Tracker:
    """Context manager measuring the block it wraps; the user's exception passes through unchanged.

    In IPython (a notebook cell, a terminal) the block's footprint is shown as a compact readout
    carrying its record, so a saved notebook keeps it and ``nbcarbon report`` counts it; inside a
    measured cell it is that cell's nested window, never counted twice. ``display=False`` (and
    any plain script) shows nothing.
    """

    def __init__(self, session: Session, label: str | None, region: str | None,
                 pue: float | None, display: bool = True) -> None:
        self._session = session
        self._window: Window | None = None
        self._args = (label, region, pue)
        self._display = display
        self.footprint: Footprint | None = None

    def __enter__(self) -> "Tracker":
        label, region, pue = self._args
        self._window = self._session.begin(label, region, pue, source="track")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        assert self._window is not None
        if exc_type is None:
            status = "ok"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "interrupted"
        else:
            status = "error"
        self.footprint = self._session.end(self._window, status)
        if self._display:
            _show_compact(self._session, self.footprint)
        for notice in self._session.take_notices():
            print(notice, file=sys.stderr)
        return False


def _show_compact(session: Session, fp: Footprint) -> None:
    """A compact readout of ``fp`` in IPython (re-priced with the rest); nothing in a script."""
    from . import shown

    if not shown.in_ipython():
        return
    from . import readout

    try:
        shown.registry(session).show(fp, lambda record: readout.mimebundle(record, True))
    except Exception as exc:  # noqa: BLE001 - the block has run and its record is kept
        print(f"nbcarbon: the footprint of {fp.label or 'this block'} could not be shown "
              f"({type(exc).__name__}); it is kept in the session and the ledger.", file=sys.stderr)


def track(label: str | None = None, region: str | None = None, pue: float | None = None,
          display: bool = True) -> Tracker:
    """Measure a ``with`` block in the process's session (shared with the magics in a kernel).

    ``display``: show a compact readout under the cell in IPython (never in plain scripts).
    """
    return Tracker(default_session(), label, region, pue, display)
