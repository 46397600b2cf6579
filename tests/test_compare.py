"""Comparing the same records across regions: rows, tables, the figure, and errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nbcarbon.compare import (
    CompareError,
    cli_compare,
    compare,
    compare_figure,
    compare_table,
    render,
)
from nbcarbon.errors import RegionError
from nbcarbon.footprint import Component, Footprint, PricedRegion
from nbcarbon.intensity import lookup
from nbcarbon.readout import format_mass
from nbcarbon.session import priced


def record(energy_j: float, pue: float = 1.0, region: str = "DE",
           started_at: str = "2025-01-01T00:00:00.000+00:00", duration_s: float = 10.0) -> Footprint:
    return Footprint(
        id=f"id{energy_j}", cell_id=None, label=None, execution_count=1,
        started_at=started_at, duration_s=duration_s, status="ok",
        components=(Component("cpu", "package-0", "rapl-counter", energy_j, energy_j / 10),),
        energy_j=energy_j, pue=pue, region=priced(lookup(region), "test"), co2e_g=0.0,
        attribution="machine",
    ).repriced()


RECORDS = [record(3.6e6), record(1.8e6, pue=1.5)]  # 1 kWh at PUE 1, 0.5 kWh at PUE 1.5


def test_known_records_priced_per_region() -> None:
    rows = compare(RECORDS, ["SE", "PL", "sweden", "US-CA"])
    assert [r.code for r in rows] == ["SE", "PL", "US-CA"]  # duplicates dropped, order kept
    se, pl, ca = rows
    facility_kwh = 1.0 + 0.5 * 1.5
    for row, code in ((se, "SE"), (pl, "PL"), (ca, "US-CA")):
        assert row.co2e_g == pytest.approx(facility_kwh * lookup(code).g_per_kwh)
        assert row.energy_j == 5.4e6 and row.facility_energy_j == pytest.approx(facility_kwh * 3.6e6)
        assert row.records == 2
    assert se.ratio == 1.0 and pl.ratio == pytest.approx(pl.co2e_g / se.co2e_g) and pl.ratio > 5


def test_pue_override() -> None:
    (row,) = compare(RECORDS, ["SE"], pue=1.0)
    assert row.co2e_g == pytest.approx(1.5 * lookup("SE").g_per_kwh)


def test_unknown_code_fails_before_anything_with_suggestions() -> None:
    with pytest.raises(RegionError, match="Did you mean") as info:
        compare(RECORDS, ["SE", "Polnad"])
    assert "PL" in info.value.suggestions


def test_nothing_to_compare() -> None:
    with pytest.raises(CompareError, match="at least one region"):
        compare(RECORDS, [])
    with pytest.raises(CompareError, match="no footprint records"):
        compare([], ["SE"])
    with pytest.raises(RegionError):  # codes are checked even with no records
        compare([], ["XX-NOPE"])


def test_table_text_html_and_formats() -> None:
    rows = compare(RECORDS, ["SE", "PL"])
    text, html = compare_table(rows)
    assert "SE Sweden" in text and "PL Poland" in text and "█" in text and "lowest" in text
    assert "<script" not in html and "Poland" in html and "g/kWh" in html
    data = json.loads(render(rows, "json"))
    assert [r["code"] for r in data["regions"]] == ["SE", "PL"]
    csv_text = render(rows, "csv")
    assert csv_text.splitlines()[0].startswith("code,name,g_per_kwh")
    assert render(rows, "markdown").count("\n| ") >= 3
    with pytest.raises(CompareError):
        render(rows, "xml")


def test_html_escapes_values() -> None:
    rows = compare(RECORDS, ["SE"])
    from dataclasses import replace

    evil = [replace(rows[0], name="<b>x</b>")]
    _, html = compare_table(evil)
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html


def test_mixed_bases_are_flagged() -> None:
    rows = compare(RECORDS, ["SE", "US-CA"])  # Ember lifecycle against eGRID direct
    assert "bases differ" in render(rows)


def test_figure_has_labelled_axes_and_one_bar_per_region() -> None:
    import matplotlib

    matplotlib.use("Agg")
    rows = compare(RECORDS, ["SE", "PL", "FR"])
    fig = compare_figure(rows)
    ax = fig.axes[0]
    # The axis is in the unit of the bar labels (format_mass), not grams under "0.05 mg" labels.
    unit = format_mass(max(r.co2e_g for r in rows)).split()[-1]
    scale = {"mg": 1e3, "g": 1.0, "kg": 1e-3}[unit]
    assert ax.get_ylabel() == f"{unit} CO2e"
    assert len(ax.patches) == 3
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([r.co2e_g * scale for r in rows])
    labels = [t.get_text().split("\n")[0] for t in ax.texts]
    assert labels == [f"{h:.3g} {unit}" for h in heights]  # one unit for every bar and the axis


def test_compare_does_not_import_matplotlib_until_the_figure() -> None:
    code = ("import sys, nbcarbon.compare as c;"
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_region_object_untouched() -> None:
    before = [fp.co2e_g for fp in RECORDS]
    compare(RECORDS, ["PL"])
    assert [fp.co2e_g for fp in RECORDS] == before
    assert isinstance(RECORDS[0].region, PricedRegion)


def test_nested_windows_are_in_their_parent_not_added_again() -> None:
    from dataclasses import replace

    cell = record(100.0)
    epoch1 = replace(record(40.0), id="e1", parent_id=cell.id)
    epoch2 = replace(record(50.0), id="e2", parent_id=cell.id)
    later = replace(record(7.0), id="later")
    (row,) = compare([epoch1, epoch2, cell, later], ["SE"])
    assert row.energy_j == 107.0 and row.records == 2
    # Without their parent (e.g. its readout was cleared) the nested windows count themselves.
    (row,) = compare([epoch1, epoch2], ["SE"])
    assert row.energy_j == 90.0 and row.records == 2


def test_cli_compare_prints_a_format_and_saves_the_chart(tmp_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    png = tmp_path / "compare.png"
    out = cli_compare(RECORDS, ["SE", "PL"], "csv", plot_path=str(png))
    assert out.splitlines()[1].startswith("SE,Sweden")
    assert png.stat().st_size > 1000
