"""The outputs in this kernel that carry a record, so re-pricing updates every one of them in place.

Readouts are shown by several parts (the cell hooks, ``track()``, an ``epochs()`` loop's final
line), each with its own rendering, but a region or PUE change must reach all of them. So each
part registers here what it showed (record id -> display id and how to draw it again), and one
listener on the session's re-pricing redraws them through their display ids; the saved notebook
then carries the new prices. IPython is imported only when something is shown.

How the messages are sent. Every readout shown is a ``display_data`` message and every re-priced
one an ``update_display_data`` message: the protocol has no message that updates several outputs
with different contents. IPython's ``display``/``update_display`` flush stdout and stderr before
every message, and in ipykernel each flush is a round trip to the IOPub thread whether or not
anything was written (about 0.2 ms each, two per message). In a kernel, nbcarbon therefore
builds the very message ``ZMQDisplayPublisher.publish`` would and sends it through the same
session and socket (:class:`_Publisher`), flushing the streams only when they hold output not yet
sent (so a readout still comes after what its cell printed). Anywhere else (a terminal, a
``%%capture``, a publish hook such as an output capture) IPython's own functions are used.

Why re-pricing is paced. The Jupyter server stops forwarding IOPub messages of a kernel that sends
more than 1,000 a second averaged over 3 s (``iopub_msg_rate_limit``, ``rate_limit_window``:
"IOPub message rate exceeded"), and ZeroMQ drops what a slow client has not taken once about a
thousand are queued; either way some readouts would keep their old prices, silently. nbcarbon's
own messages are kept under :data:`MAX_MESSAGES` per :data:`WINDOW_S` (:class:`_Pacer`), so
re-pricing more than that many readouts takes about a second per 900 more: 10,000 readouts take
about 9 s, the floor any kernel has behind a Jupyter server with its default limits.

Unless the frontend holds them: nbcarbon's JupyterLab extension tells the kernel which readouts
its notebook shows (``frontends.py``), and those get their new bundles a few hundred to a comm
message, which the extension writes into the notebook. Only readouts no frontend claimed go the
paced way above.
"""

from __future__ import annotations

import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from . import session as session_module
from .footprint import Footprint
from .frontends import frontends
from .session import Session

#: ``record -> (data, metadata)`` of the ``display_data`` output that carries it.
Render = Callable[[Footprint], tuple[dict[str, str], dict[str, Any]]]

#: At most this many of nbcarbon's display messages in any :data:`WINDOW_S`: 90 % of what the
#: Jupyter server's defaults forward (1,000 a second over 3 s), leaving room for the cell's own.
MAX_MESSAGES = 2700
WINDOW_S = 3.0

_registries: "weakref.WeakKeyDictionary[Session, Shown]" = weakref.WeakKeyDictionary()


class _Pacer:
    """A sliding window over the times of the last :data:`MAX_MESSAGES` messages sent.

    :meth:`wait` returns at once until the window is full, then sleeps until the oldest message
    leaves it: bursts of up to ``MAX_MESSAGES`` go out at full speed, longer runs at
    ``MAX_MESSAGES / WINDOW_S`` a second.
    """

    def __init__(self) -> None:
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()
        #: Seconds spent waiting so far (benchmarks report it).
        self.waited_s = 0.0

    def wait(self) -> None:
        with self._lock:
            sent = self._sent
            now = time.monotonic()
            while sent and sent[0] <= now - WINDOW_S:
                sent.popleft()
            if len(sent) >= MAX_MESSAGES:
                delay = sent[0] + WINDOW_S - now
                if delay > 0:
                    time.sleep(delay)
                    self.waited_s += delay
                    now = time.monotonic()
                while sent and sent[0] <= now - WINDOW_S:
                    sent.popleft()
            sent.append(now)


_pacer = _Pacer()


