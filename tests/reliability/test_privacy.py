"""Nothing nbcarbon writes reveals the machine: every record, readout, summary and ledger row the
whole reliability suite produced (logged by ``conftest.remember``) and a full notebook run here,
with secrets planted in its environment and paths, are scanned for the hostname, the user name,
the home directory and the values of environment variables. Collected last (see conftest)."""

from __future__ import annotations

import getpass
import json
import socket
import sqlite3
from pathlib import Path

import nbcarbon
from nbcarbon.cli import main
from tests.conftest import kernel_env
from tests.fakes.powercap import FakePowercap
from tests.reliability.conftest import CANARIES, LEAKS, SCANNED, machine_secrets, remember, run_notebook


def test_a_shared_notebook_ledger_and_report_reveal_no_secret(tmp_path: Path, capsys) -> None:
    home = tmp_path / CANARIES["canary directory"]
    fake = FakePowercap(home / "powercap")
    fake.add_package(0, 20.0, dram=3.0, power_limit_w=60.0)
    ledger = home / "data" / "ledger.sqlite3"
    env = kernel_env(tmp_path, NBCARBON_POWERCAP_ROOT=str(fake.root), NBCARBON_LEDGER=str(ledger),
                     NBCARBON_INTERVAL="0.1", NBC_TEST_TOKEN=CANARIES["canary variable"],
                     JPY_SESSION_NAME=f"{home}/projects/analysis.ipynb")
    out = tmp_path / "out.ipynb"
    # The counters stand still: what is scanned is the text nbcarbon writes, not the numbers.
    run_notebook([
        "%load_ext nbcarbon",
        "%%carbon --label 'load data'\nimport time\ntime.sleep(0.2)\nsum(range(10**5))",
        "%carbon auto on",
        "x = [0] * 10**5",
        "%%carbon\nraise ValueError('boom')",
        "import nbcarbon\nwith nbcarbon.track(label='block'):\n    sum(range(10**5))",
        "%carbon auto off",
        "%carbon pue 1.2",
        "%carbon region PL",
        "%carbon summary",
        "import nbcarbon.api\nnbcarbon.api.default_ledger().flush()",
    ], env, allow_errors=True, path=out)
    rows = sqlite3.connect(ledger).execute("SELECT notebook, source, record FROM records").fetchall()
    assert rows and {r[0] for r in rows} == {"analysis.ipynb"}
    for row in rows:
        remember("ledger row", list(row))
    for fmt in ("json", "table", "markdown", "csv"):
        assert main(["report", str(out), "--format", fmt]) == 0
        remember("report output", capsys.readouterr().out)

    scanned = dict(SCANNED)
    assert scanned.get("notebook output", 0) >= 5 and scanned.get("ledger row", 0) >= 4
    assert LEAKS == [], json.dumps(LEAKS[:5], indent=1)


def test_status_in_a_notebook_names_no_directory_the_user_chose(tmp_path: Path) -> None:
    """``%carbon status`` says why the CPU is estimated; with no RAPL counters under a powercap
    directory set by the user (under their home here) it must not print that path."""
    empty = tmp_path / CANARIES["canary directory"] / "no-rapl"
    empty.mkdir(parents=True)
    env = kernel_env(tmp_path, NBCARBON_POWERCAP_ROOT=str(empty), NBCARBON_LEDGER="off")
    nb = run_notebook(["%load_ext nbcarbon", "%carbon status"], env)
    text = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert "no RAPL counters under the directory NBCARBON_POWERCAP_ROOT names" in text, text
    assert CANARIES["canary directory"] not in text
    assert LEAKS == [], json.dumps(LEAKS[:5], indent=1)


def test_the_scanner_finds_what_it_looks_for() -> None:
    secrets = machine_secrets()
    for planted in (socket.gethostname(), getpass.getuser(), str(Path.home()), *CANARIES.values()):
        assert any(p.search(f"warning: {planted}/x") for p in secrets.values()), planted
    assert not any(p.search("x.example-user-z") for w, p in secrets.items() if w == "user name")


def test_the_whole_suite_was_scanned() -> None:
    """Every record, readout, summary and ledger row the suite produced, and one made here."""
    with nbcarbon.track(label="last"):
        pass
    kinds = dict(SCANNED)
    assert kinds.get("record", 0) >= 1
    assert LEAKS == [], json.dumps(LEAKS[:5], indent=1)
