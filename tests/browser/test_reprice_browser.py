"""Re-pricing through the JupyterLab extension (comm ``nbcarbon.reprice``, protocol in
nbcarbon/frontends.py and labextension/src/reprice.ts), in a real JupyterLab and Debian's headless
Chromium (never ``playwright install``).

Four ``%%carbon`` cells run; the extension tells the kernel which readouts the notebook holds;
``%carbon region`` then re-prices them, the kernel sends the new bundles over the comm, the
extension writes them into the notebook model and acknowledges. Every readout in the page shows
the new region, and the saved notebook carries the new prices: region, CO2e (energy x PUE x
intensity) and the text.

A reloaded page leaves its comm open in the kernel (nothing tells the kernel the old page is
gone), with its claims: the kernel sends each update once all the same (protocol version 2), and
the live page applies it from its kernel connection's IOPub.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nbcarbon.intensity import lookup
from tests.browser._lab import (
    CHROMIUM,
    CHROMIUM_ARGS,
    jupyterlab,
    needs_browser,
    run_all_cells,
    wait_cells_done,
    write_notebook,
)
from tests.conftest import kernel_env

LABEXTENSION = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "nbcarbon"
pytestmark = needs_browser(
    (f"the built extension in {LABEXTENSION} (pip install -e .)", (LABEXTENSION / "package.json").exists()))

CELLS = [
    "%load_ext nbcarbon",
    "%%carbon --label first\npass",
    "%%carbon --label printing\nprint('hello from a measured cell')",
    "%%carbon --label third\npass",
    "%%carbon --label fourth\npass",
]
READOUTS = 4
NOTEBOOK = "reprice.ipynb"

#: The readouts in the notebook model: record id -> (region code, text/plain).
_MODEL_READOUTS_JS = """() => {
    const model = window.nb.content.model; const found = {};
    for (let i = 0; i < model.cells.length; i++) {
        const cell = model.cells.get(i);
        if (cell.type !== 'code') continue;
        for (let j = 0; j < cell.outputs.length; j++) {
            const out = cell.outputs.get(j); const r = out.metadata && out.metadata.nbcarbon;
            if (r && typeof r.id === 'string' && (r.kind === 'cell' || r.kind === undefined))
                found[r.id] = [r.region.code, String(out.data['text/plain'])];
        }
    }
    return found; }"""

#: The text of every readout rendered as HTML in the page (the region line ends "· PUE x").
_SHOWN_READOUTS_JS = """() => [...document.querySelectorAll(
        '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output.jp-RenderedHTMLCommon')]
    .map(n => n.innerText).filter(t => t.includes('CO2e') && / · PUE /.test(t))"""

#: Run ``code`` in the notebook's kernel outside any cell; its stdout.
_KERNEL_RUN_JS = """async code => {
    const kernel = window.nb.sessionContext.session.kernel; let out = '';
    const future = kernel.requestExecute({code, silent: false, store_history: false});
    future.onIOPub = msg => {
        if (msg.header.msg_type === 'stream') out += msg.content.text;
        if (msg.header.msg_type === 'error') out += msg.content.ename + ': ' + msg.content.evalue;
    };
    await future.done;
    return out; }"""

STATS = "import json, nbcarbon.frontends as f; print(json.dumps(f.stats()))"


def _stats(page) -> dict:  # noqa: ANN001 - playwright's Page
    out = page.evaluate(_KERNEL_RUN_JS, STATS)
    try:
        return json.loads(out)
    except ValueError:
        raise AssertionError(f"nbcarbon.frontends.stats() printed {out!r}") from None


def _wait_stats(page, ok, what: str, timeout_s: float = 60) -> dict:  # noqa: ANN001
    """Poll the kernel's comm statistics until ``ok(stats)`` (a generous wait, not a timing)."""
    deadline = time.monotonic() + timeout_s
    while True:
        stats = _stats(page)
        if ok(stats):
            return stats
        assert time.monotonic() < deadline, f"{what}: {stats}"
        page.wait_for_timeout(250)


def _run_new_cell(page, source: str) -> None:  # noqa: ANN001 - playwright's Page
    """Add a code cell of ``source`` at the end of ``window.nb`` and run it (without waiting)."""
    page.evaluate("""source => {
        const nb = window.nb.content; const n = nb.model.cells.length;
        nb.model.sharedModel.insertCells(n, [{cell_type: 'code', source}]);
        nb.activeCellIndex = n; }""", source)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-cell')")


def _wait_region_shown(page, code: str, timeout_ms: int = 60_000) -> None:  # noqa: ANN001
    """Wait until the page shows :data:`READOUTS` readouts, every one in region ``code``."""
    page.wait_for_function(
        f"() => {{ const shown = ({_SHOWN_READOUTS_JS})(); return shown.length === {READOUTS}"
        f" && shown.every(t => t.includes('region {code} ')); }}", timeout=timeout_ms)


