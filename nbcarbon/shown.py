"""The outputs in this kernel that carry a record, so re-pricing updates every one of them in place.

Readouts are shown by several parts (the cell hooks, ``track()``, an ``epochs()`` loop's final
line), each with its own rendering, but a region or PUE change must reach all of them. So each
part registers here what it showed (record id -> display id and how to draw it again), and one
listener on the session's re-pricing redraws them through their display ids; the saved notebook
then carries the new prices. IPython is imported only when something is shown.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from typing import Any

from . import session as session_module
from .footprint import Footprint
from .session import Session

#: ``record -> (data, metadata)`` of the ``display_data`` output that carries it.
Render = Callable[[Footprint], tuple[dict[str, str], dict[str, Any]]]

_registries: "weakref.WeakKeyDictionary[Session, Shown]" = weakref.WeakKeyDictionary()


class Shown:
    """What one session's records look like in the notebook: record id -> (display id, render)."""

    def __init__(self, session: Session) -> None:
        self._entries: dict[str, tuple[str, Render]] = {}
        self._unsubscribe = session.on_reprice(self.update)

    def show(self, fp: Footprint, render: Render, display_id: str | None = None) -> str:
        """Display ``fp`` as ``render`` draws it, and keep it for re-pricing; returns the display id."""
        from IPython.display import display

        display_id = display_id or fp.id
        data, metadata = render(fp)
        display(data, raw=True, metadata=metadata, display_id=display_id)
        self.register(fp.id, display_id, render)
        return display_id

    def register(self, record_id: str, display_id: str, render: Render) -> None:
        """Keep an output shown elsewhere (e.g. a progress bar replaced by its final line)."""
        self._entries[record_id] = (display_id, render)
        while len(self._entries) > session_module.RECORDS_KEPT:  # the session re-prices no older ones
            del self._entries[next(iter(self._entries))]

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, record_id: str) -> bool:
        return record_id in self._entries

    def update(self, changed: list[Footprint]) -> None:
        """Redraw the outputs of the re-priced records, through their display ids.

        Also runs outside any cell (the dashboard's selector is a comm message): the frontend
        applies ``update_display_data`` by display id whichever message caused it.
        """
        if not changed or not self._entries:
            return
        from IPython.display import update_display

        for fp in changed:
            entry = self._entries.get(fp.id)
            if entry is None:
                continue
            display_id, render = entry
            data, metadata = render(fp)
            update_display(data, raw=True, metadata=metadata, display_id=display_id)

    def close(self) -> None:
        self._unsubscribe()
        self._entries.clear()


def registry(session: Session) -> Shown:
    """The one :class:`Shown` of ``session`` (made on first use)."""
    found = _registries.get(session)
    if found is None:
        found = _registries[session] = Shown(session)
    return found


def in_ipython() -> bool:
    """True inside a running IPython (a Jupyter kernel or a terminal), never in a plain script.

    IPython is only looked at if something already imported it, so scripts pay nothing.
    """
    ipython = sys.modules.get("IPython")
    return ipython is not None and ipython.get_ipython() is not None


def in_kernel() -> bool:
    """True in a Jupyter kernel (where outputs are saved with the notebook)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None
