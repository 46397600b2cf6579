"""The ``nbcarbon`` console script, run for real in a subprocess (and, for ``run``, a real kernel)."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nbcarbon import intensity
from tests.conftest import kernel_env

SCRIPT = shutil.which("nbcarbon", path=str(Path(sys.executable).parent)) or "nbcarbon"


def notebook(*sources: str, markdown: str | None = "# a notebook that never mentions nbcarbon") -> dict:
    cells: list[dict[str, Any]] = [{"cell_type": "markdown", "metadata": {}, "source": markdown}] \
        if markdown else []
    cells += [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
               "source": src} for src in sources]
    return {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                        "language": "python"}}}


def write(path: Path, nb: dict) -> Path:
    path.write_text(json.dumps(nb))
    return path


def cli(*args: str | Path, env: dict[str, str], cwd: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([SCRIPT, *map(str, args)], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def records(nb: dict) -> list[list[dict]]:
    """The nbcarbon records of each code cell of the notebook (not the summary a run appends)."""
    return [[o["metadata"]["nbcarbon"] for o in c.get("outputs", [])
             if "nbcarbon" in o.get("metadata", {})] for c in nb["cells"]
            if c["cell_type"] == "code" and c["metadata"].get("nbcarbon", {}).get("run") != "summary"]


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One ``nbcarbon run`` of a plain notebook, shared by the report and history tests."""
    tmp = tmp_path_factory.mktemp("run")
    env = kernel_env(tmp, NBCARBON_LEDGER=str(tmp / "ledger.sqlite3"))
    src = write(tmp / "plain.ipynb", notebook(
        "total = sum(i * i for i in range(300_000))\ntotal", "print('hello')",
        "import time\ntime.sleep(0.2)", "def f(x):\n    return x + 1\nf(1)"))
    proc = cli("run", src, env=env, cwd=tmp)
    return {"tmp": tmp, "env": env, "proc": proc, "out": tmp / "plain.carbon.ipynb"}


def test_run_measures_every_code_cell_of_a_plain_notebook(measured: dict[str, Any]) -> None:
    proc = measured["proc"]
    assert proc.returncode == 0, proc.stderr
    nb = json.loads(measured["out"].read_text())
    per_cell = records(nb)
    assert len(per_cell) == 4 and all(len(rs) == 1 for rs in per_cell)
    assert all(rs[0]["status"] == "ok" and rs[0]["region"]["code"] == "SE" for rs in per_cell)
    assert "".join(nb["cells"][2]["outputs"][0]["text"]) == "hello\n"  # the cells' own outputs are kept
    assert "total" in proc.stdout and "4 cells" in proc.stdout and "plain.carbon.ipynb" in proc.stdout
    assert "cell 4/4" in proc.stderr  # the progress bar
    assert "Traceback" not in proc.stderr and "WARNING" not in proc.stderr
    # The kernel's records went to the ledger too, as "run", under the notebook's base name only.
    rows = sqlite3.connect(measured["tmp"] / "ledger.sqlite3").execute(
        "SELECT id, notebook, source FROM records").fetchall()
    assert sorted(r[0] for r in rows) == sorted(rs[0]["id"] for rs in per_cell)
    assert {(r[1], r[2]) for r in rows} == {("plain.ipynb", "run")}


def test_report_json_totals_are_the_sum_of_the_cells(measured: dict[str, Any]) -> None:
    proc = cli("report", measured["out"], "--format", "json", env=measured["env"])
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    cells, total = data["cells"], data["total"]
    assert total["cells"] == len(cells) == 4
    for key in ("energy_j", "co2e_g", "duration_s"):
        assert math.isclose(total[key], math.fsum(c[key] for c in cells), rel_tol=1e-12)
    assert total["energy_j"] > 0