@contextmanager
def _lab(tmp_path: Path) -> Iterator[tuple[str, object, Path]]:
    """JupyterLab serving a fresh copy of the notebook (``tmp_path/root``, priced for SE) and
    Debian's Chromium: ``(url, browser, folder for screenshots)``."""
    from playwright.sync_api import sync_playwright

    root = tmp_path / "root"
    root.mkdir()
    write_notebook(root / NOTEBOOK, CELLS)
    shots = tmp_path / "shots"
    shots.mkdir()
    with jupyterlab(root, tmp_path / "lab", kernel_env(tmp_path)) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield url, browser, shots
        finally:
            browser.close()


def _close(a: float, b: float, rel: float = 1e-9) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)


def test_region_change_reaches_every_readout_over_the_comm_and_is_saved(tmp_path: Path) -> None:
    with _lab(tmp_path) as (url, browser, shots):
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        problems: list[str] = []
        page.on("console", lambda m: problems.append(f"{m.type}: {m.text}")
                if m.type in ("error", "warning") and "nbcarbon" in m.text else None)
        run_all_cells(page, url, NOTEBOOK)
        page.evaluate("() => { window.nb = window.jupyterapp.shell.currentWidget; }")
        page.wait_for_function(f"() => Object.keys(({_MODEL_READOUTS_JS})()).length === {READOUTS}",
                               timeout=120_000)
        wait_cells_done(page, 120_000)
        before = page.evaluate(_MODEL_READOUTS_JS)
        detected = {code for code, _ in before.values()}
        assert len(detected) == 1, before
        old = detected.pop()
        new = "DE" if old != "DE" else "FR"
        page.wait_for_function(f"() => ({_SHOWN_READOUTS_JS})().length === {READOUTS}", timeout=30_000)

        # The extension told the kernel which readouts it holds (a comm, then its claims).
        _wait_stats(page, lambda s: s["comms"] >= 1 and s.get("holds", READOUTS) >= READOUTS,
                    "the extension never claimed the readouts")

        # Re-price: every readout shown and in the model changes, through the comm.
        _run_new_cell(page, f"%carbon region {new}")
        _wait_region_shown(page, new)
        wait_cells_done(page, 60_000)
        stats = _wait_stats(page, lambda s: s["acks"] >= 1 and s["applied"] >= READOUTS,
                            "the extension never acknowledged the updates")
        assert stats["comms"] >= 1 and stats["updates_sent"] >= READOUTS, stats

        page.evaluate("window.nb.content.mode = 'command'; window.nb.content.scrollToItem(0, 'start')")
        page.mouse.move(0, 0)
        page.wait_for_timeout(500)
        shot = shots / "reprice-light.png"
        page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").screenshot(path=str(shot))
        page.screenshot(path=str(shots / "reprice-window-light.png"))
        assert shot.stat().st_size > 20_000

        # Saved: the file carries the new prices.
        assert page.evaluate("window.nb.context.model.dirty")
        page.evaluate("async () => { await window.jupyterapp.commands.execute('docmanager:save'); }")
        page.wait_for_function("() => !window.nb.context.model.dirty", timeout=30_000)
        assert not problems, problems

    saved = json.loads((tmp_path / "root" / NOTEBOOK).read_text())
    records = {}
    for cell in saved["cells"]:
        for out in cell.get("outputs", []):
            record = out.get("metadata", {}).get("nbcarbon")
            if isinstance(record, dict) and record.get("kind", "cell") == "cell":
                assert out["output_type"] == "display_data", out
                records[record["id"]] = (record, out)
    assert set(records) == set(before), (sorted(records), sorted(before))
    intensity = lookup(new).g_per_kwh
    for record_id, (record, out) in records.items():
        region = record["region"]
        assert region["code"] == new, region
        assert _close(region["g_per_kwh"], intensity), region
        expected = record["energy_j"] / 3.6e6 * record["pue"] * region["g_per_kwh"]
        assert _close(record["co2e_g"], expected), (record["co2e_g"], expected)
        text = "".join(out["data"]["text/plain"])
        assert text != before[record_id][1], text
        assert f"region {new} " in text, text
        assert f"region {new} " in "".join(out["data"]["text/html"])


