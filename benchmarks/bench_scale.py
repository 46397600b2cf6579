"""Measure 6: a long kernel session, to show that per-cell cost stays flat and memory bounded.

Why: a tracker that keeps growing lists or re-scans its history gets slower with every cell,
which a 100-cell benchmark never shows. This runs N empty ``%%carbon`` cells (alternating with
plain cells, to subtract the shell's own cost) in one IPython ``InteractiveShell`` with history
off (IPython's SQLite history adds ms of jitter to every displaying cell, with or without
nbcarbon, and grows by itself), output sent to a sink that keeps nothing, and reports the
overhead per block of 1,000 cells and the process's resident memory after each block. nbcarbon
keeps every record of the session in memory (for totals and re-pricing), so some growth per
cell is expected; the table says how much.

The same run also goes through a real ipykernel (:func:`kernel_run`): N ``%%carbon`` cells and
N plain ones executed alternately through ``jupyter_client``, each timed from the request to the
kernel's idle status (its readout received), and the kernel's resident memory read from outside
after each block of 1,000. That adds what a notebook user also pays: the messages, the kernel's
own bookkeeping of every output, and IPython's history (on, as in a notebook).

Run as a child: ``python bench_scale.py CELLS OUT.json`` (``run()`` does that).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, table

BLOCK = 1000


class _Sink:
    """A stdout that keeps nothing, so the benchmark's own buffer does not grow with the readouts."""

    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _child(cells: int, out: str) -> None:
    from contextlib import redirect_stdout

    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _child import rss_bytes

    config = Config()
    config.HistoryManager.enabled = False
    ip = InteractiveShell.instance(config=config)
    blocks = []
    with redirect_stdout(_Sink()):
        ip.run_cell("%load_ext nbcarbon")
        for _ in range(20):
            ip.run_cell("pass", store_history=True)
            ip.run_cell("%%carbon\npass", store_history=True)
        rss_start = rss_bytes()
        for start in range(0, cells, BLOCK):
            plain, magic = [], []
            for _ in range(min(BLOCK, cells - start)):
                t0 = time.perf_counter()
                ip.run_cell("pass", store_history=True)
                t1 = time.perf_counter()
                ip.run_cell("%%carbon\npass", store_history=True)
                t2 = time.perf_counter()
                plain.append(t1 - t0)
                magic.append(t2 - t1)
            blocks.append({
                "cells": start + len(magic),
                "plain_ms": statistics.median(plain) * 1e3,
                "carbon_ms": statistics.median(magic) * 1e3,
                "rss_bytes": rss_bytes(),
            })
        from nbcarbon.api import default_session

        records = len(default_session().records)
        held = _who_holds_memory(ip)
        ip.run_cell("%unload_ext nbcarbon")
    outputs = getattr(ip.history_manager, "outputs", None)
    with open(out, "w") as f:
        json.dump({"rss_start": rss_start, "blocks": blocks, "records": records, "held": held,
                   "ipython_outputs": None if outputs is None else len(outputs)}, f)


def _who_holds_memory(ip, cells: int = 500) -> dict[str, float]:
    """Bytes per cell still allocated after ``cells`` more cells, by where they were allocated.

    Run after the timed blocks (tracemalloc slows every allocation). Allocation sites, not
    owners: the readout's bundles are made by nbcarbon but kept by IPython (its display
    outputs store), which is why they get their own group.
    """
    import tracemalloc

    tracemalloc.start(25)
    before = tracemalloc.take_snapshot()
    for _ in range(cells):
        ip.run_cell("%%carbon\npass", store_history=True)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    groups: dict[str, float] = {}
    for stat in after.compare_to(before, "traceback"):
        files = " ".join(frame.filename for frame in stat.traceback)
        if "readout.py" in files:
            key = "readout bundles (text + HTML), kept by IPython's display outputs store"
        elif "compilerop" in files:
            key = "IPython's compiled-cell cache (any cell)"
        elif "/nbcarbon/" in files:
            key = "nbcarbon's records (Session.records) and the magic's bookkeeping"
        else:
            key = "other (IPython, interpreter)"
        groups[key] = groups.get(key, 0.0) + stat.size_diff / cells
    return groups


def kernel_run(cells: int) -> dict:
    """``cells`` ``%%carbon`` cells in a real kernel, each after a plain cell; medians per block."""
    import psutil
    from bench_kernel import _run
    from jupyter_client.manager import start_new_kernel

    env = dict(os.environ, NBCARBON_LEDGER="off", NBCARBON_REGION="SE")
    env.pop("NBCARBON_POWERCAP_ROOT", None)
    km, kc = start_new_kernel(kernel_name="python3", env=env)
    blocks = []
    try:
        _run(kc, "%load_ext nbcarbon")
        msg_id = kc.execute("import os; print(os.getpid())")
        pid = None
        while pid is None:
            msg = kc.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
                pid = int(msg["content"]["text"].split()[0])
        kernel = psutil.Process(pid)
        for _ in range(20):
            _run(kc, "pass")
            _run(kc, "%%carbon\npass")
        rss_start = kernel.memory_info().rss
        t0 = time.perf_counter()
        for start in range(0, cells, BLOCK):
            plain, magic = [], []
            for _ in range(min(BLOCK, cells - start)):
                plain.append(_run(kc, "pass"))
                magic.append(_run(kc, "%%carbon\npass"))
            blocks.append({"cells": start + len(magic), "plain_ms": statistics.median(plain) * 1e3,
                           "carbon_ms": statistics.median(magic) * 1e3,
                           "rss_bytes": kernel.memory_info().rss})
        wall = time.perf_counter() - t0
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return {"cells": cells, "rss_start": rss_start, "blocks": blocks, "wall_s": wall}


