"""One small adapter per tracker, so every measure drives nbcarbon and its peers the same way.

Why adapters: each tool names the same ideas differently (a tracker, a task, an epoch, a window).
The benchmarks only need five verbs: ``start``/``stop`` (construct and start a tracker with one
open window, then close both, as a script would), and ``open``/``begin``/``end``/``close`` (a warm
tracker and its per-window calls). Each adapter uses its tool's documented public API in its
quietest offline configuration; nothing is copied from the peers.

``describe()`` says, after a run, what the tool actually measured on this machine: a peer that
found no hardware may "measure" in microseconds because it measures nothing, and a table that
hid that would mislead.

This module is imported inside the children (``_child.py``), after the timed import.
"""

from __future__ import annotations

import os
import time
from typing import Any

#: The import a user types to get the tracker (what the import-time row times).
IMPORTS = {
    "none": "pass",
    "nbcarbon": "import nbcarbon.api",  # the engine track() and the magics share
    "nbcarbon-pkg": "import nbcarbon",  # the package alone: lazy, imports nothing heavy
    # The floor under nbcarbon.api's import: the standard-library modules it imports, alone, in
    # the same order (listed by bench_import.py in BENCH_STDLIB_MODULES).
    "nbcarbon-stdlib": "for _m in __import__('os').environ['BENCH_STDLIB_MODULES'].split(','):\n"
                       "    __import__(_m)",
    # The same, then the same dataclasses as nbcarbon's records (names, fields, options; no
    # methods), from a byte-compiled module bench_import.py writes (BENCH_RECORDS_DIR): the floor
    # for any package that keeps its records in dataclasses on this Python.
    "nbcarbon-records": "for _m in __import__('os').environ['BENCH_STDLIB_MODULES'].split(','):\n"
                        "    __import__(_m)\n"
                        "__import__('sys').path.insert(0, __import__('os').environ['BENCH_RECORDS_DIR'])\n"
                        "__import__('_records_floor')",
    # nbcarbon.api in an IPython kernel's process, the way %load_ext meets it: what IPython and
    # ipykernel import (untimed, IMPORT_SETUP) is there already.
    "nbcarbon-ipython": "import nbcarbon.api",
    "nbcarbon-rapl": "import nbcarbon.api",
    "nbcarbon-bare": "import nbcarbon.api",
    "nbcarbon-cell": "import nbcarbon.api",
    "nbcarbon-rapl-cell": "import nbcarbon.api",
    "codecarbon": "from codecarbon import OfflineEmissionsTracker",
    "carbontracker": "from carbontracker.tracker import CarbonTracker",
    "zeus": "from zeus.monitor import ZeusMonitor",
}

#: Run before the timed import, untimed (a process that already holds a kernel's modules).
IMPORT_SETUP = {
    "nbcarbon-ipython": "import IPython, ipykernel.ipkernel, ipykernel.zmqshell",
}

#: What each tool calls a window, for the tables.
WINDOW_CALLS = {
    "nbcarbon": "`Session.begin()`/`end()` (the cell boundary)",
    "nbcarbon-rapl": "`Session.begin()`/`end()` on fake RAPL counters",
    "nbcarbon-bare": "`Session.begin()`/`end()` with no meters at all",
    "codecarbon": "`start_task()`/`stop_task()`",
    "carbontracker": "`epoch_start()`/`epoch_end()`",
    "zeus": "`begin_window()`/`end_window()`",
}


class Adapter:
    name = "none"

    def start(self) -> None:
        """Construct and start a tracker and open one window (what a script does first)."""

    def stop(self) -> None:
        """Close the window and stop the tracker."""

    def start_idle(self) -> None:
        """The tracker as it sits between measurements (the idle measure): for the peers, started
        with a window open (their background work does not depend on it)."""
        self.start()

    def stop_idle(self) -> None:
        self.stop()

    def open(self) -> None:
        """Construct a warm tracker for per-window calls."""
        self.start_warm()

    def start_warm(self) -> None:
        pass

    def begin(self) -> None:
        pass

    def end(self) -> Any:
        return None

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return "nothing (baseline)"


