"""Screenshots of finished ``nbcarbon.epochs()`` loops as a saved notebook shows them (docs/).

Runs a small notebook in a real kernel (no budget, a budget it stays within, a budget that stops
it), saves it, renders it as static HTML the way nbconvert (and so nbviewer) does, in the light
and dark themes, and photographs it in Debian's Chromium. Needs the '.[test]' install and
/usr/bin/chromium; never downloads a browser.

    .venv/bin/python tools/screenshot_loops.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import kernel_env, run_cells  # noqa: E402

CELLS = [
    "import time\n\nimport nbcarbon\n\n\ndef train_one_epoch(seconds=0.2):\n"
    "    end = time.perf_counter() + seconds\n    while time.perf_counter() < end:\n        pass",
    "# no budget\nfor epoch in nbcarbon.epochs(range(8)):\n    train_one_epoch()",
    "# a budget it stays within\n"
    "for epoch in nbcarbon.epochs(range(8), budget_g=1.0):\n    train_one_epoch()",
    "# a budget it would exceed: stopped early\n"
    "for epoch in nbcarbon.epochs(range(30), budget_g=0.00005, on_budget='stop'):\n    train_one_epoch()",
]


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        notebook = work / "loops.ipynb"
        run_cells(CELLS, kernel_env(work), path=notebook)
        pages = {}
        for theme in ("light", "dark"):
            html = work / f"{theme}.html"
            subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--theme",
                            theme, str(notebook), "--output", str(html)], check=True,
                           capture_output=True)
            pages[theme] = html
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-background-networking", "--disable-component-update"])
            for theme, html in pages.items():
                page = browser.new_page(viewport={"width": 1100, "height": 700})
                page.goto(html.as_uri())
                out = ROOT / "docs" / f"loop-final-{theme}.png"
                page.screenshot(path=str(out), full_page=True)
                print(out.relative_to(ROOT))
            browser.close()


if __name__ == "__main__":
    main()
