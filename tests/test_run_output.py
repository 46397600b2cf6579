"""What ``nbcarbon run`` writes is meant to be shared: a real kernel runs a notebook with pandas, a
matplotlib figure, a failing cell in the middle and a dashboard, with and without
``--allow-errors``, and the output must say only what that run did, and say it once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import kernel_env
from tests.test_cli import cli, notebook, write

pytest.importorskip("pandas")

CELLS = (
    "import pandas as pd\ndf = pd.DataFrame({'a': range(50), 'b': [x * x for x in range(50)]})\n"
    "df.describe()",
    "import matplotlib\nmatplotlib.use('agg')\nimport matplotlib.pyplot as plt\n%matplotlib inline\n"
    "fig, ax = plt.subplots()\nax.plot(df.a, df.b)\nplt.show()",
    "int('a deliberate error, as in teaching material')",  # tagged raises-exception below
    "print('before the failure')",
    "1 / 0",
    "total = df.b.sum()\ntotal",
    "%load_ext nbcarbon\n%carbon dashboard",
)
FAILING = 5  # 1-based among the code cells
TAGGED = 3
MEASURED = len(CELLS) - 1  # the last cell holds only %carbon commands: settings, not work


def _source(cell: dict[str, Any]) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _code(nb: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _records(cell: dict[str, Any], kind: str = "cell") -> list[dict[str, Any]]:
    return [o["metadata"]["nbcarbon"] for o in cell.get("outputs", [])
            if o.get("metadata", {}).get("nbcarbon", {}).get("kind") == kind]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run with --allow-errors, then re-run that output (earlier readouts in it) without the flag."""
    tmp = tmp_path_factory.mktemp("shared")
    env = kernel_env(tmp)
    nb = notebook(*CELLS)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    code[TAGGED - 1]["metadata"]["tags"] = ["raises-exception"]
    src = write(tmp / "teach.ipynb", nb)
    allowed = cli("run", src, "--allow-errors", "-o", tmp / "allowed.ipynb", env=env, cwd=tmp)
    again = write(tmp / "again.ipynb", json.loads((tmp / "allowed.ipynb").read_text()))
    stopped = cli("run", again, "-o", tmp / "stopped.ipynb", env=env, cwd=tmp)
    return {"tmp": tmp, "env": env, "allowed": allowed, "stopped": stopped,
            "allowed_nb": json.loads((tmp / "allowed.ipynb").read_text()),
            "stopped_nb": json.loads((tmp / "stopped.ipynb").read_text())}


def test_allow_errors_runs_every_cell_lists_failures_and_exits_0(runs: dict[str, Any]) -> None:
    proc, nb = runs["allowed"], runs["allowed_nb"]
    assert proc.returncode == 0, proc.stderr
    cells = _code(nb)
    assert all(c["execution_count"] is not None for c in cells)  # every cell ran
    assert any(o["output_type"] == "execute_result" for o in cells[FAILING]["outputs"])  # after it
    # Both failing cells are listed at the end of the CLI output, the tagged one said to be expected.
    listed = proc.stdout.split("cells that raised")[1]
    assert f"code cell {FAILING} of {len(CELLS)} ('1 / 0'): ZeroDivisionError" in listed
    assert f"code cell {TAGGED} of {len(CELLS)}" in listed and "tagged raises-exception" in listed
    assert f"{MEASURED} cells" in proc.stdout


def test_output_ends_with_the_summary_of_this_run(runs: dict[str, Any]) -> None:
    nb = runs["allowed_nb"]
    last = nb["cells"][-1]
    assert _source(last) == "%carbon summary" and last["metadata"]["nbcarbon"] == {"run": "summary"}
    (summary,) = _records(last, "summary")
    cell_ids = [r["id"] for c in _code(nb)[:-1] for r in _records(c) if not r.get("parent_id")]
    assert summary["cells"] == cell_ids and summary["n_cells"] == MEASURED
    assert summary["energy_j"] == pytest.approx(sum(r["energy_j"] for c in _code(nb)
                                                    for r in _records(c) if not r.get("parent_id")))
    text = _text(last["outputs"][0]["data"]["text/plain"])
    assert f"cells that did not finish: In [{TAGGED}] (error), In [{FAILING}] (error)" in text
    # Said once, under the table: the region and how the numbers were obtained.
    assert "priced for SE Sweden" in text and "estimated: CPU-time model" in text


