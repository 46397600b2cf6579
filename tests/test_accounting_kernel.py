"""Every total agrees: the run table, the in-notebook summary, ``nbcarbon report`` and history.

Real kernels (``nbcarbon run`` and nbclient), real ledgers, ``track()`` and ``epochs()`` inside
measured and auto-measured cells, and the bundled examples. A nested window is detail of its
parent in every view, so the four totals must be the same number.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from nbcarbon.footprint import Footprint, top_level
from nbcarbon.ledger import Ledger
from nbcarbon.readout import format_energy
from tests.conftest import kernel_env, run_cells
from tests.test_cli import cli, notebook, write

EXAMPLES = Path(__file__).resolve().parent.parent / "example_notebooks"

NESTED = notebook(
    "import nbcarbon",
    "%%carbon --label measured\nwith nbcarbon.track('inside magic'):\n    sum(i * i for i in range(200_000))",
    "with nbcarbon.track('inside auto'):\n    sum(i * i for i in range(200_000))",
    "for e in nbcarbon.epochs(range(4), progress=None):\n    sum(i * i for i in range(50_000))",
    "%%carbon --label 'loop in magic'\nfor e in nbcarbon.epochs(range(3)):\n    sum(range(50_000))",
    "%carbon summary",
)


def _records(nb: dict[str, Any]) -> list[Footprint]:
    return [Footprint.from_dict(o["metadata"]["nbcarbon"]) for c in nb["cells"]
            for o in c.get("outputs", []) if o.get("metadata", {}).get("nbcarbon", {}).get("kind") == "cell"]


def _summaries(nb: dict[str, Any]) -> list[dict[str, Any]]:
    return [o["metadata"]["nbcarbon"] for c in nb["cells"] for o in c.get("outputs", [])
            if o.get("metadata", {}).get("nbcarbon", {}).get("kind") == "summary"]


def _history_total(env: dict[str, str], notebook_name: str) -> tuple[int, float]:
    proc = cli("history", "--format", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    (group,) = [g for g in json.loads(proc.stdout)["groups"] if g["notebook"] == notebook_name]
    return group["cells"], group["energy_j"]


def _run_and_compare(tmp: Path, src: Path) -> dict[str, Any]:
    env = kernel_env(tmp, NBCARBON_LEDGER=str(tmp / "ledger.sqlite3"))
    out = tmp / "out.ipynb"
    proc = cli("run", src, "-o", out, env=env, cwd=tmp, timeout=300)
    assert proc.returncode == 0, proc.stderr
    nb = json.loads(out.read_text())
    report = json.loads(cli("report", out, "--format", "json", env=env).stdout)["total"]
    (summary,) = _summaries(nb)
    cells, history_j = _history_total(env, src.name)
    tops = top_level(_records(nb))
    assert report["cells"] == len(tops) == summary["n_cells"] == cells
    for total in (summary["energy_j"], history_j, sum(fp.energy_j for fp in tops)):
        assert math.isclose(report["energy_j"], total, rel_tol=1e-9), (report, summary, history_j)
    # The run's own table says the same total, in the same words the report uses.
    assert f"{len(tops)} cells" in proc.stdout and format_energy(report["energy_j"]) in proc.stdout
    return {"nb": nb, "report": report, "tops": tops, "records": _records(nb), "stdout": proc.stdout}


def test_nested_windows_in_measured_and_auto_cells_agree_everywhere(tmp_path: Path) -> None:
    found = _run_and_compare(tmp_path, write(tmp_path / "nested.ipynb", NESTED))
    by_label = {fp.label: fp for fp in found["records"]}
    assert by_label["inside magic"].parent_id == by_label["measured"].id
    assert by_label["loop in magic"].parent_id is None
    loop_records = [fp for fp in found["records"] if fp.label == "epoch loop"]
    assert len(loop_records) == 2 and all(fp.iterations is not None for fp in loop_records)
    assert any(fp.parent_id == by_label["loop in magic"].id for fp in loop_records)
    # 5 code cells measured (the summary cell is a command); each counted once.
    assert len(found["tops"]) == 5
    # The run table shows nested windows indented under their cell.
    assert "↳ inside magic" in found["stdout"] and "↳ epoch loop" in found["stdout"]


@pytest.mark.parametrize("example", ["quickstart.ipynb", "predict_and_budget.ipynb"])
def test_bundled_examples_agree_everywhere(tmp_path: Path, example: str) -> None:
    src = tmp_path / example
    shutil.copy(EXAMPLES / example, src)
    found = _run_and_compare(tmp_path, src)
    assert found["report"]["energy_j"] > 0


def _ledger_total(path: Path) -> float:
    ledger = Ledger.open(path, create=False)
    try:
        return sum(row.energy_j for row in ledger.totals())
    finally:
        ledger.close()


@pytest.mark.parametrize("measured", [False, True])
def test_a_training_loop_travels_with_the_notebook(tmp_path: Path, measured: bool) -> None:
    """The loop's cost is in the saved notebook whether or not its cell was measured."""
    ledger = tmp_path / "ledger.sqlite3"
    env = kernel_env(tmp_path, NBCARBON_LEDGER=str(ledger))
    train = ("import nbcarbon\nfor epoch in nbcarbon.epochs(range(5), budget_g=50, on_budget='warn'):\n"
             "    sum(i * i for i in range(100_000))")
    cells = ["%load_ext nbcarbon", ("%%carbon --label train\n" if measured else "") + train]
    path = tmp_path / "train.ipynb"
    run_cells(cells, env, path=path)
    proc = cli("report", path, "--format", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)["total"]
    assert report["cells"] == 1
    assert math.isclose(report["energy_j"], _ledger_total(ledger), rel_tol=1e-9)
    nb = json.loads(path.read_text())
    records = _records(nb)
    loop = next(fp for fp in records if fp.label == "epoch loop")
    assert loop.iterations is not None and len(loop.iterations.energy_j) == 5
    if measured:
        cell = next(fp for fp in records if fp.label == "train")
        assert loop.parent_id == cell.id and report["energy_j"] == pytest.approx(cell.energy_j)
    else:
        assert loop.parent_id is None and report["energy_j"] == pytest.approx(loop.energy_j)
    final = [o for o in nb["cells"][1]["outputs"] if o.get("metadata", {}).get("nbcarbon", {})
             .get("label") == "epoch loop"][0]
    text = "".join(final["data"]["text/plain"])
    assert "5/5 epochs" in text and "budget 50 g: within it" in text