def test_after_a_reload_each_update_is_sent_once_and_reaches_every_live_page(tmp_path: Path) -> None:
    """The reloaded page's old comm stays open in the kernel with its claims; a second tab opens
    a third comm. A re-price run from the first tab sends each readout's update once, on the
    newest comm (the second tab's), not once per comm; both live pages apply every update, the
    first from a comm that is not its own, and both acknowledge."""
    with _lab(tmp_path) as (url, browser, shots):
        context = browser.new_context(viewport={"width": 1280, "height": 1400})
        page = context.new_page()
        problems: list[str] = []

        def watch(p, name: str) -> None:  # noqa: ANN001 - playwright's Page
            p.on("console", lambda m: problems.append(f"{name} {m.type}: {m.text}")
                 if m.type in ("error", "warning") and "nbcarbon" in m.text else None)

        watch(page, "first")
        run_all_cells(page, url, NOTEBOOK)
        page.evaluate("() => { window.nb = window.jupyterapp.shell.currentWidget; }")
        page.wait_for_function(f"() => Object.keys(({_MODEL_READOUTS_JS})()).length === {READOUTS}",
                               timeout=120_000)
        wait_cells_done(page, 120_000)
        _wait_stats(page, lambda s: s["comms"] == 1 and s["holds"] == READOUTS,
                    "the extension never claimed the readouts")
        # Saved, so the reloaded page has the readouts (and no unsaved changes to ask about).
        page.evaluate("async () => { await window.jupyterapp.commands.execute('docmanager:save'); }")
        page.wait_for_function("() => !window.nb.context.model.dirty", timeout=30_000)

        # Reload: the old page's comm is never closed, so the kernel keeps it and its claims.
        page.reload(timeout=60_000)
        _open_notebook_page(page)
        before = page.evaluate(_MODEL_READOUTS_JS)
        detected = {code for code, _ in before.values()}
        assert len(detected) == 1, before
        old = detected.pop()
        new = "DE" if old != "DE" else "FR"
        _wait_region_shown(page, old, 30_000)
        _wait_stats(page, lambda s: s["comms"] == 2 and s["holds"] == 2 * READOUTS,
                    "the reloaded page never claimed the readouts beside the old comm")

        # A second tab on the same notebook: the newest comm, so it carries the updates.
        other = context.new_page()
        watch(other, "second")
        other.goto(f"{url}/lab/tree/{NOTEBOOK}", timeout=60_000)
        _open_notebook_page(other)
        claimed = _wait_stats(page, lambda s: s["comms"] == 3 and s["holds"] == 3 * READOUTS,
                              "the second tab never claimed the readouts")
        assert claimed["opened"] == 3 and claimed["closed"] == 0, claimed
        for p in (page, other):
            p.evaluate(_SEEN_JS)

        # Re-price from the first tab.
        page.bring_to_front()
        _run_new_cell(page, f"%carbon region {new}")
        _wait_region_shown(page, new)
        # Rendering is the page's job, and a page in the background may be throttled in it:
        # each tab is in front while its rendering is looked at.
        other.bring_to_front()
        _wait_region_shown(other, new)
        page.bring_to_front()
        wait_cells_done(page, 60_000)
        after = _wait_stats(page, lambda s: s["acks"] >= claimed["acks"] + 2,
                            "the two live pages never both acknowledged the updates")
        assert after["updates_sent"] - claimed["updates_sent"] == READOUTS, (claimed, after)
        assert after["applied"] - claimed["applied"] == 2 * READOUTS, (claimed, after)
        assert after["comms"] == 3, after
        # The first tab applied updates that came on a comm of another page.
        seen_first, seen_other = page.evaluate("window.seen"), other.evaluate("window.seen")
        assert seen_first and [m[:3] for m in seen_first] == [m[:3] for m in seen_other], (
            seen_first, seen_other)
        assert sum(n for _, _, n, _ in seen_first) == READOUTS, seen_first
        assert not any(own for *_, own in seen_first), seen_first  # not the first tab's comm
        assert all(own for *_, own in seen_other), seen_other  # the second tab's own
        for p in (page, other):
            model = p.evaluate(_MODEL_READOUTS_JS)
            assert set(model) == set(before), (sorted(model), sorted(before))
            for record_id, (code, text) in model.items():
                assert code == new, (record_id, code)
                assert f"region {new} " in text and text != before[record_id][1], text

        page.evaluate("window.nb.content.mode = 'command'; window.nb.content.scrollToItem(0, 'start')")
        page.mouse.move(0, 0)
        page.wait_for_timeout(500)
        shot = shots / "reprice-after-reload.png"
        page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").screenshot(path=str(shot))
        assert shot.stat().st_size > 20_000
        assert not problems, problems


#: Records, in the page, every nbcarbon update message its kernel connection sees on IOPub:
#: ``[comm id, seq, updates, whether the comm is this page's own]``.
_SEEN_JS = """() => {
    window.seen = [];
    const kernel = window.nb.sessionContext.session.kernel;
    kernel.iopubMessage.connect((_, m) => {
        const data = m.content && m.content.data;
        if (m.header.msg_type === 'comm_msg' && data && data.target === 'nbcarbon.reprice') {
            const own = kernel.hasComm(m.content.comm_id);
            window.seen.push([m.content.comm_id, data.seq, data.updates.length, own]);
        }
    });
}"""


def _open_notebook_page(page) -> None:  # noqa: ANN001 - playwright's Page
    """Wait for the notebook's page to be ready (kernel idle, every readout in the model) and
    keep its panel as ``window.nb``."""
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
        " && window.jupyterapp.shell.currentWidget.sessionContext?.session?.kernel?.status"
        " === 'idle'", timeout=60_000)
    page.evaluate("() => { window.nb = window.jupyterapp.shell.currentWidget; }")
    page.wait_for_function(f"() => Object.keys(({_MODEL_READOUTS_JS})()).length === {READOUTS}",
                           timeout=60_000)
