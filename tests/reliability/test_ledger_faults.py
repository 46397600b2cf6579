"""The ledger never costs a cell: a corrupt file, a read-only place and a full disk each give one
warning, the cell's value is intact, and rows committed before the fault are kept.

(A kernel killed mid-write: ``tests/test_ledger.py::test_kernel_killed_mid_cell_keeps_the_earlier_records``;
a corrupt file at the writer level: ``test_corrupt_file_is_moved_aside_with_one_warning``.)
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import nbcarbon.api
from nbcarbon.ledger import Ledger
from tests.reliability.conftest import extension

ROOT = Path(__file__).resolve().parents[2]


def cells_with_ledger(make_shell, monkeypatch, path: Path, capsys) -> tuple[object, str]:
    monkeypatch.setenv("NBCARBON_LEDGER", str(path))
    ip = make_shell()
    monkeypatch.setenv("NBCARBON_LEDGER", str(path))
    values = [ip.run_cell(f"%%carbon --label c{i}\n{i} * 7").result for i in range(3)]
    assert values == [0, 7, 14]
    writer = nbcarbon.api.default_ledger()
    assert writer is not None
    writer.flush()
    ip.run_cell("%%carbon\n1")  # notices from the writer's thread are shown with the next readout
    return ip, capsys.readouterr().err


def test_corrupt_ledger_in_a_notebook_session(tmp_path: Path, make_shell, monkeypatch, capsys) -> None:
    from tests.reliability.test_ledger_ownership import corrupt_marked_ledger

    path = tmp_path / "ledger.sqlite3"
    corrupt_marked_ledger(path)  # a ledger nbcarbon made, damaged (any other file is left alone)
    monkeypatch.setenv("NBCARBON_LEDGER", str(path))
    nbcarbon.api.close_default_session()
    ip, err = cells_with_ledger(make_shell, monkeypatch, path, capsys)
    assert err.count("was not a readable database") == 1
    assert list(tmp_path.glob("ledger.sqlite3.corrupt-*"))
    nbcarbon.api.default_ledger().flush()
    ledger = Ledger.open(path, create=False)
    assert {r["record"]["label"] for r in ledger.rows()} >= {"c0", "c1", "c2"}
    ledger.close()
    assert len(extension(ip).session.records) == 4


@pytest.mark.parametrize("place", ["read-only filesystem", "read-only directory"])
def test_read_only_place(tmp_path: Path, make_shell, monkeypatch, capsys, place: str) -> None:
    if place == "read-only filesystem":
        path = Path("/proc/nbcarbon-test/ledger.sqlite3")  # procfs refuses new files, even to root
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into a 0o555 directory; the procfs case covers root")
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        path = ro / "ledger.sqlite3"
    nbcarbon.api.close_default_session()
    ip, err = cells_with_ledger(make_shell, monkeypatch, path, capsys)
    assert err.count("cannot be written") == 1
    assert "history is not being kept" in err
    assert len(extension(ip).session.records) == 4


@pytest.mark.parametrize("linger_s", [None, 2.0], ids=["during", "after-the-last-window"])
def test_full_disk_keeps_what_was_committed(tmp_path: Path, linger_s: float | None) -> None:
    """A file-size limit (RLIMIT_FSIZE) makes every write past it fail, as a full disk does.

    The writer's thread may fail while windows still run (their exit shows the notice) or only
    after the last one (a long linger forces that order): the notice is then said at exit.
    """
    path = tmp_path / "ledger.sqlite3"
    script = textwrap.dedent(f"""
        import os, resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        os.environ.update(NBCARBON_LEDGER={str(path)!r}, NBCARBON_REGION="SE")
        import nbcarbon, nbcarbon.api
        for i in range(3):
            with nbcarbon.track(f"before {{i}}"):
                pass
        nbcarbon.api.default_ledger().flush()
        limit = max(os.path.getsize({str(path)!r}), os.path.getsize({str(path)!r} + "-wal")) + 8192
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        if {linger_s!r} is not None:
            import nbcarbon.ledger
            nbcarbon.ledger.LINGER_S = {linger_s!r}
        values = []
        for i in range(300):
            with nbcarbon.track("x" * 500) as t:
                values.append(i * i)
            assert t.footprint is not None and t.footprint.label == "x" * 500
        writer = nbcarbon.api.default_ledger()
        writer.flush()
        assert values == [i * i for i in range(300)]
        print("RESULT", writer.written, writer.dropped)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    written, dropped = map(int, done.stdout.split("RESULT")[1].split())
    assert dropped > 0 and written >= 3
    assert done.stderr.count("cannot be written") == 1, done.stderr
    conn = sqlite3.connect(path)
    labels = [r[0] for r in conn.execute("SELECT json_extract(record, '$.label') FROM records")]
    conn.close()
    assert {"before 0", "before 1", "before 2"} <= set(labels)
    assert len(labels) == written
