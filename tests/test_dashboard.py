"""The dashboard in a real ipykernel through nbclient: totals, live power, re-pricing, clean-up."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from nbcarbon import intensity
from nbcarbon.panel import equivalents, sparkline_svg
from nbcarbon.readout import format_energy, format_mass
from tests.conftest import kernel_env, records_of, run_cells

BUSY = "total = 0\nfor i in range(1_500_000):\n    total += i"
POWER = re.compile(r'data-nbcarbon="power">([^<]+)<')


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs)


def _value(cell):
    return json.loads(cell.outputs[0]["data"]["text/plain"].replace("'", '"'))


def test_dashboard_totals_live_power_and_region_change(tmp_path: Path) -> None:
    saved = tmp_path / "dash.ipynb"
    env = kernel_env(tmp_path, NBCARBON_INTERVAL="0.2")
    nb = run_cells([
        "%load_ext nbcarbon",
        f"%%carbon --label one\n{BUSY}",
        f"%%carbon --quiet\n{BUSY}",
        "import nbcarbon\ndash = nbcarbon.dashboard()\ndash",
        "print(dash.totals.value)\nimport nbcarbon.api as a\n"
        "print([[r.energy_j, r.co2e_g] for r in a.default_session().records])",
        # live power: idle, then busy; read the widget's value from the cell itself
        "import time, re\nseen = []\ntime.sleep(1.0)\nt0 = time.perf_counter()\n"
        "while time.perf_counter() - t0 < 3:\n    seen.append(dash.power.value)\n"
        "    s = sum(range(20_000))\n"
        "print(sorted(set(re.findall(r'data-nbcarbon=\"power\">([^<]+)<', ''.join(seen)))))",
        # the selector as a user would drive it (observer -> extension -> session -> readouts)
        "dash.region.value = 'PL'",
        "[r.co2e_g for r in a.default_session().records]",
        "print(dash.totals.value)\nprint(dash.pricing.value)",
        "dash.pue.value = 1.5",
        "import threading\n"
        "print(sorted(t.name for t in threading.enumerate() if t.name.startswith('nbcarbon')))",
        "%unload_ext nbcarbon",
        "print(dash.running, sorted(t.name for t in threading.enumerate() if t.name.startswith('nbcarbon')))",
    ], env, path=saved)
    shown, se = _text(nb.cells[4]).rsplit("\n", 2)[:2]
    se = json.loads(se)  # [energy_j, co2e_g] of each record, priced for SE
    # The totals shown are the sum of the records.
    assert format_energy(sum(e for e, _ in se)) in shown
    assert format_mass(sum(g for _, g in se)) in shown
    assert "2 cells" in shown
    # the widget is in the notebook as a widget view
    assert "application/vnd.jupyter.widget-view+json" in nb.cells[3].outputs[0]["data"]

    powers = _text(nb.cells[5])
    assert len(json.loads(powers.replace("'", '"'))) >= 2, powers  # the value changed while running

    # The region change re-priced the records and, in place, the readouts already shown.
    co2e_pl = _value(nb.cells[7])
    ratio = intensity.lookup("PL").g_per_kwh / intensity.lookup("SE").g_per_kwh
    after = records_of(nb.cells[1]) + records_of(nb.cells[2])
    for rec, (energy_j, co2e_se) in zip(after, se, strict=True):
        assert rec["region"]["code"] == "PL" and rec["region"]["chosen_by"] == "dashboard"
        assert rec["energy_j"] == energy_j  # the measurement is untouched
        assert rec["pue"] == 1.5  # the later PUE change reached the saved readouts too
        assert math.isclose(rec["co2e_g"], co2e_se * ratio * 1.5, rel_tol=1e-9)
    assert math.isclose(sum(co2e_pl), sum(g for _, g in se) * ratio, rel_tol=1e-9)
    totals_pl = _text(nb.cells[8])
    assert format_mass(sum(co2e_pl)) in totals_pl and "Poland" in totals_pl
    # a compact readout stayed compact when re-priced
    (compact,) = [o for o in nb.cells[2].outputs if "nbcarbon" in o.get("metadata", {})]
    assert compact["data"]["text/plain"].startswith("nbcarbon: ") and " PL " in compact["data"]["text/plain"]

    # Threads: the panel's own, then none after unloading.
    assert _text(nb.cells[10]).strip() == "['nbcarbon-dashboard', 'nbcarbon-sampler']"
    assert _text(nb.cells[12]).strip() == "False []"


def test_change_while_a_measured_cell_runs_applies_when_it_finishes(tmp_path: Path) -> None:
    env = kernel_env(tmp_path)
    nb = run_cells([
        "%load_ext nbcarbon",
        "%%carbon\nx = 1",
        "import nbcarbon\ndash = nbcarbon.dashboard()",
        "%%carbon --label during\ndash.region.value = 'PL'\n"
        "import nbcarbon.api as a\nprint([r.region.code for r in a.default_session().records], "
        "repr(dash.pending))",
        "print([r.region.code for r in a.default_session().records], repr(dash.pending))",
        "%unload_ext nbcarbon",
    ], env)
    during = _text(nb.cells[3])
    assert during.startswith("['SE'] '(the change applies when the running cell finishes)'")
    assert _text(nb.cells[4]).strip() == "['PL', 'PL'] None"
    # the cell that ran during the change is priced like the rest, in its saved readout too
    (rec,) = records_of(nb.cells[3])
    assert rec["region"]["code"] == "PL" and rec["label"] == "during"
    (first,) = records_of(nb.cells[1])
    assert first["region"]["code"] == "PL"


def test_equivalents_have_a_source_and_a_year() -> None:
    eqs = equivalents()
    assert {e.unit for e in eqs} == {"km", "charge"}
    for e in eqs:
        assert e.source.startswith("US EPA") and 2000 < e.year < 2100
        assert (e.g_co2e_per_unit is None) != (e.wh_per_unit is None)
    car = next(e for e in eqs if e.unit == "km")
    assert math.isclose(car.amount(0.0, 244.2), 1.0)
    assert car.describe(0.5) == "500 m of driving an average gasoline car"
    phone = next(e for e in eqs if e.unit == "charge")
    assert math.isclose(phone.amount(19 * 3600.0, 0.0), 1.0)  # 19 Wh a charge, by energy
    assert phone.describe(0.25) == "25 % of a smartphone charge"


def test_sparkline_is_plain_svg() -> None:
    svg = sparkline_svg([0.0, 5.0, 10.0])
    assert svg.startswith("<svg") and "<script" not in svg and "10 W max" in svg
    assert sparkline_svg([1.0]).count("polyline") == 0


def test_region_set_elsewhere_while_a_search_hides_it_is_shown_in_the_selector(
        tmp_path: Path) -> None:
    """A search for "fr", France chosen, then ``%carbon region PL``: Poland is not among the
    regions the search lists, and the panel once failed to select it (TraitError) and kept
    showing France while everything was priced for Poland."""
    env = kernel_env(tmp_path)
    nb = run_cells([
        "%load_ext nbcarbon",
        "%%carbon\nx = 1",
        "import nbcarbon\ndash = nbcarbon.dashboard()\ndash.search.value = 'fr'\n"
        "dash.region.value = 'FR'\nprint(dash.session.region.code)",
        "%carbon region PL",
        "print(dash.session.region.code, dash.region.value, repr(dash.search.value), "
        "dash.region.options[0][1])",
        "%unload_ext nbcarbon",
    ], env)
    assert _text(nb.cells[2]).strip() == "FR"
    said = [o for o in nb.cells[3].outputs if o["output_type"] != "display_data"]
    assert all(o.get("name") != "stderr" and o["output_type"] != "error" for o in said), said
    assert "region PL" in _text(nb.cells[3])
    assert _text(nb.cells[4]).strip() == "PL PL '' PL"
    (rec,) = records_of(nb.cells[1])
    assert rec["region"]["code"] == "PL"
