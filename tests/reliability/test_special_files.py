"""``nbcarbon report`` and ``nbcarbon run`` read only regular files, up to a size limit (1 GiB,
``NBCARBON_MAX_NOTEBOOK_MB``): a FIFO never blocks them, ``/dev/zero`` never fills memory; each
is one clear line. Inside a notebook, one bad record (a 5,000-digit integer, 100,000 levels of
nesting) spoils only itself: the valid records beside it are reported.

Commands that could hang or exhaust memory before the fix run in a subprocess with a timeout
and an address-space limit, so a regression fails the test instead of the machine.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from nbcarbon.cli import main
from nbcarbon.notebook import load_records
from tests.reliability.test_report_inputs import notebook, record

ROOT = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 1536 * 1024 * 1024


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def nbcarbon(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nbcarbon", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, preexec_fn=_limit_memory,
                          env={**os.environ, "NBCARBON_LEDGER": "off", **(env or {})})


def one_line(proc: subprocess.CompletedProcess[str], says: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], proc.stderr[-2000:]


@pytest.mark.parametrize("command", ["report", "run"])
def test_a_fifo_is_refused_at_once(tmp_path: Path, command: str) -> None:
    fifo = tmp_path / "nb.ipynb"
    os.mkfifo(fifo)
    one_line(nbcarbon(command, str(fifo)), "cannot read: it is a FIFO (named pipe), not a notebook file")
    assert not (tmp_path / "nb.carbon.ipynb").exists()


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
@pytest.mark.parametrize("command", ["report", "run"])
def test_a_device_is_refused_without_reading_it(command: str, device: str) -> None:
    if not Path(device).exists():
        pytest.skip(f"no {device} here")
    one_line(nbcarbon(command, device), "cannot read: it is a character device, not a notebook file")


def test_a_file_over_the_size_limit_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "big.ipynb"
    nb = notebook(record())
    nb["metadata"]["padding"] = "x" * (3 * 1024 * 1024)
    path.write_text(json.dumps(nb))
    proc = nbcarbon("report", str(path), env={"NBCARBON_MAX_NOTEBOOK_MB": "2"})
    one_line(proc, "is more than the 2 MiB nbcarbon reads as a notebook")
    assert "NBCARBON_MAX_NOTEBOOK_MB" in proc.stderr
    assert nbcarbon("report", str(path), env={"NBCARBON_MAX_NOTEBOOK_MB": "4"}).returncode == 0
    bad = nbcarbon("report", str(path), env={"NBCARBON_MAX_NOTEBOOK_MB": "lots"})
    assert bad.returncode == 2 and "NBCARBON_MAX_NOTEBOOK_MB must be a number" in bad.stderr


def test_the_default_limit_is_far_above_any_real_notebook() -> None:
    from nbcarbon.settings import max_notebook_bytes

    assert max_notebook_bytes({}) == 1024 ** 3


def _write_with_bad_records(path: Path, *bad: str) -> None:
    """A notebook whose records are valid except ``bad``, raw JSON text spliced in."""
    good = [json.dumps(record(id=f"{i:032x}", label=f"good {i}")) for i in range(2)]
    outputs = [f'{{"output_type": "display_data", "data": {{}}, "metadata": {{"nbcarbon": {r}}}}}'
               for r in (good[0], *bad, good[1])]
    path.write_text('{"cells": [{"cell_type": "code", "source": "", "metadata": {}, "execution_count": 1, '
                    f'"outputs": [{", ".join(outputs)}]}}], "metadata": {{}}, "nbformat": 4, '
                    '"nbformat_minor": 5}')


@pytest.mark.parametrize(("bad", "says"), [
    (json.dumps(record(id="c" * 32))[:-1] + ', "duration_s": 1' + "0" * 5000 + "}",
     "'duration_s' must be a finite number"),
    (json.dumps(record(id="d" * 32))[:-1] + ', "extra": ' + "[" * 100_000 + "]" * 100_000 + "}",
     "nested more than"),
    ('{"nested": ' + "{\"a\": " * 100_000 + "1" + "}" * 100_000 + "}", "nested more than"),
])
def test_one_bad_record_never_hides_the_valid_ones(tmp_path: Path, capsys, bad: str, says: str) -> None:
    path = tmp_path / "nb.ipynb"
    _write_with_bad_records(path, bad)
    code = main(["report", str(path), "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 1 and "not valid JSON" not in err and "Traceback" not in err
    assert [c["cell"] for c in json.loads(out)["cells"]] == ["good 0", "good 1"]
    (line,) = err.strip().splitlines()
    assert "skipped 1 record(s)" in line and says in line and len(line) < 400


def test_a_huge_number_outside_the_records_spoils_nothing(tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    nb = json.dumps(notebook(record()))
    path.write_text(nb[:-1] + ', "widget_state": {"n": 1' + "2" * 5000 + ', "deep": '
                    + "[" * 100_000 + "]" * 100_000 + "}}")
    found = load_records(path)
    assert [fp.label for fp in found.records] == ["fit"] and found.problems == []


def test_text_that_is_not_json_is_still_not_json(tmp_path: Path, capsys) -> None:
    """The parser that copes with depth is as strict as ``json`` about everything else."""
    path = tmp_path / "nb.ipynb"
    for text in ('{"cells": [' + "[" * 100_000 + "]" * 99_999 + "]",
                 '{"cells": [' + "[" * 100_000 + "1 2" + "]" * 100_000 + "]}"):
        path.write_text(text)
        assert main(["report", str(path)]) == 1
        assert "not a notebook: the file is not valid JSON" in capsys.readouterr().err
