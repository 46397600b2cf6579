"""The process-wide session and ``track()``, the API for plain scripts.

One kernel has one sampler thread, so the magics and ``track()`` share one session, made on
first use from the environment (the only place, with the command line, that reads it). The
session's records also go to the history ledger (``NBCARBON_LEDGER``), wired here because only
this layer knows the notebook's name and what made each record.
"""

from __future__ import annotations

import atexit
import contextvars
import functools
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
    from typing import Any

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
            _default.outer_parent_id = _inherited_parent
            if settings.ledger is not None:
                _hook = LedgerHook(_default, settings.ledger, os.environ)
            # Registered before the ledger writer's own exit handler, so it runs after it (atexit
            # is last-in, first-out) and sees a notice the final write raised.
            atexit.register(_say_leftover_notices, _default)
        return _default


def _forget_in_child() -> None:
    """In a forked child: start from a fresh session on first use, nested in the parent's window.

    Why: the child inherits a copy of the parent's session whose sampler and ledger threads did
    not survive the fork, whose CPU-time model follows the parent's process (so the child's first
    window read nothing, and its tree held the child itself), and whose lock another thread may
    have held at the fork. The copy is dropped, not closed (its files and database connection
    are the parent's). The parent's window open at the fork measures the child's work too (the
    child is in its process tree), so the child's top-level windows are recorded as nested in it
    and counted once by the ledger's totals.
    """
    global _default, _hook, _default_lock, _inherited_parent
    old = _default
    if old is not None:
        open_ids = list(old._open)  # no lock: the parent's threads are gone, and it may be held
        _inherited_parent = open_ids[-1] if open_ids else old.outer_parent_id
    _default, _hook, _default_lock = None, None, threading.Lock()


_inherited_parent: str | None = None
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


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
    """Context manager (and decorator) measuring the block it wraps; the user's exception passes
    through unchanged.

    In IPython (a notebook cell, a terminal) the block's footprint is shown as a compact readout
    carrying its record, so a saved notebook keeps it and ``nbcarbon report`` counts it; inside a
    measured cell it is that cell's nested window, never counted twice. ``display=False`` (and
    any plain script) shows nothing.

    One tracker may be entered again before it is left (nested, from several threads or asyncio
    tasks at once, as a module-level ``cost = nbcarbon.track("fetch")`` is): each ``with`` is a
    window of its own, and each ``__exit__`` closes the window its own thread or task opened
    (the windows are kept per context, :mod:`contextvars`). ``footprint`` is the last one closed.
    """

    def __init__(self, session: Session, label: str | None, region: str | None,
                 pue: float | None, display: bool = True) -> None:
        self._session = session
        self._args = (label, region, pue)
        self._display = display
        self.footprint: Footprint | None = None
        # This tracker's windows open in the current thread or task, innermost last; and all of
        # its open windows, for an __exit__ called from another context than its __enter__.
        self._stack: contextvars.ContextVar[tuple[Window, ...]] = contextvars.ContextVar(
            "nbcarbon_track", default=())
        self._open: dict[str, Window] = {}

    def __enter__(self) -> "Tracker":
        label, region, pue = self._args
        window = self._session.begin(label, region, pue, source="track")
        self._open[window.id] = window
        self._stack.set((*self._stack.get(), window))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        stack = self._stack.get()
        if stack:
            window = stack[-1]
            self._stack.set(stack[:-1])
        elif self._open:  # left from another thread or task than the one that entered it
            window = list(self._open.values())[-1]
        else:
            raise RuntimeError("this nbcarbon.track() was left without being entered")
        self._open.pop(window.id, None)
        status = _status(exc_type, exc)
        fp = self.footprint = self._session.end(window, status)
        if sys.is_finalizing():  # a generator closed by the interpreter's teardown: no imports,
            return False  # no output (the ledger cannot take the record then: LedgerWriter.submit)
        if self._display:
            _show_compact(self._session, fp)
        for notice in self._session.take_notices():
            print(notice, file=sys.stderr)
        return False

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """``@nbcarbon.track("step")``: every call of ``func`` is a window (a coroutine
        function's from its start to its return). Generator functions are refused: their body
        runs between the caller's ``next()`` calls, so no one window is theirs."""
        import inspect

        if not callable(func):
            raise TypeError("nbcarbon.track(...) used as a decorator takes a function, "
                            f"not {type(func).__name__}")
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError(f"nbcarbon.track cannot decorate the generator function "
                            f"{func.__qualname__}: its body runs between the caller's next() "
                            "calls; measure the loop that consumes it with "
                            "'with nbcarbon.track(...):' or nbcarbon.epochs()")
        tracker = self
        if self._args[0] is None:  # named after the function it measures
            tracker = Tracker(self._session, func.__qualname__, *self._args[1:], self._display)
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def measured_coroutine(*args: Any, **kwargs: Any) -> Any:
                with tracker:
                    return await func(*args, **kwargs)

            return measured_coroutine

        @functools.wraps(func)
        def measured(*args: Any, **kwargs: Any) -> Any:
            with tracker:
                return func(*args, **kwargs)

        return measured


def _status(exc_type: type[BaseException] | None, exc: BaseException | None) -> str:
    """How a block ended, for its record: ``ok``; ``interrupted`` when it was stopped from
    outside (Ctrl-C, an asyncio task cancelled, a generator closed by its consumer); ``error``
    when it raised. ``sys.exit(0)`` is a program ending well, not an error."""
    if exc_type is None:
        return "ok"
    if issubclass(exc_type, SystemExit):
        code = getattr(exc, "code", None)
        return "ok" if code is None or code == 0 else "error"
    if issubclass(exc_type, (KeyboardInterrupt, GeneratorExit)):
        return "interrupted"
    asyncio = sys.modules.get("asyncio")  # never imported for this: only a task can be cancelled
    if asyncio is not None and issubclass(exc_type, asyncio.CancelledError):
        return "interrupted"
    return "error"


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
          display: bool = True) -> Any:
    """Measure a ``with`` block, or each call of a decorated function, in the process's session
    (shared with the magics in a kernel).

    ``display``: show a compact readout under the cell in IPython (never in plain scripts).
    ``@nbcarbon.track`` without arguments decorates too, with the function's name as the label.
    """
    if callable(label) and not isinstance(label, str):  # @nbcarbon.track, without parentheses
        return Tracker(default_session(), None, region, pue, display)(label)
    if label is not None and not isinstance(label, str):
        raise TypeError(f"nbcarbon.track()'s label must be a string, e.g. track(f'fold {{k}}'), "
                        f"not {label!r} ({type(label).__name__})")
    return Tracker(default_session(), label, region, pue, display)
