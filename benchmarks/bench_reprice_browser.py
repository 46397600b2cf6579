"""Re-pricing N readouts as a JupyterLab user sees it: from ``%carbon region`` to the last readout
re-priced in the notebook, in a real JupyterLab server and Debian's headless Chromium.

Run: ``.venv/bin/python benchmarks/bench_reprice_browser.py [--readouts 2000]`` with the test
environment (``pip install -e '.[test]'``: JupyterLab, Playwright and the built extension) and
``/usr/bin/chromium``; ``bench.py`` runs it that way when they are there.

Why in a browser: ``bench_reprice.py`` ends when the kernel is idle and a Python client has every
message; a user waits for the page. One cell shows N compact readouts (``nbcarbon.track()`` in a
loop); once the kernel is idle (and, with the extension, holds the notebook's claims), a cell
``%carbon region X`` is run and timed until every readout in the notebook model carries region X
(what a save writes), then until every readout rendered in the page says so. Twice: with
nbcarbon's JupyterLab extension (the comm), and with the extension disabled in the page
(``update_display_data`` per readout, paced under the server's rate limit).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repo root, for tests.browser._lab

from tests.browser._lab import CHROMIUM, CHROMIUM_ARGS, jupyterlab, write_notebook  # noqa: E402

#: Readouts in the one cell: JupyterLab itself takes minutes to add 10,000 outputs to one cell's
#: model (more than 10 minutes here), whoever sends them, so the page is measured at 2,000.
READOUTS = 2000

#: region code of each readout in the notebook model (what a save writes).
_MODEL_JS = """() => {
    const model = window.jupyterapp.shell.currentWidget.content.model; const codes = [];
    for (let i = 0; i < model.cells.length; i++) {
        const cell = model.cells.get(i);
        if (cell.type !== 'code') continue;
        for (let j = 0; j < cell.outputs.length; j++) {
            const r = cell.outputs.get(j).metadata.nbcarbon;
            if (r && typeof r.id === 'string' && r.kind !== 'summary') codes.push(r.region.code);
        }
    }
    return codes; }"""

#: the text of every readout rendered in the page.
_SHOWN_JS = """() => [...document.querySelectorAll(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output.jp-RenderedHTMLCommon')]
    .map(n => n.textContent).filter(t => t.includes('CO2e'))"""

_KERNEL_RUN_JS = """async code => {
    const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel; let out = '';
    const future = kernel.requestExecute({code, silent: false, store_history: false});
    future.onIOPub = msg => { if (msg.header.msg_type === 'stream') out += msg.content.text; };
    await future.done;
    return out; }"""


def _idle(page, timeout_s: float) -> None:  # noqa: ANN001 - playwright's Page
    page.wait_for_function(
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " return w.sessionContext.session.kernel.status === 'idle'"
        " && w.content.widgets.every(c => c.model.type !== 'code' || c.model.executionCount !== null"
        " || c.model.sharedModel.source === ''); }", timeout=timeout_s * 1e3)


def _one(readouts: int, extension: bool, region: str, work: Path) -> dict:
    from playwright.sync_api import sync_playwright

    root = work / ("ext" if extension else "noext")
    root.mkdir(parents=True)
    write_notebook(root / "many.ipynb", [
        "%load_ext nbcarbon",
        f"import nbcarbon\nfor _ in range({readouts}):\n    with nbcarbon.track():\n        pass",
    ])
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBCARBON_")}
    env.update(NBCARBON_LEDGER="off", NBCARBON_REGION="SE")
    with jupyterlab(root, work / ("lab-ext" if extension else "lab-noext"), env) as url, \
            sync_playwright() as pw:
        if not extension:  # the page without nbcarbon's extension: readouts updated one by one
            config = work / "lab-noext" / "config" / "labconfig" / "page_config.json"
            page_config = json.loads(config.read_text())
            page_config["disabledExtensions"]["nbcarbon"] = True
            config.write_text(json.dumps(page_config))
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"{url}/lab/tree/many.ipynb", timeout=120_000)
            page.wait_for_function(
                "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                " && window.jupyterapp.shell.currentWidget.sessionContext?.session?.kernel?.status"
                " === 'idle'", timeout=120_000)
            t0 = time.perf_counter()
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_function(f"() => ({_MODEL_JS})().length === {readouts}",
                                   timeout=600_000, polling=500)
            _idle(page, 600)
            show_s = time.perf_counter() - t0
            held = 0
            if extension:  # wait for the claims to reach the kernel (a generous wait)
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    out = page.evaluate(_KERNEL_RUN_JS, "import json, nbcarbon.frontends as f; "
                                                        "print(json.dumps(f.stats()))")
                    held = json.loads(out or "{}").get("holds", 0)
                    if held >= readouts:
                        break
                    page.wait_for_timeout(250)
            # JupyterLab renders at most maxNumberOutputs (50) outputs of a cell; the rest wait
            # behind "show more": those rendered are the ones a user sees change.
            rendered = len(page.evaluate(_SHOWN_JS))
            page.evaluate(f"""() => {{
                const nb = window.jupyterapp.shell.currentWidget.content;
                const n = nb.model.cells.length;
                nb.model.sharedModel.insertCells(
                    n, [{{cell_type: 'code', source: '%carbon region {region}'}}]);
                nb.activeCellIndex = n; }}""")
            t0 = time.perf_counter()
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-cell')")
            page.wait_for_function(
                f"() => {{ const c = ({_MODEL_JS})(); return c.length === {readouts}"
                f" && c.every(x => x === '{region}'); }}", timeout=600_000, polling="raf")
            model_s = time.perf_counter() - t0
            page.wait_for_function(
                f"() => {{ const s = ({_SHOWN_JS})(); return s.length === {rendered}"
                f" && s.every(t => t.includes('{region} ')); }}", timeout=600_000, polling=200)
            shown_s = time.perf_counter() - t0
        finally:
            browser.close()
    return {"show_s": show_s, "held": held, "model_s": model_s, "shown_s": shown_s,
            "rendered": rendered}


def measure(readouts: int, repeats: int = 1) -> dict:
    out: dict[str, list[dict]] = {"extension": [], "none": []}
    with tempfile.TemporaryDirectory(prefix="nbcarbon-reprice-browser-") as tmp:
        for i in range(repeats):
            for extension in (True, False):
                key = "extension" if extension else "none"
                out[key].append(_one(readouts, extension, "PL", Path(tmp) / f"{key}{i}"))
    return {"readouts": readouts, **out}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readouts", type=int, default=READOUTS)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", help="write the results here (bench_reprice.py reads them)")
    args = parser.parse_args()
    results = measure(args.readouts, args.repeats)
    if args.json:
        Path(args.json).write_text(json.dumps(results))
    from bench_reprice import browser_table

    print(browser_table(results))


if __name__ == "__main__":
    main()