def test_report_region_reprices_by_the_ratio_of_intensities(measured: dict[str, Any]) -> None:
    def co2e(region: str) -> list[float]:
        proc = cli("report", measured["out"], "--region", region, "--format", "json",
                   env=measured["env"])
        assert proc.returncode == 0, proc.stderr
        return [c["co2e_g"] for c in json.loads(proc.stdout)["cells"]]

    ratio = intensity.lookup("PL").g_per_kwh / intensity.lookup("SE").g_per_kwh
    for se, pl in zip(co2e("SE"), co2e("PL"), strict=True):
        assert math.isclose(pl / se, ratio, rel_tol=1e-12)


def test_report_formats_and_several_notebooks_summed(measured: dict[str, Any],
                                                     tmp_path: Path) -> None:
    out, env = measured["out"], measured["env"]
    other = json.loads(out.read_text())  # another notebook: the same cells, measured again
    for cell in other["cells"]:
        for o in cell.get("outputs", []):
            rec = o.get("metadata", {}).get("nbcarbon")
            if rec is not None:
                rec["id"] = rec["id"][::-1]
    other_path = write(tmp_path / "other.ipynb", other)
    csv = cli("report", out, other_path, "--format", "csv", env=env)
    assert csv.returncode == 0 and csv.stdout.splitlines()[0].startswith("notebook,cell,status")
    assert len(csv.stdout.splitlines()) == 1 + 8 + 1  # header, cells of both, TOTAL
    md = cli("report", out, "--format", "markdown", env=env)
    assert md.stdout.startswith("| notebook | cell |") and "**total**" in md.stdout