class Nbcarbon(Adapter):
    """``nbcarbon.track()`` for start/stop; the session's ``begin``/``end`` for windows."""

    name = "nbcarbon"

    def start(self) -> None:
        import nbcarbon

        self._tracker = nbcarbon.track("bench")
        self._tracker.__enter__()

    def stop(self) -> None:
        from nbcarbon.api import close_default_session, default_session

        self._tracker.__exit__(None, None, None)
        self._methods = _nbcarbon_methods(default_session())
        close_default_session()

    def start_idle(self) -> None:
        """A kernel between cells: the session started (``%load_ext``), one cell measured, no
        window open and no dashboard shown, so the sampler slows down to its idle rate."""
        from nbcarbon.api import default_session

        session = default_session()
        session.start()
        session.end(session.begin())
        self._session = session

    def stop_idle(self) -> None:
        from nbcarbon.api import close_default_session

        self._methods = _nbcarbon_methods(self._session)
        close_default_session()

    def start_warm(self) -> None:
        from nbcarbon.api import default_session

        self._session = default_session()
        self._session.start()

    def begin(self) -> None:
        self._window = self._session.begin()

    def end(self) -> Any:
        return self._session.end(self._window)

    def close(self) -> None:
        from nbcarbon.api import close_default_session

        self._methods = _nbcarbon_methods(self._session)
        close_default_session()

    def describe(self) -> str:
        return getattr(self, "_methods", "?")


class NbcarbonBare(Nbcarbon):
    """A session whose probe finds no meter: a window is the session's own bookkeeping only
    (ids, clocks, the record and its pricing), the floor under every meter's reads."""

    def start_warm(self) -> None:
        from nbcarbon.meters.probe import ProbeResult
        from nbcarbon.session import Session
        from nbcarbon.settings import Settings

        self._session = Session(Settings.from_environ(os.environ), os.environ,
                                probe_fn=lambda *args, **kwargs: ProbeResult())
        self._session.start()

    def close(self) -> None:
        self._methods = "nothing: no meters (the session's bookkeeping alone)"
        self._session.close()


def boundary_reads_us(adapter: Adapter, pairs: int) -> tuple[list[float], str]:
    """Microseconds per window of the meter reads alone (both boundaries): what the sampler
    reads at ``begin`` and ``end`` (counters, models, and the shares in share mode), without the
    window's bookkeeping; and what was read. Empty for other tools."""
    session = getattr(adapter, "_session", None)
    sampler = getattr(session, "sampler", None)
    if sampler is None or not isinstance(adapter, Nbcarbon):
        return [], ""
    shares = sampler.machine_wide and session.attribution == "share"
    out = []
    for _ in range(pairs):
        t0 = time.perf_counter()
        sampler.read_all_counted()
        if shares:
            sampler.read_shares()
        sampler.read_all_counted()
        if shares:
            sampler.read_shares()
        out.append((time.perf_counter() - t0) * 1e6)
    what = ", ".join(f"{m.channel.component} ({m.channel.method})" for m in sampler.meters)
    if shares:
        what += ", and the share meters (`/proc/stat` and the tree's CPU time)"
    return out, what


class NbcarbonInCell(Nbcarbon):
    """nbcarbon during a long measured cell: a window open, the sampler at its full rate."""

    def start_idle(self) -> None:
        self.start()

    def stop_idle(self) -> None:
        self.stop()


def _nbcarbon_methods(session: Any) -> str:
    sampler = session.sampler
    if sampler is None:
        return "?"
    return ", ".join(f"{m.channel.component}: {m.channel.method}" for m in sampler.meters)