class _Publisher:
    """The running ipykernel's display publisher, driven directly (see the module docstring)."""

    def __init__(self, pub: Any, session: Any, socket: Any, parent_header: Any,
                 topic: Any) -> None:
        # All four are read once by find() and kept for this output's messages: in ipykernel each
        # is a descriptor (traits, a context-variable property), read cold on every measured
        # cell, and nothing between find() and send() can change them (the same call on the same
        # thread; a flush only sends stream text). A publisher lives for one show or update,
        # never across cells, so nothing kept here can go stale.
        self.pub = pub
        self.session = session
        self.socket = socket
        self.parent_header = parent_header
        self.topic = topic

    @classmethod
    def find(cls) -> _Publisher | None:
        """The publisher, or ``None`` where IPython's functions must be used instead: outside a
        kernel, under ``%%capture`` (another publisher), with a publish hook registered, or with
        display history kept (IPython then also records each output)."""
        ipython = sys.modules.get("IPython")
        shell = _shell(ipython) if ipython is not None else None
        pub = getattr(shell, "display_pub", None)
        session = getattr(pub, "session", None)
        socket = getattr(pub, "pub_socket", None)
        if session is None or socket is None or not callable(getattr(session, "send", None)):
            return None
        try:
            if pub._hooks or getattr(pub, "store_display_history", False):  # type: ignore[union-attr]
                return None
            # the attributes publish() uses must all be there
            parent_header = pub.parent_header  # type: ignore[union-attr]
            topic = pub.topic  # type: ignore[union-attr]
        except AttributeError:
            return None
        return cls(pub, session, socket, parent_header, topic)

    def flush_streams(self, always: bool = False) -> None:
        """Send what the cell printed before this output (ipykernel's streams flush only through
        a round trip to their thread, so only when they hold something)."""
        for stream in (sys.stdout, sys.stderr):
            if always or getattr(stream, "_flush_pending", True) \
                    or getattr(stream, "_subprocess_flush_pending", False):
                stream.flush()

    def send(self, msg_type: str, data: dict[str, str], metadata: dict[str, Any],
             display_id: str) -> None:
        _pacer.wait()
        content = {"data": data, "metadata": metadata, "transient": {"display_id": display_id}}
        self.session.send(self.socket, msg_type, content, parent=self.parent_header,
                          ident=self.topic)


