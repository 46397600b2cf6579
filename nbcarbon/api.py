"""The process-wide session and ``track()``, the API for plain scripts.

One kernel has one sampler thread, so the magics and ``track()`` share one session, made on
first use from the environment (the only place, with the command line, that reads it).
"""

from __future__ import annotations

import os
import sys
import threading
from types import TracebackType

from .footprint import Footprint
from .session import Session, Window
from .settings import Settings

_default: Session | None = None
_default_lock = threading.Lock()


def default_session() -> Session:
    """The process's session, created on first use from the ``NBCARBON_*`` environment."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Session(Settings.from_environ(os.environ), os.environ)
        return _default


def close_default_session() -> None:
    """Stop the default session's sampler; the next use starts a fresh session."""
    global _default
    with _default_lock:
        session, _default = _default, None
    if session is not None:
        session.close()


class Tracker:
    """Context manager measuring the block it wraps; the user's exception passes through unchanged."""

    def __init__(self, session: Session, label: str | None, region: str | None,
                 pue: float | None) -> None:
        self._session = session
        self._window: Window | None = None
        self._args = (label, region, pue)
        self.footprint: Footprint | None = None

    def __enter__(self) -> "Tracker":
        label, region, pue = self._args
        self._window = self._session.begin(label, region, pue)
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
        for notice in self._session.take_notices():
            print(notice, file=sys.stderr)
        return False


def track(label: str | None = None, region: str | None = None, pue: float | None = None) -> Tracker:
    """Measure a ``with`` block in the process's session (shared with the magics in a kernel)."""
    return Tracker(default_session(), label, region, pue)
