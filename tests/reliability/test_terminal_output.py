"""Labels, region codes and file names are the user's text: whatever nbcarbon prints shows them and
never lets them act. Escape sequences (``\\x1b]0;TITLE\\x07`` retitles a terminal, ``\\x1b[2J``
clears it), bidi overrides (U+202E reverses what follows), Markdown and HTML syntax and
spreadsheet formulas are shown as text in every terminal, Markdown, HTML and CSV output, while
records and ``--format json`` keep them exactly as given. Errors about such input are one line.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
import shlex
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

import nbcarbon
from nbcarbon import readout, report, summary
from nbcarbon.cli import main
from nbcarbon.ledger import Entry, Ledger
from tests.reliability.conftest import extension, remember
from tests.reliability.test_report_inputs import notebook, record

#: What a terminal, a Markdown renderer or a browser acts on. Newlines between lines are fine.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
                 "\u2028\u2029\ud800-\udfff]")
TITLE, CLEAR, RLO = "\x1b]0;TITLE\x07", "\x1b[2J", "\u202e"


def assert_shows_no_controls(text: str, where: str = "") -> None:
    m = RAW.search(text)
    assert m is None, f"{where}: raw {m.group()!r} in {text[max(0, m.start() - 60):m.end() + 60]!r}"


def cli(*argv: str) -> int:
    """``nbcarbon ARGV``'s exit status (argparse's own errors exit through SystemExit)."""
    try:
        return main(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)


def footprint(label: str | None):
    with nbcarbon.track(label=label, display=False) as t:
        pass
    return t.footprint


def saved(tmp_path: Path, name: str, *labels: str) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(notebook(*(record(id=f"{i:032x}", label=label)
                                          for i, label in enumerate(labels)))))
    return path


# -- examples -------------------------------------------------------------------------------------

def test_report_shows_escape_sequences_and_bidi_overrides_as_text(tmp_path: Path, capsys) -> None:
    label = f"{TITLE}fit{CLEAR} {RLO}txt.exe"
    path = saved(tmp_path, f"nb{CLEAR}{RLO}.ipynb", label)
    for fmt in ("table", "markdown", "csv"):
        assert main(["report", str(path), "--format", fmt]) == 0
        out, err = capsys.readouterr()
        remember("report output", out)
        assert_shows_no_controls(out + err, fmt)
        shown = re.sub(r"\\([\\`*_\[\]|~])", r"\1", out) if fmt == "markdown" else out
        assert "\\x1b]0;TITLE\\x07fit\\x1b[2J \\u202etxt.exe" in shown
        assert "nb\\x1b[2J\\u202e.ipynb" in shown
    assert main(["report", str(path), "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert_shows_no_controls(out, "json")
    assert json.loads(out)["cells"][0]["cell"] == label  # data: exactly as recorded


def test_errors_name_files_with_their_controls_escaped(tmp_path: Path, capsys) -> None:
    missing = tmp_path / f"gone{TITLE}{RLO}.ipynb"
    assert main(["report", str(missing)]) == 1
    err = capsys.readouterr().err
    assert_shows_no_controls(err)
    assert len(err.strip().splitlines()) == 1 and "cannot read" in err


def test_history_shows_notebook_names_as_text(tmp_path: Path, monkeypatch, capsys) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger = Ledger.open(path)
    ledger.write([Entry(footprint("x"), "magic", f"evil{TITLE}{CLEAR}{RLO}.ipynb"),
                  Entry(footprint("y"), "magic", "=HYPERLINK(1).ipynb")])
    ledger.close()
    monkeypatch.setenv("NBCARBON_LEDGER", str(path))
    for fmt in ("table", "markdown", "csv", "json"):
        assert main(["history", "--format", fmt]) == 0
        out, err = capsys.readouterr()
        assert_shows_no_controls(out + err, fmt)
        assert ("\\u001b" if fmt == "json" else "\\x1b") in out  # shown, as text
        if fmt == "json":
            groups = json.loads(out)["groups"]
            assert {g["notebook"] for g in groups} == {f"evil{TITLE}{CLEAR}{RLO}.ipynb",
                                                       "=HYPERLINK(1).ipynb"}
        if fmt == "csv":
            keys = [row[0] for row in csv.reader(io.StringIO(out))]
            assert "'=HYPERLINK(1).ipynb" in keys


@pytest.mark.parametrize("start", ["=", "+", "-", "@"])
def test_csv_cells_that_a_spreadsheet_would_run_are_text(tmp_path: Path, capsys, start: str) -> None:
    label = f"{start}HYPERLINK(\"http://example.invalid\",\"x\")"
    path = saved(tmp_path, f"{start}nb.ipynb", label)
    assert main(["report", str(path), "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    header, cell = rows[0], rows[1]
    assert cell[header.index("cell")] == "'" + label
    assert cell[header.index("notebook")] == f"'{start}nb.ipynb"
    assert not any(value.startswith(("=", "+", "-", "@")) for row in rows[1:] for value in row)


def test_markdown_shows_links_emphasis_and_html_as_text(tmp_path: Path) -> None:
    fp = footprint("[click](javascript:alert(1)) *bold* `code` <b>x</b> a|b")
    out = report.render(report.rows("nb", [fp]), "markdown")
    line = out.splitlines()[2]
    assert "\\[click\\](javascript:alert(1))" in line and "\\*bold\\*" in line
    assert "\\`code\\`" in line and "&lt;b&gt;" in line and "a\\|b" in line
    # the label's "|" did not add a column (six: region and method are said under the table)
    assert line.count(" | ") == 5


def test_readout_summary_and_session_tables_show_controls_as_text() -> None:
    fp = footprint(f"{TITLE}a\nb{RLO}")
    assert fp.label == f"{TITLE}a\nb{RLO}"  # the record keeps it exactly
    for compact in (False, True):
        data, _ = readout.mimebundle(fp, compact)
        assert_shows_no_controls(data["text/plain"].replace("\n", " "), "readout text")
        assert_shows_no_controls(data["text/html"], "readout html")
    data, _ = summary.mimebundle([fp], fp.region, fp.pue, "0")
    assert_shows_no_controls(data["text/plain"].replace("\n", " "), "summary text")
    assert_shows_no_controls(data["text/html"], "summary html")
    assert "\\x1b]0;TITLE\\x07a b\\u202e" in data["text/plain"]


def test_a_label_is_cut_at_80_characters_without_splitting_an_escape() -> None:
    shown = readout.shown_label("x" * 75 + "\x1b" * 10)
    assert len(shown) <= readout.LABEL_SHOWN and shown.endswith("…")
    assert re.fullmatch(r"x{75}(\\x1b)*…", shown), shown


def test_a_mathtext_label_is_drawn_literally(make_shell) -> None:
    """``$\\notacommand{x}$`` in a label used to make ``%carbon plot cells`` fail to draw."""
    import matplotlib

    matplotlib.use("Agg")
    ip = make_shell()
    label = r"$\notacommand{x}$"
    assert ip.run_cell(f"%%carbon --label '{label}'\n1").success
    fig = ip.run_cell("%carbon plot cells").result
    fig.savefig(io.BytesIO(), format="png")  # as the inline backend shows it; raised ValueError before
    assert label in [t.get_text() for t in fig.axes[0].get_xticklabels()]


# -- fuzzing --------------------------------------------------------------------------------------

NASTY = st.sampled_from([TITLE, CLEAR, RLO, "\u2066", "\u200f", "\x00", "\x07", "\x7f", "\x9b",
                         "\r", "\n", "\t", "\x0b", "\u2028", "\ud800", "\udce9", "'", '"', "\\", "`", "$",
                         "|", "*", "_", "[x](y)", "<script>", "&amp;", "=", "+", "-", "@", "é",
                         "↳", " ", "--", "--label"])
TEXT = st.lists(st.one_of(NASTY, st.text(max_size=4)), max_size=8).map("".join)
#: What fits on a magic's first line: a line break ends it; a NUL byte or a lone surrogate is
#: no Python source (IPython itself cannot compile the cell), and no frontend can send one.
LINE_TEXT = TEXT.map(lambda t: "".join(ch for ch in t if ch not in "\x00\r\n\x0b\x0c\x1c\x1d\x1e"
                                       "\x85\u2028\u2029" and not "\ud800" <= ch <= "\udfff"))
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def usage_error(err: str) -> None:
    """argparse's usage (a few lines) and then the one line saying what is wrong."""
    lines = err.strip().splitlines()
    assert lines[0].startswith("usage: nbcarbon") and "error:" in lines[-1], err
    assert all(line.startswith(" ") for line in lines[1:-1]), err