class CodeCarbon(Adapter):
    """``OfflineEmissionsTracker``: offline (country given), no file output, errors only."""

    name = "codecarbon"

    def _make(self) -> Any:
        from codecarbon import OfflineEmissionsTracker

        return OfflineEmissionsTracker(
            country_iso_code="SWE", save_to_file=False, log_level="error", allow_multiple_runs=True
        )

    def start(self) -> None:
        self._t = self._make()
        self._t.start()

    def stop(self) -> None:
        self._energy = self._t.stop()
        self._seen = self._hardware()

    def start_warm(self) -> None:
        # Tasks are used without start(): CodeCarbon's task API pauses the periodic scheduler.
        self._t = self._make()

    def begin(self) -> None:
        self._t.start_task("bench")

    def end(self) -> Any:
        return self._t.stop_task()

    def close(self) -> None:
        self._seen = self._hardware()
        self._t.stop()

    def _hardware(self) -> str:
        hardware = getattr(self._t, "_hardware", None) or []
        return ", ".join(sorted({type(h).__name__ for h in hardware})) or "no hardware found"

    def describe(self) -> str:
        return getattr(self, "_seen", "?")


class CarbonTracker(Adapter):
    """``CarbonTracker`` with ``verbose=0`` and no log directory; one epoch is one window."""

    name = "carbontracker"

    def _make(self, epochs: int) -> Any:
        from carbontracker.tracker import CarbonTracker as Tracker

        return Tracker(epochs=epochs, verbose=0, log_dir=None)

    def start(self) -> None:
        self._t = self._make(1)
        self._t.epoch_start()

    def stop(self) -> None:
        self._seen = self._components()
        self._t.epoch_end()  # the last of its epochs: it reports and shuts down by itself
        self._t.stop()

    def start_warm(self) -> None:
        self._t = self._make(10**9)

    def begin(self) -> None:
        self._t.epoch_start()

    def end(self) -> Any:
        self._t.epoch_end()

    def close(self) -> None:
        self._seen = self._components()
        self._t.stop()

    def _components(self) -> str:
        thread = getattr(self._t, "tracker", None)
        comps = getattr(thread, "components", None) or []
        names = ", ".join(f"{c.name}" for c in comps) or "no components"
        return names + (" (tracker deleted itself after an error)" if self._t.deleted else "")

    def describe(self) -> str:
        return getattr(self, "_seen", "?")


class Zeus(Adapter):
    """``ZeusMonitor()`` with its defaults (every GPU and RAPL zone it finds)."""

    name = "zeus"

    def start(self) -> None:
        from zeus.monitor import ZeusMonitor

        self._m = ZeusMonitor()
        self._m.begin_window("bench")

    def stop(self) -> None:
        self._last = self._m.end_window("bench")

    def start_warm(self) -> None:
        from zeus.monitor import ZeusMonitor

        self._m = ZeusMonitor()

    def begin(self) -> None:
        self._m.begin_window("bench")

    def end(self) -> Any:
        self._last = self._m.end_window("bench")
        return self._last

    def describe(self) -> str:
        m = getattr(self, "_last", None)
        if m is None:
            return "?"
        parts = []
        if m.gpu_energy:
            parts.append(f"GPU {sorted(m.gpu_energy)}")
        if m.cpu_energy:
            parts.append(f"CPU RAPL {sorted(m.cpu_energy)}")
        if m.dram_energy:
            parts.append("DRAM RAPL")
        return ", ".join(parts) or "nothing: no GPU and no RAPL found (windows return time only)"


def adapter(name: str) -> Adapter:
    """The adapter for a tool name (``nbcarbon-rapl*`` is nbcarbon; its child env has the fake
    tree; ``*-cell``: idling inside a measured cell rather than between cells)."""
    os.environ.setdefault("NBCARBON_LEDGER", "off")
    return {
        "none": Adapter,
        "nbcarbon": Nbcarbon,
        "nbcarbon-pkg": Nbcarbon,
        "nbcarbon-rapl": Nbcarbon,
        "nbcarbon-bare": NbcarbonBare,
        "nbcarbon-cell": NbcarbonInCell,
        "nbcarbon-rapl-cell": NbcarbonInCell,
        "codecarbon": CodeCarbon,
        "carbontracker": CarbonTracker,
        "zeus": Zeus,
    }[name]()