def test_per_cell_readouts_are_short_when_region_and_method_are_the_same(runs: dict[str, Any]) -> None:
    for cell in _code(runs["allowed_nb"])[:MEASURED]:
        (rec,) = _records(cell)
        out = next(o for o in cell["outputs"] if "nbcarbon" in o.get("metadata", {}))
        line = _text(out["data"]["text/plain"])
        assert line.startswith("nbcarbon: ") and "\n" not in line
        assert " SE " not in line + " " and "CPU-time model" not in line, line
        assert "CPU-time model" not in _text(out["data"]["text/html"])
        assert rec["region"]["code"] == "SE"  # the record keeps everything


def test_dashboard_is_readable_without_widgets_and_its_state_is_saved(runs: dict[str, Any]) -> None:
    nb = runs["allowed_nb"]
    dash = _code(nb)[-2]
    # The user's own %load_ext prints its normal line (the runner's own load was quiet).
    streams = [_text(o["text"]) for o in dash["outputs"] if o["output_type"] == "stream"]
    assert len(streams) == 1 and streams[0].startswith("nbcarbon: measuring")
    (view,) = [o for o in dash["outputs"] if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    plain, html = _text(view["data"]["text/plain"]), _text(view["data"]["text/html"])
    # Taken again at the run's end (the kernel asked for it): what GitHub shows is the run's.
    (summary,) = _records(nb["cells"][-1], "summary")
    assert plain.startswith("nbcarbon dashboard (as at the end of the run; ") and "VBox" not in plain
    assert f"are in the readouts and %carbon summary): {summary['n_cells']} cell(s) · " in plain
    assert "as at the end of the run" in html
    assert "<script" not in html and "nbcarbon dashboard" in html and "CO2e" in html
    state = nb["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert view["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] in state


def test_a_stopped_rerun_clears_later_cells_and_never_counts_earlier_readouts(
        runs: dict[str, Any]) -> None:
    proc, nb = runs["stopped"], runs["stopped_nb"]
    assert proc.returncode == 1
    assert f"code cell {FAILING} of {len(CELLS)} ('1 / 0') failed: ZeroDivisionError" in proc.stderr
    assert "--allow-errors" in proc.stderr
    cells = _code(nb)
    # The tagged cell may fail: the run went past it, and stopped at the untagged failure.
    assert [c["execution_count"] for c in cells[:FAILING]] == list(range(1, FAILING + 1))
    for cell in cells[FAILING:-1]:
        assert cell["execution_count"] is None and cell["metadata"]["nbcarbon"] == {"run": "not run"}
        assert [_text(o["data"]["text/plain"]) for o in cell["outputs"]] == [
            f"nbcarbon run: not run (`nbcarbon run` stopped at code cell {FAILING}, which failed)"]
    # Only this run's records: the input held seven readouts and a summary from the earlier run.
    assert sum(len(_records(c)) for c in cells) == FAILING
    assert f"{FAILING} cells" in proc.stdout and f"{MEASURED} cells" not in proc.stdout
    (summary,) = [s for c in nb["cells"] for s in _records(c, "summary")]
    assert summary["n_cells"] == FAILING
    report = cli("report", runs["tmp"] / "stopped.ipynb", "--format", "json", env=runs["env"])
    assert json.loads(report.stdout)["total"]["cells"] == FAILING


def test_without_allow_errors_a_fresh_run_stops_with_status_1(tmp_path: Path) -> None:
    src = write(tmp_path / "fails.ipynb", notebook("x = 1", "1 / 0", "x + 1"))
    proc = cli("run", src, env=kernel_env(tmp_path), cwd=tmp_path)
    assert proc.returncode == 1 and "the 1 cell(s) after it were not run" in proc.stderr


def test_a_dashboard_shown_first_is_saved_with_the_whole_runs_figures(tmp_path: Path) -> None:
    """Shown by the first cell, its snapshot said "0 cell(s)"; the run takes it again at its
    end, so a reader without widgets (GitHub) sees what the run measured."""
    env = kernel_env(tmp_path)
    src = write(tmp_path / "dash.ipynb", notebook("%carbon dashboard", "x = sum(range(10**5))",
                                                  "y = sum(range(10**5))"))
    proc = cli("run", src, "-o", tmp_path / "out.ipynb", env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    nb = json.loads((tmp_path / "out.ipynb").read_text())
    (view,) = [o for o in _code(nb)[0]["outputs"]
               if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    plain = _text(view["data"]["text/plain"])
    assert plain.startswith("nbcarbon dashboard (as at the end of the run; "), plain
    assert "): 2 cell(s) · " in plain
    assert "2 cells" in _text(view["data"]["text/html"])