class Shown:
    """What one session's records look like in the notebook: record id -> (display id, render)."""

    def __init__(self, session: Session) -> None:
        self._entries: dict[str, tuple[str, Render]] = {}
        self._unsubscribe = session.on_reprice(self.update)
        #: Update messages sent by the last :meth:`update` (for tests and benchmarks).
        self.last_sent = 0
        #: Readouts the last :meth:`update` handed to frontends that hold them (comm messages).
        self.last_delivered = 0

    def show(self, fp: Footprint, render: Render, display_id: str | None = None) -> str:
        """Display ``fp`` as ``render`` draws it, and keep it for re-pricing; returns the display id."""
        display_id = display_id or fp.id
        data, metadata = render(fp)
        publisher = _Publisher.find()
        if publisher is not None:
            publisher.flush_streams()
            publisher.send("display_data", data, metadata, display_id)
        else:
            from IPython.display import display

            if in_kernel():
                _pacer.wait()
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

        The session passes only the records whose price changed; those never shown here are
        skipped. Also runs outside any cell (the dashboard's selector is a comm message): the
        frontend applies ``update_display_data`` by display id whichever message caused it.
        """
        self.last_sent = self.last_delivered = 0
        if not changed or not self._entries:
            return
        todo = [(fp, self._entries[fp.id]) for fp in changed if fp.id in self._entries]
        if not todo:
            return
        claimed = frontends.claimed()
        if claimed:
            todo = self._through_frontends(todo, claimed)
            if not todo:
                return
        publisher = _Publisher.find()
        if publisher is not None:
            publisher.flush_streams()
            for fp, (display_id, render) in todo:
                data, metadata = render(fp)
                publisher.send("update_display_data", data, metadata, display_id)
                self.last_sent += 1
            return
        if _prints_updates():
            return
        from IPython.display import update_display

        paced = in_kernel()
        for fp, (display_id, render) in todo:
            data, metadata = render(fp)
            if paced:
                _pacer.wait()
            update_display(data, raw=True, metadata=metadata, display_id=display_id)
            self.last_sent += 1

    def _through_frontends(self, todo: list[tuple[Footprint, tuple[str, Render]]],
                           claimed: frozenset[str]) -> list[tuple[Footprint, tuple[str, Render]]]:
        """Hand the readouts some frontend holds to it, a few hundred to a message
        (``frontends.py``); what is left for display-id updates. Rendered as for
        ``update_display_data``, so the frontend writes the very bundles those would carry."""
        held = []
        rest = []
        for item in todo:
            if item[0].id in claimed:
                fp, (_, render) = item
                data, metadata = render(fp)
                held.append((fp.id, data, metadata))
            else:
                rest.append(item)
        delivered = frontends.send(held)
        self.last_delivered = len(delivered)
        if len(delivered) < len(held):  # a comm failed: those go the usual way
            rest.extend(item for item in todo if item[0].id in claimed
                        and item[0].id not in delivered)
        return rest

    def close(self) -> None:
        self._unsubscribe()
        self._entries.clear()


def update_output(data: dict[str, str], metadata: dict[str, Any], display_id: str) -> None:
    """Update one output by display id the way readouts are updated (direct and paced), for the
    other outputs that carry records (``%carbon summary``)."""
    publisher = _Publisher.find()
    if publisher is not None:
        publisher.flush_streams()
        publisher.send("update_display_data", data, metadata, display_id)
        return
    if _prints_updates():
        return
    from IPython.display import update_display

    if in_kernel():
        _pacer.wait()
    update_display(data, raw=True, metadata=metadata, display_id=display_id)


def _prints_updates() -> bool:
    """True in a terminal IPython: its publisher prints an update as one more output, as nothing
    there can change in place, so re-pricing 500 readouts printed them all again. Outside a
    kernel only; a capturing publisher (``%%capture``) keeps its updates."""
    if in_kernel():
        return False
    ipython = sys.modules.get("IPython")
    shell = _shell(ipython) if ipython is not None else None
    pub = getattr(shell, "display_pub", None)
    if pub is None:
        return False
    from IPython.core.displaypub import DisplayPublisher

    return type(pub) is DisplayPublisher


def registry(session: Session) -> Shown:
    """The one :class:`Shown` of ``session`` (made on first use)."""
    found = _registries.get(session)
    if found is None:
        found = _registries[session] = Shown(session)
        # In a kernel, frontends that re-price readouts themselves may now claim them.
        kernel = _kernel()
        if kernel is not None:
            frontends.attach(kernel)
    return found


_UNSET = object()


def _shell(ipython: Any) -> Any:
    """What ``ipython.get_ipython()`` returns (``ipython``: the imported ``IPython`` module).

    Why not call it: ``IPython.get_ipython`` is a lazy module attribute, so each access runs
    ``IPython.__getattr__``, which imports ``IPython.core.getipython``, whose ``get_ipython()``
    imports ``InteractiveShell`` and asks traitlets for the singleton: ~20 us per readout in a
    kernel, on every measured cell (three import statements' machinery, run cold). The singleton
    is ``InteractiveShell._instance``, which ``get_ipython()`` returns when it is set. A
    ``get_ipython`` set on the module itself (a test's fake shell) is still called, and anything
    unusual (an instance of another class) goes through ``get_ipython()`` as before.
    """
    getter = ipython.__dict__.get("get_ipython", _UNSET)
    if getter is not _UNSET:
        return getter()
    module = sys.modules.get("IPython.core.interactiveshell")
    if module is None:  # not imported, so no shell was ever made: get_ipython() gives None
        return None
    shell_class = module.InteractiveShell
    shell = getattr(shell_class, "_instance", None)
    if shell is None or isinstance(shell, shell_class):
        return shell
    return ipython.get_ipython()


def in_ipython() -> bool:
    """True inside a running IPython (a Jupyter kernel or a terminal), never in a plain script.

    IPython is only looked at if something already imported it, so scripts pay nothing.
    """
    ipython = sys.modules.get("IPython")
    return ipython is not None and _shell(ipython) is not None


def in_kernel() -> bool:
    """True in a Jupyter kernel (where outputs are saved with the notebook)."""
    return _kernel() is not None


def _kernel() -> Any:
    """The running ipykernel kernel, or ``None`` (a terminal IPython, a script)."""
    ipython = sys.modules.get("IPython")
    shell = _shell(ipython) if ipython is not None else None
    return getattr(shell, "kernel", None)