def one_line_errors(err: str) -> None:
    assert "Traceback" not in err and "Error in callback" not in err, err
    assert_shows_no_controls(err, "stderr")


@FUZZ
@given(label=TEXT, name=TEXT, region=TEXT)
def test_fuzz_readout_summary_and_report_formats(tmp_path_factory, capsys, label, name, region) -> None:
    fp = footprint(label)
    assert fp.label == label
    for compact in (False, True):
        data, metadata = readout.mimebundle(fp, compact)
        assert metadata["nbcarbon"]["label"] == label
        assert_shows_no_controls(data["text/plain"].replace("\n", " "), "readout")
        assert_shows_no_controls(data["text/html"], "readout html")
    data, _ = summary.mimebundle([fp], fp.region, fp.pue, "0")
    assert_shows_no_controls(data["text/plain"].replace("\n", " ") + data["text/html"], "summary")
    rows = report.rows(name, [fp])
    for fmt in ("table", "markdown", "csv"):
        out = report.render(rows, fmt)
        assert_shows_no_controls(out, fmt)
        if fmt != "csv":  # the label adds no line: as many as for a plain one
            plain = report.rows(name, [dataclasses.replace(fp, label="plain")])
            assert len(out.splitlines()) == len(report.render(plain, fmt).splitlines())
    assert json.loads(report.render(rows, "json"))["cells"][0]["cell"] == label

    directory = tmp_path_factory.mktemp("fuzz")
    file_name = "".join(ch for ch in name if ch not in "/\x00")[:100] or "x"
    file_name = file_name if file_name not in (".", "..") else "x"
    try:  # "\udce9" is the byte 0xe9 of a file name that is not UTF-8; "\ud800" is no name at all
        os.fsencode(file_name)
    except UnicodeEncodeError:
        file_name = file_name.encode("utf-8", "replace").decode()
    path = saved(directory, file_name, label)
    for fmt in ("table", "markdown", "csv", "json"):
        assert main(["report", str(path), "--format", fmt]) == 0
        out, err = capsys.readouterr()
        assert_shows_no_controls(out + err, fmt)
    code = cli("report", str(path), f"--region={region}")
    out, err = capsys.readouterr()
    assert_shows_no_controls(out + err, "report --region")
    one_line_errors(err)
    if code == 2:  # argparse's usage, then the one line that says what is wrong
        usage_error(err)
    else:
        assert code == 0 and not err
    code = main(["report", str(directory / (file_name + "-missing"))])
    out, err = capsys.readouterr()
    assert code == 1 and len(err.strip().splitlines()) == 1
    one_line_errors(err)


