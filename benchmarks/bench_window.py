"""Measure 3: the cost of one measurement window in a warm process, and of a ``%%carbon`` cell.

Why warm: in a notebook the tracker is started once and then every cell pays for one window, so
the per-window cost is what a user feels on every cell. Each tool runs in its own process (one
tool's background threads must not slow another's calls), and the processes are interleaved in
rounds, order rotated. Begin and end are timed separately with ``perf_counter``; the pair is
their sum. Output the tool prints during the timed windows is captured at the file-descriptor
level and counted.

nbcarbon is measured twice: on this machine's meters (CPU-time and memory models where RAPL is
absent or root-only) and on a fake RAPL tree (counters only), which stands for a machine where
counters exist. ``%%carbon`` is measured in an IPython ``InteractiveShell`` with history off,
because IPython's SQLite history writes add several ms of jitter to any cell that displays
something, with or without nbcarbon (see ``cell_overhead.py``).
"""

from __future__ import annotations

import statistics

from common import fmt, rotate, run_child, table

WINDOW_TOOLS = ("nbcarbon", "nbcarbon-rapl", "nbcarbon-bare", "codecarbon", "carbontracker",
                "zeus")


#: Fresh processes per tool. Why many: on this machine one process's windows all cost about
#: the same, but at one of two levels some 1.6x apart, for every tool alike (pinned to either
#: core, any hash seed); with three processes a tool's median was whichever level two of them
#: drew, enough to turn a comparison around. Ten short rounds let each tool draw both levels.
ROUNDS = 10


def run(quick: bool, fake_root) -> dict:
    pairs = 300 if quick else 1000
    rounds = ROUNDS
    per_round = pairs // rounds
    res: dict[str, dict] = {t: {"begin": [], "end": [], "pair": [], "lines": 0, "reads": []}
                               for t in WINDOW_TOOLS}
    errors: dict[str, str] = {}
    describe: dict[str, str] = {}
    for rnd in range(rounds):
        for tool in rotate(WINDOW_TOOLS, rnd):
            r = run_child("window", tool, per_round, fake_root=fake_root)
            if "error" in r:
                errors[tool] = r["error"]
                continue
            res[tool]["begin"] += r["begin_us"]
            res[tool]["end"] += r["end_us"]
            res[tool]["pair"] += [b + e for b, e in zip(r["begin_us"], r["end_us"], strict=True)]
            res[tool]["lines"] += r["lines"]
            res[tool]["reads"] += r.get("reads_us", [])
            res[tool]["reads_what"] = r.get("reads_what", "")
            describe[tool] = r["describe"]
    cells = 500 if quick else 2000
    shell: dict[str, dict] = {}
    for tool in ("nbcarbon", "nbcarbon-rapl"):
        r = run_child("cells", tool, cells, fake_root=fake_root)
        if "error" in r:
            errors[f"%%carbon {tool}"] = r["error"]
        else:
            shell[tool] = r
    return {"pairs": pairs, "rounds": rounds, "res": res, "errors": errors, "describe": describe,
            "cells": cells, "shell": shell}


def render(r: dict) -> str:
    res, d = r["res"], r["describe"]
    cols = ["nbcarbon (this machine)", "nbcarbon (RAPL counters, fake tree)",
            "nbcarbon (no meters)", "codecarbon", "carbontracker", "zeus"]
    rows = [
        ["window calls"] + [_calls(t) for t in WINDOW_TOOLS],
        ["begin + end, µs"] + [fmt(res[t]["pair"]) for t in WINDOW_TOOLS],
        ["begin, µs (median)"] + [_med(res[t]["begin"]) for t in WINDOW_TOOLS],
        ["end, µs (median)"] + [_med(res[t]["end"]) for t in WINDOW_TOOLS],
        ["of which the meters' reads at both boundaries, µs (median, timed alone)"]
        + [_med(res[t]["reads"]) if res[t]["reads"] else "—" for t in WINDOW_TOOLS],
        ["lines printed per 1,000 windows"]
        + [_per_k(res[t]["lines"], len(res[t]["pair"])) for t in WINDOW_TOOLS],
        ["what a window measured here"] + [d.get(t, "failed") for t in WINDOW_TOOLS],
    ]
    out = [
        f"{r['pairs']} begin/end pairs per tool in a warm process ({r['rounds']} interleaved rounds, "
        "each a fresh process with warm-up pairs first); median (min–max). One process's windows "
        "cost about the same, but at one of two levels some 1.6× apart, for every tool alike: "
        "many short rounds let each tool draw both.",
        "",
        table(["measure", *cols], rows),
        "",
        f"nbcarbon's full per-cell cost in an IPython `InteractiveShell` (history off), {r['cells']} "
        "empty cells alternating with and without `%%carbon`, readout included:",
        "",
    ]
    srows = []
    for tool, label in (("nbcarbon", "this machine's meters"), ("nbcarbon-rapl", "fake RAPL counters")):
        s = r["shell"].get(tool)
        if s is None:
            srows.append([label, "failed", "", "", ""])
            continue
        srows.append([label, f"{s['plain_ms']:.3f}", f"{s['carbon_ms']:.3f}",
                      f"**{s['overhead_ms']:.3f}**", f"{s['carbon_p90_ms']:.3f}"])
        if "cold_overhead_ms" in s:
            srows.append([f"{label}, caches cold ({s['sweep_mb']} MB written before each cell)",
                          f"{s['cold_plain_ms']:.3f}", f"{s['cold_carbon_ms']:.3f}",
                          f"**{s['cold_overhead_ms']:.3f}**", f"{s['cold_carbon_p90_ms']:.3f}"])
    out.append(table(["meters", "empty cell, ms (median)", "with `%%carbon`, ms (median)",
                      "overhead, ms", "with `%%carbon`, p90 ms"], srows))
    if any("cold_overhead_ms" in s for s in r["shell"].values()):
        out += ["", "Caches cold: before each cell (with or without `%%carbon`, outside the timed "
                "part) the process writes one byte in every 64 of a buffer larger than this "
                "machine's last-level cache, as the kernel, the client and the rest of the "
                "machine do between cells in a notebook; half as many cells. Every cell then "
                "finds its code and data out of the processor's caches, IPython's as well as "
                "nbcarbon's, which is how a kernel runs them (section 3b)."]
    if r["errors"]:
        out += ["", "Failures:"] + [f"- {k}: `{v}`" for k, v in r["errors"].items()]
    return "\n".join(out)


def _calls(tool: str) -> str:
    from peers import WINDOW_CALLS

    return WINDOW_CALLS[tool]


def _med(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "n/a"


def _per_k(lines: int, n: int) -> str:
    return f"{lines * 1000 / n:.0f}" if n else "n/a"
