"""Measures 1 and 2: import time and cold start, each in a fresh process per repetition.

Why fresh processes: a second import in the same interpreter costs nothing, and a tracker's
first start pays for lazy imports and hardware look-ups that later starts do not. Tools are
interleaved round-robin (order rotated per repetition), so a burst of load on a shared machine
hits them alike. Wall time is taken inside the child, around the import or the start/stop only
(interpreter start-up is the same for every tool and is left out).

Cold start = construct a tracker, start it with one window open, close the window and stop it,
after the tracker's module is imported (import is measure 1): ``nbcarbon.track()`` entered and
exited then the session closed; CodeCarbon ``start()``/``stop()``; Carbontracker with
``epochs=1``, ``epoch_start()``/``epoch_end()``; ``ZeusMonitor()`` with one window.
"""

from __future__ import annotations

from common import TOOLS, fmt, rotate, run_child, table

IMPORT_TOOLS = ("nbcarbon", "nbcarbon-pkg", "codecarbon", "carbontracker", "zeus")


def run(quick: bool) -> dict:
    reps = 5 if quick else 15
    imports: dict[str, list[float]] = {t: [] for t in IMPORT_TOOLS}
    cold: dict[str, list[float]] = {t: [] for t in TOOLS}
    lines: dict[str, list[int]] = {t: [] for t in TOOLS}
    errors: dict[str, str] = {}
    describe: dict[str, str] = {}
    for rep in range(reps):
        for tool in rotate(IMPORT_TOOLS, rep):
            r = run_child("import", tool)
            if "error" in r:
                errors[f"import {tool}"] = r["error"]
            else:
                imports[tool].append(r["ms"])
        for tool in rotate(TOOLS, rep):
            r = run_child("cold", tool)
            if "error" in r:
                errors[f"cold start {tool}"] = r["error"]
                continue
            cold[tool].append(r["ms"])
            lines[tool].append(r["printed_lines"])
            describe[tool] = r["describe"]
            if rep == 0:
                describe[tool + " output"] = r["printed"][:6]
    return {"reps": reps, "imports": imports, "cold": cold, "lines": lines, "errors": errors,
            "describe": describe}


def render(r: dict) -> str:
    imp, cold, lines = r["imports"], r["cold"], r["lines"]
    rows = [
        ["import of the tracker module, ms"] + [fmt(imp[t]) for t in TOOLS],
        ["`import nbcarbon` alone (lazy package), ms", fmt(imp["nbcarbon-pkg"]), "—", "—", "—"],
        ["cold start (construct, start, 1 window, stop), ms"] + [fmt(cold[t]) for t in TOOLS],
        ["import + cold start (medians), ms"]
        + [_sum_medians(imp[t], cold[t]) for t in TOOLS],
        ["lines printed by the tool during a cold start"] + [fmt(lines[t], digits=0) for t in TOOLS],
        ["measured on this machine"] + [r["describe"].get(t, "failed") for t in TOOLS],
    ]
    out = [
        "Import: `" + "`, `".join(
            ["import nbcarbon.api", "from codecarbon import OfflineEmissionsTracker",
             "from carbontracker.tracker import CarbonTracker", "from zeus.monitor import ZeusMonitor"]
        ) + f"`. {r['reps']} fresh processes per tool, interleaved; median (min–max).",
        "",
        table(["measure", *TOOLS], rows),
    ]
    if r["errors"]:
        out += ["", "Failures:"] + [f"- {k}: `{v}`" for k, v in r["errors"].items()]
    samples = [(t, r["describe"].get(t + " output")) for t in TOOLS]
    samples = [(t, s) for t, s in samples if s]
    if samples:
        out += ["", "First lines each tool printed in its first cold start (stdout and stderr):", ""]
        for t, s in samples:
            out += [f"- {t}:"] + [f"  - `{_clip(line)}`" for line in s]
    return "\n".join(out)


def _sum_medians(a: list[float], b: list[float]) -> str:
    import statistics

    if not a or not b:
        return "n/a"
    return f"{statistics.median(a) + statistics.median(b):.1f}"


def _clip(line: str, n: int = 160) -> str:
    line = line.replace("`", "'")
    return line if len(line) <= n else line[: n - 1] + "…"
