"""``%carbon summary``: a static table with a ``kind: "summary"`` record, re-priced in place."""

from __future__ import annotations

import math
from pathlib import Path

from nbcarbon import intensity
from nbcarbon.notebook import load_records
from tests.conftest import kernel_env, records_of, run_cells


def _summary_output(cell) -> dict:
    (out,) = [o for o in cell.outputs if o.get("metadata", {}).get("nbcarbon", {}).get("kind") == "summary"]
    return out


def test_summary_in_a_kernel(tmp_path: Path) -> None:
    saved = tmp_path / "summary.ipynb"
    env = kernel_env(tmp_path)
    nb = run_cells([
        "%load_ext nbcarbon",
        "%%carbon --label '<b>fit</b> & co'\nsum(range(10**6))",
        "%%carbon\nsum(range(2 * 10**6))",
        "%carbon summary",
        "%carbon region PL",
        "%unload_ext nbcarbon",
    ], env, path=saved)
    cells = records_of(nb.cells[1]) + records_of(nb.cells[2])
    out = _summary_output(nb.cells[3])
    rec = out["metadata"]["nbcarbon"]
    assert rec["schema"] == 1 and rec["kind"] == "summary" and len(rec["id"]) == 32
    assert rec["cells"] == [c["id"] for c in cells] and rec["n_cells"] == 2
    assert math.isclose(rec["energy_j"], sum(c["energy_j"] for c in cells), rel_tol=1e-12)
    assert math.isclose(rec["duration_s"], sum(c["duration_s"] for c in cells), rel_tol=1e-12)
    by = rec["energy_by_component_j"]
    assert math.isclose(sum(by.values()), rec["energy_j"], rel_tol=1e-12)
    assert set(rec) >= {"created_at", "pue", "region", "nbcarbon_version"}
    # Re-priced in place with the readouts: the saved notebook has the PL prices everywhere.
    assert rec["region"]["code"] == "PL" and {c["region"]["code"] for c in cells} == {"PL"}
    assert math.isclose(rec["co2e_g"], sum(c["co2e_g"] for c in cells), rel_tol=1e-12)
    expected = rec["energy_j"] / 3.6e6 * rec["pue"] * intensity.lookup("PL").g_per_kwh
    assert math.isclose(rec["co2e_g"], expected, rel_tol=1e-9)

    # Static: escaped, no script, no widget, a text table for terminals too.
    html = out["data"]["text/html"]
    assert set(out["data"]) == {"text/plain", "text/html"}
    assert "<script" not in html.lower() and "<b>fit</b>" not in html
    assert "&lt;b&gt;fit&lt;/b&gt; &amp; co" in html
    assert "<table" in html and "total (2 cells)" in html
    text = out["data"]["text/plain"]
    assert "<b>fit</b> & co" in text and "total (2 cells)" in text and "PL Poland" in text
    assert "estimated: CPU-time model" in text or "measured: RAPL counter" in text

    # Readers of saved notebooks keep summaries apart from cell records.
    found = load_records(saved)
    assert [r.id for r in found.records] == rec["cells"] and not found.problems
    assert [s["id"] for s in found.summaries] == [rec["id"]]
