"""Bad input: each gets one clear line naming what would be right, and changes nothing recorded.

Regions (unknown, empty, wrong case, ISO3, accents, cloud typos), PUE and interval values (0,
negative, NaN, infinity, text, out of range) in magics, environment variables and the command line,
and labels that are HTML, scripts, quotes, newlines or 10,000 characters long.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

import pytest
from IPython.core.error import UsageError

import nbcarbon
from nbcarbon import readout, report, summary
from nbcarbon.cli import main
from nbcarbon.errors import SettingsError
from nbcarbon.session import Session
from nbcarbon.settings import Settings
from tests.reliability.conftest import extension, remember

BAD_REGIONS = [
    ("NOWHERE", "Unknown region 'NOWHERE'. Did you mean"),
    ("", "No region given: use an ISO country code or name (SE, SWE, Sweden)"),
    ("   ", "No region given"),
    ("aws:eu-nort-1", "Did you mean: aws:eu-north-1 (Stockholm)"),
    ("gcp:europe-west99", "Did you mean: gcp:europe-west9 (Paris)"),
    ("azure:swedencentrl", "Did you mean: azure:swedencentral"),
    ("US-CAL", "Did you mean: US-CA (California (US))"),
    ("Sverige\n<script>", "Unknown region"),
]
GOOD_REGIONS = [("se", "SE"), ("SWE", "SE"), ("sweden", "SE"), ("Côte d'Ivoire", "CI"),
                ("cote d'ivoire", "CI"), ("México", "MX"), ("Türkiye", "TR"), ("us-ca", "US-CA"),
                ("AWS:EU-NORTH-1", "aws:eu-north-1"), ("world", "WORLD")]
BAD_NUMBERS = ["0", "-1", "nan", "NaN", "inf", "-inf", "1e400", "abc", "1,5", "5", "0.99", ""]


def one_line_usage_error(ip, code: str, capsys) -> str:
    result = ip.run_cell(code)
    assert not result.success
    assert isinstance(result.error_in_exec or result.error_before_exec, UsageError), result
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if ln.strip()]
    return line


@pytest.fixture
def measured(make_shell):
    ip = make_shell()
    ip.run_cell("%%carbon --label before\nsum(range(1000))")
    s = extension(ip).session
    return ip, s, list(s.records), s.region, s.pue


@pytest.mark.parametrize(("code", "says"), BAD_REGIONS)
def test_bad_region_everywhere_is_one_clear_line_and_changes_nothing(measured, capsys, code, says):
    ip, s, records, region, pue = measured
    quoted = code.replace("\n", "\\n")
    capsys.readouterr()
    for cell in (f"%carbon region '{quoted}'", f"%%carbon --region '{quoted}'\nran = 1"):
        if "\n" in code and cell.startswith("%carbon"):
            continue
        line = one_line_usage_error(ip, cell, capsys)
        assert says.split("\n")[0] in line or "Unknown region" in line, line
    assert "ran" not in ip.user_ns
    assert s.records == records and s.region == region and s.pue == pue
    with pytest.raises(Exception, match="region") as exc:
        Session(Settings(ledger=None), {"NBCARBON_REGION": code.strip() or "x y"})
    assert "\n" not in str(exc.value)
    assert main(["report", "--region", code or " ", "x.ipynb"]) == 2
    assert "\n" not in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize(("code", "expected"), GOOD_REGIONS)
def test_region_spellings_are_accepted(measured, code, expected):
    ip, s, *_ = measured
    assert ip.run_cell(f"%carbon region \"{code}\"").success
    assert s.region.code == expected and s.records[-1].region.code == expected


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_bad_pue_in_magics_is_one_line_naming_the_range(measured, capsys, value):
    ip, s, records, region, pue = measured
    capsys.readouterr()
    for cell in (f"%carbon pue '{value}'", f"%%carbon --pue '{value}'\nran = 1"):
        line = one_line_usage_error(ip, cell, capsys)
        assert "must be a number from 1 to 3" in line or (
            not value.strip("-") or value.startswith("-")) and "expected one argument" in line
    assert "ran" not in ip.user_ns and s.records == records and s.pue == pue


@pytest.mark.parametrize("variable", ["NBCARBON_PUE", "NBCARBON_INTERVAL"])
@pytest.mark.parametrize("value", [v for v in BAD_NUMBERS if v not in ("", "5")] + ["0.01", "61"])
def test_bad_environment_values_name_the_variable_and_range(variable, value, make_shell, monkeypatch,
                                                            capsys):
    if variable == "NBCARBON_PUE" and value == "61":
        value = "3.5"
    if variable == "NBCARBON_INTERVAL" and value == "0.99":
        value = "0.049"
    expected = "from 1 to 3" if variable == "NBCARBON_PUE" else "from 0.05 to 60"
    with pytest.raises(SettingsError, match=f"{variable} must be a number {expected}"):
        Settings.from_environ({variable: value})
    ip = make_shell()
    ip.run_cell("%unload_ext nbcarbon")
    monkeypatch.setenv(variable, value)
    nbcarbon.api.close_default_session()
    line = one_line_usage_error(ip, "%load_ext nbcarbon", capsys)
    assert f"{variable} must be a number {expected}" in line
    result = ip.run_cell("6 * 7")  # the shell goes on without nbcarbon
    assert result.result == 42
    with pytest.raises(SettingsError, match=variable):
        nbcarbon.track()


@pytest.mark.parametrize("value", ["0", "nan", "inf", "abc", "-2", "3.01"])
def test_bad_pue_on_the_command_line_exits_2(tmp_path: Path, capsys, value) -> None:
    nb = tmp_path / "nb.ipynb"
    nb.write_text('{"cells": []}')
    for argv in (["report", str(nb), "--pue", value], ["run", str(nb), "--pue", value]):
        assert main(argv) == 2
        assert "--pue must be a number from 1 to 3" in capsys.readouterr().err


LABELS = [
    "<b>bold</b> & <i>co</i>",
    "<script>alert('x')</script>",
    "\"quotes\" and 'single' and `back`",
    "line one\nline two\r\nline three",
    "<img src=x onerror=alert(1)>",
    "x" * 10_000,
    "é" * 5_000 + "<script>" + "z" * 5_000,
]


@pytest.mark.parametrize("label", LABELS, ids=["html", "script", "quotes", "newlines", "img", "long",
                                               "long-script"])
def test_labels_are_shown_escaped_and_short_and_stored_as_given(label: str) -> None:
    with nbcarbon.track(label=label) as t:
        pass
    fp = t.footprint
    assert fp.label == label and fp.to_dict()["label"] == label
    for compact in (False, True):
        data, metadata = readout.mimebundle(fp, compact)
        remember("readout", data)
        assert metadata["nbcarbon"]["label"] == label
        html, text = data["text/html"], data["text/plain"]
        for tag in ("<script", "<img", "<i>", "</b> &", "onerror=alert(1)>"):
            assert tag not in html
        assert len(html) < 3000 and len(text) < 3000
        first_line = text.splitlines()[0]
        assert len(first_line) < 400 and "line two" not in first_line.split("line one")[0]
        if compact:
            assert len(text.splitlines()) == 1
    data, _ = summary.mimebundle([fp], fp.region, fp.pue, "0")
    assert "<script" not in data["text/html"] and len(data["text/html"]) < 5000
    assert len(data["text/plain"]) < 3000
    rows = report.rows("nb", [fp])
    plain = report.rows("nb", [dataclasses.replace(fp, label="plain")])
    for fmt in ("table", "markdown"):
        out = report.render(rows, fmt)
        assert len(out) < 3000
        assert "<script" not in out or fmt == "table"
        # the label adds no line: as many as for a plain one
        assert len(out.splitlines()) == len(report.render(plain, fmt).splitlines())
    assert json.loads(report.render(rows, "json"))["cells"][0]["cell"] == label  # data: as given


def test_label_from_the_magic_stored_as_given(make_shell) -> None:
    ip = make_shell()
    label = "<script>alert(\"x\")</script> & it's <b>"
    result = ip.run_cell(f"%%carbon --label {shlex.quote(label)}\n6 * 7")
    assert result.result == 42
    fp = extension(ip).session.records[-1]
    assert fp.label == label
    assert "<script" not in readout.html(fp)


def test_records_from_before_bad_input_are_identical(measured, capsys) -> None:
    ip, s, records, *_ = measured
    snapshot = [dataclasses.asdict(fp) for fp in records]
    for cell in ("%carbon region NOWHERE", "%carbon pue nan", "%carbon auto maybe", "%carbon bogus",
                 "%%carbon --pue 0\n1", "%%carbon --interval 1\n1"):
        ip.run_cell(cell)
    assert [dataclasses.asdict(fp) for fp in s.records] == snapshot


def test_a_boolean_is_not_a_pue() -> None:
    from nbcarbon.errors import SettingsError
    from nbcarbon.settings import parse_pue

    with pytest.raises(SettingsError, match="pue must be a number from 1 to 3, not True"):
        parse_pue(True, "pue")
