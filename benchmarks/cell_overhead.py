"""Per-cell overhead of ``%%carbon`` and the cost of ``import nbcarbon``.

Run: ``.venv/bin/python benchmarks/cell_overhead.py [--cells 2000] [--imports 15]``

The overhead is measured in one process, in a real IPython InteractiveShell: the same empty cell
is run alternately without and with the magic (interleaved, so drift hits both alike), and the
difference of the medians is the magic's cost, readout included. Import time is measured in
fresh interpreters. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

#: Memory written before each cell by ``cell_overhead(..., sweep_mb=...)``: more than the
#: last-level cache of the machine the results were made on (32 MiB, ``lscpu``), so that no cell
#: finds its code and data there.
SWEEP_MB = 48


def cell_overhead(cells: int, history: bool, sweep_mb: int = 0) -> dict[str, float]:
    """Median cost of an empty cell without and with ``%%carbon``.

    ``history=False`` turns off IPython's SQLite history, whose writes (IPython 9 also stores
    display outputs there) add jitter of several ms to any cell that displays something, with
    or without nbcarbon; with it off, what remains is nbcarbon's own cost.

    ``sweep_mb``: write one byte per 64-byte line of that much memory before each cell (outside
    the timed part), as the kernel, the client and the rest of the machine do between cells in
    a notebook: each cell then runs with its code and data out of the processor's caches, as
    in a kernel, and the overhead shows what nbcarbon's work costs there.
    """
    import io
    from contextlib import redirect_stdout

    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    os.environ.setdefault("NBCARBON_LEDGER", "off")
    config = Config()
    config.HistoryManager.enabled = history
    InteractiveShell.clear_instance()
    ip = InteractiveShell.instance(config=config)
    sweep = memoryview(bytearray(sweep_mb * 2**20))
    ones = b"\x01" * (len(sweep) // 64)

    def evict() -> None:
        if sweep_mb:
            sweep[::64] = ones

    with redirect_stdout(io.StringIO()):
        ip.run_cell("%load_ext nbcarbon")
        plain, magic = [], []
        for _ in range(50):  # warm up both paths
            ip.run_cell("pass", store_history=True)
            ip.run_cell("%%carbon\npass", store_history=True)
        for _ in range(cells):
            evict()
            t0 = time.perf_counter()
            ip.run_cell("pass", store_history=True)
            t1 = time.perf_counter()
            evict()
            t2 = time.perf_counter()
            ip.run_cell("%%carbon\npass", store_history=True)
            t3 = time.perf_counter()
            plain.append(t1 - t0)
            magic.append(t3 - t2)
        ip.run_cell("%unload_ext nbcarbon")
    p, m = statistics.median(plain), statistics.median(magic)
    return {"plain_ms": p * 1e3, "carbon_ms": m * 1e3, "overhead_ms": (m - p) * 1e3,
            "carbon_p90_ms": statistics.quantiles(magic, n=10)[-1] * 1e3}


def import_time(runs: int, module: str = "nbcarbon") -> list[float]:
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c",
             f"import time; t=time.perf_counter(); import {module}; print(time.perf_counter()-t)"],
            capture_output=True, text=True, check=True)
        times.append(float(out.stdout) * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cells", type=int, default=2000)
    parser.add_argument("--imports", type=int, default=15)
    args = parser.parse_args()
    imp = import_time(args.imports)
    print("| measure | median | notes |\n|---|---|---|")
    for history in (False, True):
        o = cell_overhead(args.cells, history)
        h = "IPython history on" if history else "IPython history off"
        print(f"| empty cell, no magic ({h}) | {o['plain_ms']:.3f} ms | {args.cells} cells, "
              f"interleaved |\n"
              f"| empty cell, `%%carbon` ({h}) | {o['carbon_ms']:.3f} ms | "
              f"p90 {o['carbon_p90_ms']:.3f} ms |\n"
              f"| **overhead of `%%carbon`** ({h}) | **{o['overhead_ms']:.3f} ms** | "
              f"readout included |")
    print(f"| `import nbcarbon` | {statistics.median(imp):.1f} ms | min {min(imp):.1f}, "
          f"max {max(imp):.1f}, {args.imports} fresh processes |")


if __name__ == "__main__":
    main()
