"""The magics in a real ipykernel, executed through nbclient, asserted on the saved notebook."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pytest

import nbcarbon
from nbcarbon import intensity
from tests.conftest import records_of, run_cells

LOOP = """%%carbon --label loop
import time
t0 = time.perf_counter()
n = 0
while time.perf_counter() - t0 < 1.5:
    n += 1
"the answer"
"""


def check_record(rec: dict) -> None:
    assert rec["schema"] == 1 and rec["kind"] == "cell"
    assert rec["energy_j"] > 0
    assert math.isclose(sum(c["energy_j"] for c in rec["components"]), rec["energy_j"],
                        rel_tol=1e-9)
    r = rec["region"]
    expected = rec["energy_j"] / 3.6e6 * rec["pue"] * r["g_per_kwh"]
    assert math.isclose(rec["co2e_g"], expected, rel_tol=1e-9)


def test_measured_cell_keeps_its_result_and_gets_a_record(env, tmp_path: Path) -> None:
    saved = tmp_path / "nb.ipynb"
    nb = run_cells(["%load_ext nbcarbon", LOOP, "print(n > 0)"], env, path=saved)
    cell = nb.cells[1]
    results = [o for o in cell.outputs if o.output_type == "execute_result"]
    assert results and results[0]["data"]["text/plain"] == "'the answer'"
    (rec,) = records_of(cell)
    check_record(rec)
    assert rec["status"] == "ok" and rec["label"] == "loop"
    # The window holds the 1.5 s loop (same clock), plus the cell's own start: a busy machine
    # may add a little, never take away.
    assert 1.5 - 1e-3 <= rec["duration_s"] < 1.5 + 1.0
    assert rec["execution_count"] == cell.execution_count
    assert rec["region"]["code"] == "SE" and rec["region"]["chosen_by"] == "env:NBCARBON_REGION"
    # A cell magic's body ran in the user's namespace, as without the magic.
    assert nb.cells[2].outputs[0]["text"] == "True\n"
    html = [o for o in cell.outputs if "nbcarbon" in o.get("metadata", {})][0]["data"]["text/html"]
    assert "<script" not in html.lower()
    # The saved notebook carries the record, and read_notebook finds it.
    (fp,) = nbcarbon.read_notebook(saved)
    assert fp.to_dict() == rec


def test_raising_cell_is_an_error_for_the_kernel_and_the_record(env) -> None:
    from nbclient.exceptions import CellExecutionError

    cells = ["%load_ext nbcarbon", "%%carbon\nx = 1\nraise ValueError('boom')"]
    with pytest.raises(CellExecutionError) as info:  # the reply status was 'error'
        run_cells(cells, env)
    assert "ValueError" in str(info.value)
    nb = run_cells(cells, env, allow_errors=True)
    outputs = nb.cells[1].outputs
    err = [o for o in outputs if o.output_type == "error"]
    assert err and err[0]["ename"] == "ValueError"
    # The traceback points at the user's line 3 of the cell (the magic line is line 1).
    plain = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(err[0]["traceback"]))
    assert "----> 3 raise ValueError('boom')" in plain
    (rec,) = records_of(nb.cells[1])
    assert rec["status"] == "error"


def test_region_change_reprices_by_the_ratio_of_intensities(env) -> None:
    get = "import nbcarbon.api as a; [r.co2e_g for r in a.default_session().records]"
    nb = run_cells(["%load_ext nbcarbon", "%%carbon\nsum(range(10**6))",
                    "%carbon region SE", get, "%carbon region EE", get], env)
    se = json.loads(nb.cells[3].outputs[0]["data"]["text/plain"])
    ee = json.loads(nb.cells[5].outputs[0]["data"]["text/plain"])
    ratio = intensity.lookup("EE").g_per_kwh / intensity.lookup("SE").g_per_kwh
    assert math.isclose(ee[0] / se[0], ratio, rel_tol=1e-9)
    # The readout already shown was updated in place: the saved notebook has the EE price.
    (rec,) = records_of(nb.cells[1])
    assert rec["region"]["code"] == "EE"
    assert math.isclose(rec["co2e_g"], ee[0], rel_tol=1e-12)


def test_unknown_region_is_a_clear_error_with_suggestions(env) -> None:
    nb = run_cells(["%load_ext nbcarbon", "%%carbon\n1", "%carbon region NOWHERE",
                    "%carbon region Swedn"], env, allow_errors=True)
    def shown(cell) -> str:  # IPython prints a UsageError on stderr, one line, no traceback
        return "".join(o.get("text", "") + o.get("evalue", "") for o in cell.outputs)

    assert "UsageError" in shown(nb.cells[2]) and "'NOWHERE'" in shown(nb.cells[2])
    assert "Did you mean" in shown(nb.cells[3]) and "SE (Sweden)" in shown(nb.cells[3])
    (rec,) = records_of(nb.cells[1])
    assert rec["region"]["code"] == "SE"  # nothing recorded changed


def test_fake_powercap_tree_measures_exactly(tmp_path: Path) -> None:
    from tests.conftest import kernel_env
    from tests.fakes.powercap import FakePowercap

    root = tmp_path / "powercap"
    root.mkdir()
    fake = FakePowercap(root)
    # 40 W with a 10 J range: the counter wraps every 0.25 s, six times during the cell.
    fake.add_package(0, 40.0, range_uj=10_000_000, dram=5.0)
    repo = Path(__file__).resolve().parents[1]
    env = kernel_env(tmp_path, NBCARBON_POWERCAP_ROOT=str(root),
                     PYTHONPATH=os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")])))
    # The kernel runs the counters itself, inside the cell, and its sampler reads after every
    # step: the cell's energy is exactly 1.5 s of the fake's power, on any machine.
    cell = (
        "%%carbon --label fake\n"
        "import nbcarbon.api\n"
        "from tests.fakes.powercap import FakePowercap, sampler_reads\n"
        f"fake = FakePowercap.attach({str(root)!r})\n"
        "fake.observers.append(sampler_reads(nbcarbon.api.default_session()))\n"
        "fake.run(1.5)\n"
    )
    nb = run_cells(["%load_ext nbcarbon", cell], env)
    (rec,) = records_of(nb.cells[1])
    by = {c["component"]: c for c in rec["components"]}
    assert by["cpu"]["method"] == "rapl-counter" and by["dram"]["method"] == "rapl-counter"
    # Share mode on a fake machine nobody else uses (kernel_env's stat file): the whole package.
    assert rec["attribution"] == "share" and rec["warnings"] == []
    assert by["cpu"]["share"] == {"basis": "cpu-time", "fraction": 1.0,
                                  "machine_energy_j": by["cpu"]["energy_j"]}
    assert by["cpu"]["energy_j"] == pytest.approx(40.0 * 1.5, abs=1e-3)
    assert by["dram"]["energy_j"] == pytest.approx(5.0 * 1.5, abs=1e-3)
