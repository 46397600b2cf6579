"""Fixtures of the reliability suite: shells over sessions on fake hardware, and an artefact log.

Every record, readout, summary and ledger row the suite produces is remembered in
:data:`ARTEFACTS`, so ``test_privacy`` (collected last) can scan all of them for the machine's
secrets. Hardware is faked only at its boundary: a powercap tree of real files, a fake NVML.
"""

from __future__ import annotations

import builtins
import getpass
import json
import os
import re
import socket
import stat
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import nbcarbon.api
from nbcarbon import intensity, ledger, readout, summary
from nbcarbon.session import Session
from nbcarbon.settings import Settings
from tests.conftest import run_cells
from tests.fakes.nvml import FakeNvml

#: Variables whose values a record shows by design: the region and what chose it (README).
REGION_VARIABLES = frozenset({"NBCARBON_REGION", "TZ", *(v for v, _ in intensity.CLOUD_VARIABLES)})


def machine_secrets() -> dict[str, re.Pattern[str]]:
    """What no record may contain: hostname, user name, home directory, environment values."""
    found = {"hostname": socket.gethostname(), "user name": getpass.getuser(),
             "home directory": str(Path.home())}
    found.update((f"${k}", v) for k, v in os.environ.items()
                 if k not in REGION_VARIABLES and len(v.strip()) >= 6)
    found.update(CANARIES)
    # Names match as whole words ("root" the user, not "root" in a sentence about permissions).
    return {what: re.compile(rf"(?<![\w.-]){re.escape(v)}(?![\w-])" if what in ("hostname", "user name")
                             else re.escape(v)) for what, v in found.items() if v}


#: Secrets the suite plants itself (in kernels' environments and paths), whatever CI's machine has.
CANARIES = {"canary variable": "nbc-canary-5f1d2a-secret", "canary directory": "nbc-canary-home"}
#: How many artefacts of each kind were scanned, and every secret found in one.
SCANNED: Counter[str] = Counter()
LEAKS: list[tuple[str, str, str]] = []
_SECRETS: dict[str, re.Pattern[str]] = {}


def remember(where: str, value: Any) -> None:
    """Scan one artefact now (keeping 20,000 records of a long session would skew its memory test)."""
    if not _SECRETS:
        _SECRETS.update(machine_secrets())
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    SCANNED[where] += 1
    for what, pattern in _SECRETS.items():
        m = pattern.search(text)
        if m:
            LEAKS.append((where, what, text[max(0, m.start() - 80):m.end() + 80]))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The privacy scan runs after everything else, so it sees what the whole suite produced."""
    items.sort(key=lambda item: item.module.__name__.endswith("test_privacy") if item.module else False)


@pytest.fixture(autouse=True)
def _log_artefacts(monkeypatch: pytest.MonkeyPatch) -> None:
    end, rmb, smb, write = Session.end, readout.mimebundle, summary.mimebundle, ledger.Ledger.write

    def logged_end(self: Session, *args: Any, **kwargs: Any) -> Any:
        fp = end(self, *args, **kwargs)
        remember("record", fp.to_dict())
        return fp

    def logged_readout(*args: Any, **kwargs: Any) -> Any:
        data, metadata = rmb(*args, **kwargs)
        remember("readout", data)
        return data, metadata

    def logged_summary(*args: Any, **kwargs: Any) -> Any:
        data, metadata = smb(*args, **kwargs)
        remember("summary", [data, metadata])
        return data, metadata

    def logged_write(self: ledger.Ledger, entries: Any) -> None:
        write(self, entries)
        for e in entries:
            remember("ledger row", [e.record.to_dict(), ledger.notebook_name(e.notebook), e.source])

    monkeypatch.setattr(Session, "end", logged_end)
    monkeypatch.setattr(readout, "mimebundle", logged_readout)
    monkeypatch.setattr(summary, "mimebundle", logged_summary)
    monkeypatch.setattr(ledger.Ledger, "write", logged_write)


def run_notebook(cells: list[str], env: dict[str, str], **kwargs: Any) -> Any:
    """:func:`tests.conftest.run_cells`, remembering every output of the saved notebook.

    Every output, not only nbcarbon's readouts: a notice on a cell's stderr (the ledger's, a
    meter's) is saved in the notebook and shared with it just the same.
    """
    nb = run_cells(cells, env, **kwargs)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if "nbcarbon" in output.get("metadata", {}):
                remember("notebook output", [output.get("data"), output["metadata"]])
            else:
                kind = output.get("output_type", "?")
                remember(f"notebook {'stream' if kind == 'stream' else 'other output'}",
                         {k: v for k, v in output.items() if k != "execution_count"})
    return nb


def fake_session(root: Path, nvml: FakeNvml | None = None, interval_s: float = 0.05,
                 **kwargs: Any) -> Session:
    """A session on a fake powercap tree (empty: models) and a fake NVML (default: no GPU)."""
    from tests.fakes.procstat import quiet_stat

    settings = Settings(interval_s=interval_s, powercap_root=root, ledger=None,
                        proc_stat=quiet_stat(root.parent))
    return Session(settings, {"NBCARBON_REGION": "SE"}, nvml=nvml or FakeNvml(gpus=[]), **kwargs)


@pytest.fixture
def make_shell(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """``make_shell(session=None)``: an InteractiveShell with nbcarbon loaded over ``session``.

    On teardown the extension is unloaded and the thread count must be back where it was.
    """
    from IPython.core.interactiveshell import InteractiveShell

    for name in ("NBCARBON_PUE", "NBCARBON_INTERVAL", "NBCARBON_POWERCAP_ROOT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NBCARBON_LEDGER", "off")
    monkeypatch.setenv("NBCARBON_REGION", "SE")
    nbcarbon.api.close_default_session()
    made: list[Any] = []
    threads_before: list[int] = []

    def make(session: Session | None = None) -> Any:
        if session is not None:
            nbcarbon.api._default = session
        ip = InteractiveShell.instance()
        if not threads_before:
            threads_before.append(threading.active_count() - _fake_threads())
        ip.run_cell("%load_ext nbcarbon")
        made.append(ip)
        return ip

    yield make
    for ip in made:
        ip.run_cell("%unload_ext nbcarbon")
    nbcarbon.api.close_default_session()
    if threads_before:  # %unload_ext stopped every thread nbcarbon started
        assert threading.active_count() - _fake_threads() <= threads_before[0]
    InteractiveShell.clear_instance()


def _fake_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "fake-powercap")


def extension(ip: Any) -> Any:
    from nbcarbon.magics import _extensions

    return _extensions[id(ip)]


@pytest.fixture
def kernfs_permissions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files with no read bit refuse to open, as sysfs does, even when the tests run as root."""
    from nbcarbon.meters import rapl

    real_open = builtins.open

    def sysfs_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            mode = os.stat(file).st_mode
        except (OSError, TypeError):
            mode = stat.S_IRUSR
        if stat.S_ISREG(mode) and not mode & (stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(rapl, "open", sysfs_open, raising=False)