def run(quick: bool) -> dict:
    cells = 10_000  # takes seconds, so quick mode runs the full count too
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    env = dict(os.environ, NBCARBON_LEDGER="off")
    env.pop("NBCARBON_POWERCAP_ROOT", None)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, str(cells), str(out)], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=3600)
    wall = time.perf_counter() - t0
    try:
        if proc.returncode != 0:
            return {"cells": cells, "error": proc.stderr.strip().splitlines()[-3:]}
        r = json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)
    r.update(cells=cells, wall_s=wall)
    try:
        r["kernel"] = kernel_run(cells)  # ~90 s: quick mode runs the full count too
    except Exception as exc:  # noqa: BLE001 - a failed kernel run is reported, not fatal
        r["kernel"] = {"error": f"{type(exc).__name__}: {exc}"}
    return r


def render(r: dict) -> str:
    if "error" in r:
        return f"Failed: `{' | '.join(r['error'])}`"
    rows = []
    prev = r["rss_start"]
    for b in r["blocks"]:
        rows.append([f"{b['cells']:,}", f"{b['plain_ms']:.3f}", f"{b['carbon_ms']:.3f}",
                     f"{b['carbon_ms'] - b['plain_ms']:.3f}", f"{b['rss_bytes'] / 2**20:.1f}",
                     f"{(b['rss_bytes'] - prev) / 2**20:+.2f}"])
        prev = b["rss_bytes"]
    first, last = r["blocks"][0], r["blocks"][-1]
    growth = (last["rss_bytes"] - r["rss_start"]) / r["cells"]
    held = "; ".join(f"{v / 1024:.2f} KiB {k}" for k, v in
                     sorted(r["held"].items(), key=lambda kv: -kv[1]))
    return "\n".join([
        f"{r['cells']:,} `%%carbon` cells in one `InteractiveShell` (history off), each followed by a "
        f"plain cell; medians per block of {BLOCK:,}. Resident memory before the first block: "
        f"{r['rss_start'] / 2**20:.1f} MiB. Records held by the session at the end: {r['records']:,}. "
        f"Overhead, first block {first['carbon_ms'] - first['plain_ms']:.3f} ms, last block "
        f"{last['carbon_ms'] - last['plain_ms']:.3f} ms; memory growth {growth / 1024:.2f} KiB per "
        f"measured cell. Took {r['wall_s']:.0f} s.",
        "",
        table(["cells so far", "plain cell, ms", "`%%carbon` cell, ms", "overhead, ms",
               "resident memory, MiB", "change in block, MiB"], rows),
        "",
        f"Where the growth goes (tracemalloc over 500 more cells, per cell, by allocation site): "
        f"{held}. IPython's display outputs store held {r['ipython_outputs']} entries at the end, "
        "with history off.",
        "",
        _render_kernel(r.get("kernel")),
    ])


def _render_kernel(k: dict | None) -> str:
    if not k:
        return ""
    if "error" in k:
        return f"In a real kernel: failed (`{k['error']}`)."
    rows = []
    prev = k["rss_start"]
    for b in k["blocks"]:
        rows.append([f"{b['cells']:,}", f"{b['plain_ms']:.2f}", f"{b['carbon_ms']:.2f}",
                     f"{b['carbon_ms'] - b['plain_ms']:.2f}", f"{b['rss_bytes'] / 2**20:.1f}",
                     f"{(b['rss_bytes'] - prev) / 2**20:+.2f}"])
        prev = b["rss_bytes"]
    first, last = k["blocks"][0], k["blocks"][-1]
    growth = (last["rss_bytes"] - k["rss_start"]) / k["cells"]
    return "\n".join([
        f"**The same in a real ipykernel** (IPython history on, as in a notebook): {k['cells']:,} "
        "`%%carbon` cells alternating with plain ones through `jupyter_client`, each timed to the "
        f"kernel's idle status (readout received). Overhead, first block "
        f"{first['carbon_ms'] - first['plain_ms']:.2f} ms, last block "
        f"{last['carbon_ms'] - last['plain_ms']:.2f} ms; the kernel's resident memory grew "
        f"{growth / 1024:.2f} KiB per measured cell (from {k['rss_start'] / 2**20:.1f} MiB; it "
        "includes IPython's own history of every cell and output). Took "
        f"{k['wall_s']:.0f} s.",
        "",
        table(["cells so far", "plain cell, ms", "`%%carbon` cell, ms", "overhead, ms",
               "kernel resident memory, MiB", "change in block, MiB"], rows),
    ])


if __name__ == "__main__":
    _child(int(sys.argv[1]), sys.argv[2])
