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


def _cells(n: int, nested_under_first: int = 0) -> list:
    """``n`` top-level records of growing energy (and some windows nested in the first)."""
    import dataclasses

    from tests.test_readout_share import record

    tops = [dataclasses.replace(record(i, shared=False), energy_j=float(i + 1),
                                co2e_g=(i + 1) / 3.6e6 * 41.0) for i in range(n)]
    nested = [dataclasses.replace(record(n + j, shared=False), parent_id=tops[0].id,
                                  execution_count=None, energy_j=0.1)
              for j in range(nested_under_first)]
    return nested + tops  # windows close before the cell that holds them


def test_a_long_summary_lists_the_most_costly_cells_and_totals_every_cell() -> None:
    """10,000 rows made each re-price of a summary a 10 MB message: past ``MAX_ROWS`` it lists
    the most costly cells, in notebook order, and one line for the rest; the totals and the
    record still cover every cell."""
    from nbcarbon import summary
    from tests.test_readout_share import REGION

    records = _cells(2000, nested_under_first=5)
    tops = records[5:]
    data, meta = summary.mimebundle(records, REGION, 1.0, "0")
    text = data["text/plain"]
    rows = [line for line in text.splitlines() if line.startswith("In [")]
    kept = tops[-summary.MAX_ROWS:]  # the most costly: energy grows with the index
    assert [r.split("  ")[0].strip() for r in rows] == [f"In [{fp.execution_count}]" for fp in kept]
    rest = tops[:-summary.MAX_ROWS]
    more = next(line for line in text.splitlines() if line.startswith("… "))
    assert more.startswith(f"… {len(rest):,} more cells, 5 nested windows")
    assert summary.format_energy(sum(fp.energy_j for fp in rest)) in more
    assert f"total ({len(tops)} cells, 5 nested windows counted in them)" in text
    assert "nbcarbon report lists each one" in text
    rec = meta["nbcarbon"]
    assert rec["cells"] == [fp.id for fp in tops] and rec["n_cells"] == len(tops)
    assert math.isclose(rec["energy_j"], sum(fp.energy_j for fp in tops), rel_tol=1e-12)
    html = data["text/html"]
    assert html.count("<tr") == summary.MAX_ROWS + 3  # head, rows, the rest, total
    assert "… 1,975 more cells" in html and "<script" not in html


def test_a_summary_within_the_cap_lists_every_row_and_no_rest_line() -> None:
    from nbcarbon import summary
    from tests.test_readout_share import REGION

    records = _cells(summary.MAX_ROWS - 3, nested_under_first=3)
    text = summary.mimebundle(records, REGION, 1.0, "0")[0]["text/plain"]
    assert text.count(summary.NESTED_MARK) == 3
    assert "more cells" not in text and "most costly" not in text


def test_many_nested_windows_under_few_cells_list_every_cell_and_say_the_rest() -> None:
    """Nine cells with 19 windows nested in the first are more rows than ``MAX_ROWS``: every
    cell is listed (no "0 more cells" line), and a note says the nested windows are not."""
    from nbcarbon import summary
    from tests.test_readout_share import REGION

    records = _cells(9, nested_under_first=19)
    text = summary.mimebundle(records, REGION, 1.0, "0")[0]["text/plain"]
    assert sum(line.startswith("In [") for line in text.splitlines()) == 9
    assert summary.NESTED_MARK not in text and "more cell" not in text and "most costly" not in text
    assert "19 nested windows are not listed, each already in its cell's energy" in text
    assert "total (9 cells, 19 nested windows counted in them)" in text


def test_a_summary_inside_a_measured_cell_leaves_out_that_cells_windows(shell, capsys) -> None:
    """Asked for inside a running cell, the summary must not count that cell's finished nested
    window as a cell of its own: the running cell's record will cover it."""
    import nbcarbon.api

    shell.run_cell("%%carbon --label X\nx = 1")
    capsys.readouterr()
    shell.run_cell("%%carbon --label Y\nimport nbcarbon\nwith nbcarbon.track('t', display=False):\n"
                   "    pass\nget_ipython().run_line_magic('carbon', 'summary')")
    text = capsys.readouterr().out
    table = text[text.index("nbcarbon summary"):]
    assert "total (1 cell)" in table and "X" in table and "  t " not in table
    assert "1 window inside the cell still running is left out" in table
    x, t, y = nbcarbon.api.default_session().records
    assert t.parent_id == y.id and [fp.label for fp in (x, t, y)] == ["X", "t", "Y"]


def test_a_summary_says_that_earlier_runs_of_a_cell_are_counted(shell, capsys) -> None:
    """The session counts every run's energy; the saved notebook keeps the last readout of a
    cell run again, so a report on it counts less. The summary says why they differ."""
    for _ in range(3):
        shell.run_cell("%%carbon --label D\nx = 1", cell_id="cell-d")
    shell.run_cell("%%carbon --label E\nx = 1", cell_id="cell-e")
    capsys.readouterr()
    shell.run_cell("%carbon summary")
    text = capsys.readouterr().out
    assert "total (4 cells)" in text
    assert "2 earlier runs of re-run cells are counted" in text
    assert "a report on the saved file counts the last runs" in text


def test_after_a_reset_a_region_change_still_reaches_every_readout(tmp_path: Path) -> None:
    """``%carbon reset`` starts the totals afresh; the readouts already shown stay in the
    notebook, so a later re-price must reach them too, or the saved file mixes two grids."""
    env = kernel_env(tmp_path)
    nb = run_cells([
        "%load_ext nbcarbon",
        "%%carbon --label a\nx = 1",
        "%%carbon --label pinned --pue 1.3\nx = 1",
        "%carbon summary",
        "%carbon reset",
        "%%carbon --label b\nx = 1",
        "%carbon region PL",
        "import nbcarbon.api as a\nt = a.default_session().totals()\nprint(t.cells)",
        "%unload_ext nbcarbon",
    ], env)
    a, pinned, b = (records_of(nb.cells[i])[0] for i in (1, 2, 5))
    summary_rec = _summary_output(nb.cells[3])["metadata"]["nbcarbon"]
    assert {a["region"]["code"], pinned["region"]["code"], b["region"]["code"],
            summary_rec["region"]["code"]} == {"PL"}
    assert (a["pue"], pinned["pue"], b["pue"]) == (1.0, 1.3, 1.0)  # the pin stays with its record
    assert math.isclose(summary_rec["co2e_g"], a["co2e_g"] + pinned["co2e_g"], rel_tol=1e-12)
    assert "3 readout(s) re-priced" in nb.cells[6]["outputs"][0]["text"]
    assert nb.cells[7]["outputs"][0]["text"].strip() == "1"  # only b since the reset


def test_a_summary_says_how_many_windows_have_no_readout_in_the_notebook(shell, capsys) -> None:
    """``track(display=False)`` at top level is measured and counted, but shows nothing, so a
    report on the saved notebook cannot count it: the summary says how many such windows."""
    shell.run_cell("%%carbon --label shown\nx = 1")
    shell.run_cell("import nbcarbon\nwith nbcarbon.track('hidden', display=False):\n    pass")
    shell.run_cell("%%carbon --label with_inner\nwith nbcarbon.track('inner', display=False):\n"
                   "    pass")  # nested: in its cell's readout, nothing missing from a report
    capsys.readouterr()
    shell.run_cell("%carbon summary")
    text = capsys.readouterr().out
    assert "total (3 cells, 1 nested window counted in them)" in text
    assert "1 window with no readout in the notebook (it was measured with display=False) is " \
           "counted; a report on the saved file leaves it out" in text
