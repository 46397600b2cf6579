"""Live data costs nothing when off: no import of the live package, no thread, no socket."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import socket, sys, threading
def refuse(*a, **k):
    raise AssertionError("network used")
socket.socket.connect = refuse
socket.getaddrinfo = refuse
import nbcarbon
from nbcarbon.session import Session
from nbcarbon.settings import Settings
s = Session(Settings(ledger=None), {"NBCARBON_REGION": "GB"})
assert s.pricer is None
assert not any(m.startswith("nbcarbon.live") for m in sys.modules), sorted(sys.modules)
s2 = Session(Settings(ledger=None, live=True), {"NBCARBON_REGION": "GB"})
assert s2.pricer is not None  # installed, but nothing asked yet
assert "matplotlib" not in sys.modules
assert [t.name for t in threading.enumerate() if t.name.startswith("nbcarbon-live")] == []
print("ok")
"""


def test_nothing_is_imported_or_fetched_until_asked() -> None:
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