@FUZZ
@given(name=TEXT, label=TEXT)
def test_fuzz_history(tmp_path_factory, monkeypatch, capsys, name, label) -> None:
    path = tmp_path_factory.mktemp("ledger") / "ledger.sqlite3"
    ledger = Ledger.open(path)
    ledger.write([Entry(footprint(label), "magic", name)])
    ledger.close()
    monkeypatch.setenv("NBCARBON_LEDGER", str(path))
    for fmt in ("table", "markdown", "csv", "json"):
        assert main(["history", "--format", fmt]) == 0
        out, err = capsys.readouterr()
        assert_shows_no_controls(out + err, f"history {fmt}")
    code = cli("history", f"--since={label}")
    out, err = capsys.readouterr()
    assert code in (0, 2)
    one_line_errors(err)
    if code == 2:
        usage_error(err)


def test_fuzz_magics(make_shell, capsys) -> None:
    ip = make_shell()
    session = extension(ip).session
    capsys.readouterr()

    def run(cell: str) -> object:
        result = ip.run_cell(cell)
        out, err = capsys.readouterr()
        assert_shows_no_controls(out.replace("\n", " ") + err.replace("\n", " "), cell)
        one_line_errors(err)
        if not result.success:
            assert isinstance(result.error_in_exec or result.error_before_exec, UsageError), result
            assert len(err.strip().splitlines()) == 1, err
        return result

    @FUZZ
    @given(label=LINE_TEXT, region=LINE_TEXT, quoted=st.booleans())
    def fuzz(label: str, region: str, quoted: bool) -> None:
        before = len(session.records)
        result = run(f"%%carbon --label {shlex.quote(label) if quoted else label}\nfuzzed = 6 * 7")
        if result.success:
            assert ip.user_ns.pop("fuzzed") == 42 and len(session.records) == before + 1
            if quoted:
                assert session.records[-1].label == label  # stored exactly as given
        else:  # a usage error: the cell did not run and nothing was recorded
            assert "fuzzed" not in ip.user_ns and len(session.records) == before
        code = shlex.quote(region) if quoted else region
        for cell in (f"%carbon region {code}", f"%%carbon --region {code}\n1",
                     f"%carbon regions {label}", f"%carbon pue {label}"):
            run(cell)
        ip.run_cell("%carbon region SE")
        ip.run_cell("%carbon pue 1")
        capsys.readouterr()

    fuzz()