def test_history_totals_from_the_ledger(measured: dict[str, Any]) -> None:
    env = measured["env"]
    proc = cli("history", "--format", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    (group,) = data["groups"]
    assert group["notebook"] == "plain.ipynb" and group["cells"] == 4
    report = json.loads(cli("report", measured["out"], "--format", "json", env=env).stdout)
    assert math.isclose(group["energy_j"], report["total"]["energy_j"], rel_tol=1e-9)
    by_day = cli("history", "--by", "day", "--since", "1d", env=env)
    assert by_day.returncode == 0 and "total" in by_day.stdout
    assert cli("history", "--since", "last week", env=env).returncode == 2
    off = cli("history", env={**env, "NBCARBON_LEDGER": "off"})
    assert off.returncode == 1 and "off" in off.stderr and "Traceback" not in off.stderr


def test_failing_cell_writes_what_was_measured_and_exits_1(tmp_path: Path) -> None:
    src = write(tmp_path / "fails.ipynb", notebook("x = 1", "raise ValueError('boom')", "print('never')"))
    out = tmp_path / "out.ipynb"
    proc = cli("run", src, "-o", out, env=kernel_env(tmp_path), cwd=tmp_path)
    assert proc.returncode == 1
    assert "code cell 2 of 3" in proc.stderr and "ValueError: boom" in proc.stderr
    assert "Traceback" not in proc.stderr
    per_cell = records(json.loads(out.read_text()))
    assert [rs[0]["status"] for rs in per_cell[:2]] == ["ok", "error"] and per_cell[2] == []


def test_timeout_interrupts_the_cell_and_keeps_its_record(tmp_path: Path) -> None:
    src = write(tmp_path / "slow.ipynb", notebook("x = 1", "import time\ntime.sleep(60)"))
    proc = cli("run", src, "--timeout", "1", env=kernel_env(tmp_path), cwd=tmp_path, timeout=60)
    assert proc.returncode == 1 and "timed out after 1 s" in proc.stderr
    per_cell = records(json.loads((tmp_path / "slow.carbon.ipynb").read_text()))
    assert per_cell[1][0]["status"] == "interrupted"


def test_unreadable_notebooks_get_clear_messages_and_the_rest_is_reported(
        measured: dict[str, Any], tmp_path: Path) -> None:
    env = measured["env"]
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [')
    foreign = write(tmp_path / "foreign.ipynb", {"hello": "world"})
    empty = write(tmp_path / "empty.ipynb", notebook("1 + 1"))
    future = json.loads(measured["out"].read_text())
    for cell in future["cells"]:
        for o in cell.get("outputs", []):
            if "nbcarbon" in o.get("metadata", {}):
                o["metadata"]["nbcarbon"]["schema"] = 99
    future_path = write(tmp_path / "future.ipynb", future)
    proc = cli("report", broken, foreign, empty, future_path, measured["out"], "--format", "json",
               env=env)
    assert proc.returncode == 1
    err = proc.stderr
    assert "Traceback" not in err
    assert "broken.ipynb: not a notebook: the file is not valid JSON" in err
    assert "foreign.ipynb: not a notebook" in err
    assert "empty.ipynb: no readable nbcarbon records; measure it with `nbcarbon run`" in err
    assert "future.ipynb: skipped 4 record(s)" in err and "schema 99" in err and "upgrade" in err
    assert len(err.strip().splitlines()) == 5  # one line per problem, not one per record
    assert json.loads(proc.stdout)["total"]["cells"] == 4  # the readable notebook is still reported
    missing = cli("run", tmp_path / "nope.ipynb", env=env)
    assert missing.returncode == 1 and "cannot read" in missing.stderr
    assert "Traceback" not in missing.stderr


@pytest.mark.parametrize("args", [
    ["report", "x.ipynb", "--region", "NOWHERE"],
    ["report", "x.ipynb", "--format", "pdf"],
    ["report", "x.ipynb", "--pue", "9"],
    ["run", "x.ipynb", "--timeout", "0"],
    ["run", "x.ipynb", "--region", ""],
    ["report", "x.ipynb", "--region", " "],
    ["report", "x.ipynb", "--compare", "SE", "PL", "--region", "FR"],
    ["frobnicate"],
])
def test_usage_errors_exit_2(args: list[str], tmp_path: Path) -> None:
    proc = cli(*args, env=kernel_env(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_regions_and_status(tmp_path: Path) -> None:
    env = kernel_env(tmp_path)
    regions = cli("regions", "swe", env=env)
    assert regions.returncode == 0 and "SE" in regions.stdout and "Sweden" in regions.stdout
    status = cli("status", env=env)
    assert status.returncode == 0 and "meters:" in status.stdout and "region:" in status.stdout


def test_a_notebook_given_twice_or_copied_is_counted_once(measured, tmp_path: Path, capsys) -> None:
    """Record ids are unique: the same records in a second file (the file again, or a copy) are
    the same work, counted once, and the report says so on stderr without failing."""
    from nbcarbon import cli as nbcarbon_cli

    copy = tmp_path / "copy.ipynb"
    copy.write_bytes(measured["out"].read_bytes())
    assert nbcarbon_cli.main(["report", str(measured["out"]), "--format", "json"]) == 0
    once = json.loads(capsys.readouterr().out)["total"]
    assert nbcarbon_cli.main(["report", str(measured["out"]), str(copy), str(measured["out"]),
                              "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["total"] == once
    notes = captured.err.strip().splitlines()
    assert len(notes) == 2 and all("already counted from a notebook before it" in n for n in notes)


def test_a_report_that_read_nothing_prints_no_empty_table(tmp_path: Path, capsys) -> None:
    from nbcarbon import cli as nbcarbon_cli

    broken = tmp_path / "broken.ipynb"
    broken.write_text("{")
    assert nbcarbon_cli.main(["report", str(broken), str(tmp_path / "missing.ipynb")]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 2


def test_an_old_format_notebook_is_named_as_one_with_how_to_convert_it(tmp_path: Path, capsys) -> None:
    from nbcarbon import cli as nbcarbon_cli

    old = write(tmp_path / "v3.ipynb", {"nbformat": 3, "nbformat_minor": 0, "metadata": {},
                                       "worksheets": [{"cells": [], "metadata": {}}]})
    assert nbcarbon_cli.main(["report", str(old)]) == 1
    err = capsys.readouterr().err
    assert "a notebook in the old format 3" in err and "--nbformat 4" in err
    assert "not a notebook" not in err


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("NBCARBON_REGION", "Swedn", "NBCARBON_REGION: Unknown region 'Swedn'"),
    ("NBCARBON_PUE", "9", "NBCARBON_PUE"),
])
def test_a_bad_environment_is_refused_before_the_run_and_keeps_the_earlier_output(
        tmp_path: Path, variable: str, value: str, says: str) -> None:
    # Before: the kernel refused it after the output file was taken, which was overwritten by
    # an unexecuted copy with every earlier record cleared, and the exit status was 1.
    src = write(tmp_path / "nb.ipynb", notebook("x = 1"))
    earlier = tmp_path / "nb.carbon.ipynb"
    earlier.write_text('{"an earlier run": true}')
    proc = cli("run", src, env=kernel_env(tmp_path, **{variable: value}), cwd=tmp_path)
    assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr
    assert earlier.read_text() == '{"an earlier run": true}'


@pytest.mark.parametrize("args", [
    ["--timeout", "1.5"], ["--timeout", "inf"], ["-o", "nb.ipynb"],
])
def test_run_refuses_fractional_timeouts_and_writing_over_its_own_notebook(
        tmp_path: Path, args: list[str]) -> None:
    src = write(tmp_path / "nb.ipynb", notebook("x = 1"))
    before = src.read_text()
    proc = cli("run", src, *args, env=kernel_env(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert ("whole number of seconds" in proc.stderr) != (args[0] == "-o")
    assert src.read_text() == before and not (tmp_path / "nb.carbon.ipynb").exists()


def test_a_cell_that_catches_the_timeouts_interrupt_still_stops_the_run(tmp_path: Path) -> None:
    # Before: the cell finished "ok" after swallowing the interrupt, the next cells ran, exit 0.
    src = write(tmp_path / "stubborn.ipynb", notebook(
        "import time\ntry:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    print('saved a checkpoint')",
        "print('never')"))
    proc = cli("run", src, "--timeout", "2", env=kernel_env(tmp_path), cwd=tmp_path, timeout=90)
    assert proc.returncode == 1 and "timed out after 2 s (interrupted)" in proc.stderr
    out = json.loads((tmp_path / "stubborn.carbon.ipynb").read_text())
    assert out["cells"][2]["metadata"]["nbcarbon"] == {"run": "not run"}


def test_a_cell_that_ignores_the_interrupt_has_its_kernel_shut_down(tmp_path: Path) -> None:
    # Before: nbclient interrupted it and waited again, as long as the cell liked (a CI run
    # could hang for good); the cell was recorded "ok" and the run exited 0.
    src = write(tmp_path / "deaf.ipynb", notebook(
        "x = 1", "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(120)",
        "print('never')"))
    proc = cli("run", src, "--timeout", "2", env=kernel_env(tmp_path), cwd=tmp_path, timeout=100)
    assert proc.returncode == 1 and "did not stop when interrupted" in proc.stderr
    assert "Traceback" not in proc.stderr
    per_cell = records(json.loads((tmp_path / "deaf.carbon.ipynb").read_text()))
    assert per_cell[0][0]["status"] == "ok"  # what ran before is kept


def test_sigterm_during_a_run_writes_what_ran(tmp_path: Path) -> None:
    # Before: SIGTERM (a CI job cancelled) killed the run with nothing written.
    import signal
    import time

    src = write(tmp_path / "long.ipynb", notebook("x = 1", "import time\ntime.sleep(120)"))
    proc = subprocess.Popen([SCRIPT, "run", str(src)], env=kernel_env(tmp_path), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    err = ""
    while time.monotonic() < deadline:  # until the progress line says cell 2 started
        line = proc.stderr.readline()
        err += line
        if "cell 1/2" in line:
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, rest = proc.communicate(timeout=60)
    assert proc.returncode == 130, err + rest
    assert "stopped by the user" in rest and "Traceback" not in rest
    per_cell = records(json.loads((tmp_path / "long.carbon.ipynb").read_text()))
    assert per_cell[0][0]["status"] == "ok"


def test_a_hand_edited_notebook_is_refused_in_one_line(tmp_path: Path) -> None:
    nb = notebook("x = 1")
    del nb["cells"][1]["source"]
    src = write(tmp_path / "edited.ipynb", nb)
    proc = cli("run", src, env=kernel_env(tmp_path), cwd=tmp_path)
    assert proc.returncode == 1 and "is not a valid notebook" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "edited.carbon.ipynb").exists()


def test_notebooks_that_share_a_file_name_keep_their_rows_apart(measured, tmp_path: Path) -> None:
    # Before: runs/a/x.ipynb and runs/b/x.ipynb were reported as one notebook "x.ipynb" with
    # every cell number twice.
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        shutil.copy(measured["out"], tmp_path / run / "x.ipynb")
    nb = json.loads(measured["out"].read_text())
    for cell in nb["cells"]:  # b's records are other records (another run), not a copy
        for o in cell.get("outputs", []):
            if "nbcarbon" in o.get("metadata", {}):
                o["metadata"]["nbcarbon"]["id"] = "b" + o["metadata"]["nbcarbon"]["id"][1:]
    write(tmp_path / "b" / "x.ipynb", nb)
    proc = cli("report", "a/x.ipynb", "b/x.ipynb", "--format", "json", env=measured["env"],
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    names = {row["notebook"] for row in json.loads(proc.stdout)["cells"]}
    assert names == {"a/x.ipynb", "b/x.ipynb"}


@pytest.mark.parametrize("fmt", ["latex", "svg"])
def test_a_paragraph_or_badge_is_not_printed_without_records(tmp_path: Path, fmt: str) -> None:
    empty = write(tmp_path / "empty.ipynb", notebook("1 + 1"))
    proc = cli("report", empty, "--format", fmt, env=kernel_env(tmp_path))
    assert proc.returncode == 1 and proc.stdout == "" and "no readable nbcarbon records" in proc.stderr


def test_a_region_search_that_finds_nothing_names_the_closest(tmp_path: Path) -> None:
    proc = cli("regions", "swedn", env=kernel_env(tmp_path))
    assert proc.returncode == 0 and "Closest: SE (Sweden)" in proc.stdout
    with pytest.raises(intensity.RegionError, match=r"a code in text, e\.g\. 'SE', not 42 \(int\)"):
        intensity.lookup(42)  # type: ignore[arg-type]


def test_a_kernel_that_dies_is_said_without_promising_its_cells_record(tmp_path: Path) -> None:
    src = write(tmp_path / "dies.ipynb", notebook("x = 1", "import os\nos._exit(1)", "print('never')"))
    proc = cli("run", src, env=kernel_env(tmp_path), cwd=tmp_path, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "the kernel died, so this cell has no record" in proc.stderr
    assert "this one included" not in proc.stderr and "--allow-errors" not in proc.stderr
    per_cell = records(json.loads((tmp_path / "dies.carbon.ipynb").read_text()))
    assert per_cell[0][0]["status"] == "ok" and per_cell[1] == []


def test_a_measured_notebook_with_no_code_cell_run_is_said_so(tmp_path: Path) -> None:
    src = write(tmp_path / "nocode.ipynb", notebook())
    env = kernel_env(tmp_path)
    assert cli("run", src, env=env, cwd=tmp_path).returncode == 0
    proc = cli("report", tmp_path / "nocode.carbon.ipynb", env=env)
    assert proc.returncode == 1 and "it was measured, but no code cell ran" in proc.stderr


def test_records_of_a_run_carry_their_cells_ids(tmp_path: Path) -> None:
    nb = notebook("x = 1", "y = 2")
    for i, cell in enumerate(nb["cells"]):
        cell["id"] = f"cell-{i}"
    src = write(tmp_path / "ids.ipynb", nb)
    assert cli("run", src, env=kernel_env(tmp_path), cwd=tmp_path).returncode == 0
    per_cell = records(json.loads((tmp_path / "ids.carbon.ipynb").read_text()))
    assert [rs[0]["cell_id"] for rs in per_cell] == ["cell-1", "cell-2"]
