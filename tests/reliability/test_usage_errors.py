"""Each mistake is one line that says what would be right: no traceback, exit status 2 for a usage
error on the command line, IPython's ``UsageError`` in a notebook, and nothing run or changed.

Quotes that do not close (``%%carbon --label Bob's``), a ``--since`` before the year 1, ``--plot``
into a missing directory or without ``--compare``, a notebook asking for a kernel that is not
installed, ``-o`` into a missing directory (checked before hours of running), a ``~user`` in
``NBCARBON_LEDGER`` that does not exist, and ``nbcarbon report X | head``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from IPython.core.error import UsageError

import nbcarbon.api
from nbcarbon.cli import main
from tests.reliability.conftest import extension
from tests.reliability.test_report_inputs import notebook, record

ROOT = Path(__file__).resolve().parents[2]
NO_SUCH_USER = "~nbc-no-such-user-7f3a9/ledger.sqlite3"


def usage_error_line(err: str) -> str:
    """argparse's usage, then exactly one ``nbcarbon: error:`` line; returns that line."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
    return errors[0]


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def saved(tmp_path: Path, kernel: str | None = None, code: str = "1") -> Path:
    nb = notebook(record(), code=code)
    if kernel is not None:
        nb["metadata"]["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    return path


# -- in a notebook ------------------------------------------------------------------------------

def one_usage_error(ip, cell: str, capsys) -> str:
    result = ip.run_cell(cell)
    assert not result.success
    assert isinstance(result.error_in_exec or result.error_before_exec, UsageError), result
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "Error in callback" not in out + err, out + err
    (line,) = [ln for ln in err.splitlines() if ln.strip()]
    return line


def test_an_unclosed_quote_in_the_cell_magic_is_one_usage_line(make_shell, capsys) -> None:
    ip = make_shell()
    session = extension(ip).session
    capsys.readouterr()
    line = one_usage_error(ip, "%%carbon --label Bob's\nran = 1", capsys)
    assert "no closing quotation" in line and "\"Bob's\"" in line
    assert "ran" not in ip.user_ns and session.records == []  # as any usage error: nothing runs
    assert ip.run_cell("%%carbon --label \"Bob's\"\n6 * 7").result == 42
    assert session.records[-1].label == "Bob's"
    assert ip.run_cell("1 + 1").result == 2  # the shell is fine afterwards


@pytest.mark.parametrize("cell", ['%carbon region "SE', "%carbon '", '%carbon regions "swe'])
def test_an_unclosed_quote_in_the_line_magic_is_one_usage_line(make_shell, capsys, cell) -> None:
    ip = make_shell()
    session = extension(ip).session
    region = session.region
    capsys.readouterr()
    assert "no closing quotation" in one_usage_error(ip, cell, capsys)
    assert session.region == region


def test_an_unknown_user_in_the_ledger_path_is_one_line_everywhere(make_shell, monkeypatch,
                                                                   capsys) -> None:
    ip = make_shell()
    ip.run_cell("%unload_ext nbcarbon")
    monkeypatch.setenv("NBCARBON_LEDGER", NO_SUCH_USER)
    nbcarbon.api.close_default_session()
    capsys.readouterr()
    line = one_usage_error(ip, "%load_ext nbcarbon", capsys)
    assert "NBCARBON_LEDGER" in line and "full path, or to off" in line
    assert "nbc-no-such-user" not in line  # a notebook shows no path, not even this one
    for command in ("status", "history"):
        code, _, err = cli(capsys, command)
        assert code == 2 and "NBCARBON_LEDGER" in usage_error_line(err), command


# -- on the command line ------------------------------------------------------------------------

@pytest.mark.parametrize("since", ["999999999999d", "99999999999999w", "0001-01-01T00:00+05:00"])
def test_since_before_the_year_one_is_a_usage_error(capsys, since) -> None:
    code, _, err = cli(capsys, "history", "--since", since)
    assert code == 2 and "--since" in usage_error_line(err)


def test_plot_into_a_missing_directory_or_an_unknown_format(tmp_path: Path, capsys) -> None:
    path = saved(tmp_path)
    for plot, says in ((tmp_path / "nope" / "x.png", "does not exist"),
                       (tmp_path / "x.notanimage", "name a file ending in one of")):
        code, out, err = cli(capsys, "report", str(path), "--compare", "SE", "--plot", str(plot))
        assert code == 2 and says in usage_error_line(err) and not plot.exists()
    plot = tmp_path / "chart.png"
    code, out, err = cli(capsys, "report", str(path), "--compare", "SE", "PL", "--plot", str(plot))
    assert code == 0 and plot.read_bytes().startswith(b"\x89PNG")


def test_plot_without_compare_is_not_silently_ignored(tmp_path: Path, capsys) -> None:
    plot = tmp_path / "x.png"
    code, out, err = cli(capsys, "report", str(saved(tmp_path)), "--plot", str(plot))
    assert code == 2 and "--compare" in usage_error_line(err) and out == "" and not plot.exists()


@pytest.mark.parametrize(("kernel", "flag"), [("conda-env-ds-py", None), ("python3", "no-such-kernel")])
def test_a_kernel_that_is_not_installed_names_those_that_are(tmp_path: Path, capsys, kernel,
                                                             flag) -> None:
    path = saved(tmp_path, kernel)
    code, out, err = cli(capsys, "run", str(path), *(["--kernel", flag] if flag else []))
    line = usage_error_line(err)
    assert code == 2 and repr(flag or kernel) in line
    assert "installed: " in line and "python3" in line.split("installed: ")[1] and "--kernel" in line
    assert not (tmp_path / "nb.carbon.ipynb").exists()  # no unexecuted copy left behind


def test_an_output_that_cannot_be_written_is_refused_before_running(tmp_path: Path, capsys) -> None:
    marker = tmp_path / "ran"
    path = saved(tmp_path, "python3", code=f"open({str(marker)!r}, 'w').write('ran')")
    for output in (tmp_path / "nonexistent" / "dir" / "out.ipynb", tmp_path):
        code, out, err = cli(capsys, "run", str(path), "-o", str(output))
        assert code == 2 and "cannot write" in usage_error_line(err)
    assert not marker.exists()  # checked first: the notebook never ran, so no result was lost


def test_a_closed_pipe_ends_the_report_quietly(tmp_path: Path) -> None:
    """``nbcarbon report X | head``: 5,000 rows are far more than a pipe holds, so it breaks."""
    path = tmp_path / "big.ipynb"
    path.write_text(json.dumps(notebook(*(record(id=f"{i:032x}", label=f"cell {i}")
                                          for i in range(5000)))))
    done = subprocess.run(["bash", "-c", f'"{sys.executable}" -m nbcarbon report "{path}" | head -n 1;'
                           ' echo "status ${PIPESTATUS[0]}" >&2'],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.stdout.startswith("big.ipynb")  # the table's heading: the notebook, named once
    assert done.stderr.strip() == "status 1", done.stderr  # no traceback, no "Exception ignored"
