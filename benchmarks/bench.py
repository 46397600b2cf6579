"""Runs every measure and writes ``benchmarks/RESULTS.md``; started by ``benchmarks/run.sh``.

Why one driver: the numbers only compare if they come from the same run, on the same machine,
with the same interpreter, so this records the date, the machine and the package versions next
to the tables, and the exact command that produced them. Each measure is a small module
(``bench_import``, ``bench_window``, ``bench_kernel``, ``bench_reprice``, ``bench_background``,
``bench_accuracy``, ``bench_scale``, ``bench_cluster``, ``report_scale``, ``bench_predict``)
with ``run(quick)`` and ``render(result)``; this file only orders them and assembles the page.

These are benchmarks, not tests: nothing here asserts a time. The targets of the issue are
printed beside the numbers for the reader to judge.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_accuracy  # noqa: E402
import bench_attribution  # noqa: E402
import bench_background  # noqa: E402
import bench_cluster  # noqa: E402
import bench_import  # noqa: E402
import bench_kernel  # noqa: E402
import bench_predict  # noqa: E402
import bench_reprice  # noqa: E402
import bench_scale  # noqa: E402
import bench_window  # noqa: E402
import report_scale  # noqa: E402
from common import HERE, TOOLS, FakeRaplServer, table  # noqa: E402

MEASURES = ("import", "window", "kernel", "reprice", "background", "accuracy", "scale", "cluster",
            "report", "predict", "attribution")


def machine() -> list[str]:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = "?"
    try:
        with open("/proc/meminfo") as f:
            kib = int(next(ln for ln in f if ln.startswith("MemTotal")).split()[1])
        mem_gib = f"{kib / 2**20:.1f}"
    except (OSError, StopIteration, ValueError):
        pass
    versions = []
    for dist in ("nbcarbon", "codecarbon", "carbontracker", "zeus", "ipython", "psutil", "pandas"):
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist} not installed")
    rapl = "yes" if os.path.isdir("/sys/class/powercap/intel-rapl:0") else "no"
    gpu = "yes" if os.path.exists("/dev/nvidia0") else "no"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    speed = reference_loop_s()
    return [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores; RAM {mem_gib} GiB; "
        f"Linux {platform.release()}; RAPL readable: {rapl}; NVIDIA GPU: {gpu}",
        f"- Python {platform.python_version()} ({sys.executable})",
        f"- Packages: {', '.join(versions)}",
        f"- Load average at start (1, 5, 15 min): {load}",
        f"- This machine's speed at start: {speed:.2f} s for a pure-Python reference loop "
        f"({REFERENCE_LOOP:,} additions; median of 3 fresh processes). Absolute times in this "
        "file scale with it; compare runs from different machines or hours through it",
    ]


#: Additions in :func:`reference_loop_s`'s loop.
REFERENCE_LOOP = 10_000_000


def reference_loop_s() -> float:
    """Seconds a fixed pure-Python loop takes here (median of three fresh processes).

    Why: the machines these runs happen on differ by 2x and more from one day to the next (a
    host's other tenants, its CPU model), and every absolute figure moves with them; targets in
    ms and µs only compare across runs through a yardstick recorded beside them. The peers'
    columns need none: they run in the same run.
    """
    code = ("import time\nt = time.perf_counter()\ns = 0\n"
            f"for i in range({REFERENCE_LOOP}):\n    s += i\n"
            "print(time.perf_counter() - t)")
    times = sorted(float(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                        text=True, check=True).stdout) for _ in range(3))
    return times[1]


def headline(results: dict) -> str:
    """The one table for the README: each tool's median for each measure."""
    med = lambda v: statistics.median(v) if v else None  # noqa: E731

    def cell(v: float | None, unit: str, digits: int = 1) -> str:
        return "n/a" if v is None else f"{v:.{digits}f} {unit}"

    rows = []
    imp = results.get("import")
    if imp:
        rows.append(["import of the tracker module", *[cell(med(imp["imports"][t]), "ms") for t in TOOLS],
                     "< 15 ms"])
        rows.append(["cold start (construct, start, stop)",
                     *[cell(med(imp["cold"][t]), "ms") for t in TOOLS], "< 20 ms"])
    win = results.get("window")
    if win:
        res = win["res"]
        rows.append(["one window (begin + end), this machine",
                     *[cell(med(res[t]["pair"]), "µs", 0) for t in TOOLS],
                     "below carbontracker's"])
        rows.append(["one window, RAPL counters (fake tree)",
                     cell(med(res["nbcarbon-rapl"]["pair"]), "µs", 0), "—", "—", "—",
                     "< 20 µs"])
        sh = win["shell"].get("nbcarbon")
        rows.append(["`%%carbon` per-cell overhead, readout included",
                     cell(sh["overhead_ms"] if sh else None, "ms", 2), "—", "—", "—", "< 1 ms"])
    kern = results.get("kernel")
    if kern:
        rows.append(["`%%carbon` per-cell overhead in a real ipykernel, readout delivered",
                     f"{kern['overhead_ms']:.2f} ms (a display of the readout's size: "
                     f"{kern['display_overhead_ms']:.2f} ms)", "—", "—", "—", "< 0.5 ms"])
        led = kern.get("ledger")
        if led:
            per_batch = led["records"] / max(led["batches"], 1)
            rows.append(["… with the history ledger on (the default), cells back to back: its "
                         "cost per measured cell", f"{led['cost_ms']:+.2f} ms ({per_batch:.1f} "
                         "records per transaction)", "—", "—", "—", "the row above: ledger off"])
    rep = results.get("reprice")
    if rep:
        large = rep["large"]
        if large.get("frontend_s"):
            rows.append([f"`%carbon region` with {large['readouts']:,} readouts shown (real kernel, "
                         "JupyterLab extension)", f"{med(large['frontend_s']):.2f} s", "—", "—",
                         "—", "< 1 s"])
        rows.append([f"`%carbon region` with {large['readouts']:,} readouts shown (real kernel, "
                     "no frontend holds them)", f"{med(large['region_s']):.2f} s (paced: see 3c)",
                     "—", "—", "—", "< 1 s"])
        rows.append([f"a summary's update per re-price, {large['readouts']:,} cells",
                     f"{large['pue_summary_bytes'] / 1e6:.2f} MB", "—", "—", "—", "< 1 MB"])
    bg = results.get("background")
    if bg:
        idle = bg["idle"]

        def pct(t: str) -> float | None:
            return med([x["cpu_s"] / x["wall_s"] * 100 for x in idle.get(t, [])])

        rows.append(["background CPU while idle (% of one core; nbcarbon: between cells)",
                     *[cell(pct(t), "%", 3) for t in TOOLS],
                     "≤ 0.01 % and ≤ carbontracker's"])
        rows.append(["background CPU while idle, RAPL counters (fake tree)",
                     cell(pct("nbcarbon-rapl"), "%", 3), "—", "—", "—", "≤ 0.01 %"])
        rows.append(["background CPU during a long measured cell (window open)",
                     cell(pct("nbcarbon-cell"), "%", 3), "—", "—", "—",
                     "peers: the idle row (window open)"])
        base = med([x["rss_bytes"] for x in idle["none"]])
        rows.append(["resident memory added",
                     *[cell(None if base is None else med([(x["rss_bytes"] - base) / 2**20
                                                           for x in idle[t]]), "MiB")
                       for t in TOOLS], ""])
        rows.append(["CPU-bound loop: wall-time slowdown",
                     *[cell(med(bg["work"][t]), "%") for t in TOOLS],
                     f"noise floor {cell(med(bg['work']['none']), '%')}"])
        rows.append(["CPU-bound loop: change in process CPU time",
                     *[cell(med(bg["work_cpu"][t]), "%") for t in TOOLS],
                     f"noise floor {cell(med(bg['work_cpu']['none']), '%')}"])
    acc = results.get("accuracy")
    if acc:
        key = ("bursty 5/80 W at 3 Hz", 1.0)
        counter = acc["errs"].get((*key, "rapl-counter"))
        sampled = acc["errs"].get((*key, "sampling-only, 1 s period"))
        rows.append(["error, 1 s window of bursty power (fake RAPL)",
                     cell(med([abs(x) for x in counter]) if counter else None, "%", 2),
                     "—", "—", "—",
                     "sampling at 1 s: " + cell(med([abs(x) for x in sampled]) if sampled else None,
                                                "%", 0)])
    clu = results.get("cluster")
    if clu:
        by_n = {row["n"]: row for row in clu["rows"]}
        if 32 in by_n:
            rows.append(["Dask boundary (collect), 32 worker processes",
                         cell(med(by_n[32]["collect_ms"]), "ms") + " (the same route to a no-op "
                         "handler: " + cell(med(by_n[32].get("route_noop_ms") or by_n[32]["noop_ms"]),
                                            "ms") + ")", "—", "—", "—", "< 20 ms"])
    rs = results.get("report")
    if rs:
        rows.append([f"`nbcarbon report` of {rs['cells']:,} records",
                     cell(med(rs["times"]["table"]), "s", 2), "—", "—", "—", "< 2 s"])
    return table(["measure (median)", *TOOLS, "target / reference"], rows)


def targets(results: dict) -> str:
    """The performance targets, each with this run's number, met or not, and where not, the
    floor this run measured and why (the sections below have the detail)."""
    med = lambda v: statistics.median(v) if v else None  # noqa: E731
    out: list[str] = []

    def say(name: str, value: str, met: bool | None, why: str = "") -> None:
        mark = {True: "met", False: "**not met**", None: "see"}[met]
        out.append(f"- {name}: {value} — {mark}." + (f" {why}" if why else ""))

    imp = results.get("import")
    if imp:
        ms = med(imp["imports"]["nbcarbon"])
        floor_ms = med(imp["imports"].get("nbcarbon-stdlib", []))
        cold = med(imp["cold"]["nbcarbon"])
        phases = imp.get("phases") or {}
        outside = {k: v for k, v in phases.items()
                   if k.startswith(("region", "import psutil", "GPU"))}
        records_ms = med(imp["imports"].get("nbcarbon-records", []))
        kernel_ms = med(imp["imports"].get("nbcarbon-ipython", []))
        if floor_ms is not None and records_ms is not None:
            why = (f"The floor, measured in the same run: the {len(imp.get('stdlib', []))} "
                   f"standard-library modules it imports (`dataclasses` with `inspect`, `ast` and "
                   f"`tokenize`; `pathlib`; `threading`; ...), imported alone in a fresh process, "
                   f"take {floor_ms:.1f} ms; with {imp.get('records', '?')} dataclasses of the "
                   f"same names, fields and options as nbcarbon's records built after them (no "
                   f"methods, no other code), {records_ms:.1f} ms. On Python "
                   f"{sys.version_info.major}.{sys.version_info.minor} `dataclasses` compiles "
                   f"each generated method (`__init__`, `__repr__`, `__eq__`, `__hash__`, and "
                   f"for frozen ones `__setattr__`, `__delattr__`) on its own, so records kept in "
                   f"frozen dataclasses cost that much before any line of nbcarbon runs; "
                   f"nbcarbon's modules add {ms - records_ms:.1f} ms beyond it (loading 13 "
                   f"modules and defining their functions).")
            if kernel_ms is not None:
                why += (f" Where nbcarbon is used, in a kernel (`%load_ext nbcarbon`), IPython "
                        f"has imported those modules already: there `import nbcarbon.api` takes "
                        f"{kernel_ms:.1f} ms (section 1).")
        else:
            why = ("The floor is what the record and settings modules import: `dataclasses` (with "
                   "`inspect`, `ast`, `tokenize`), `pathlib` and the dataclasses of `footprint.py` "
                   "themselves (section 1 lists the largest imports).")
        say("import of `nbcarbon.api` ≤ 15 ms", f"{ms:.1f} ms", ms is not None and ms <= 15, why)
        say("cold start ≤ 20 ms", f"{cold:.1f} ms", cold is not None and cold <= 20,
            "Of the phases in section 1, "
            + ", ".join(f"{k.split(' (')[0]} {v:.1f} ms" for k, v in outside.items())
            + " are in `intensity.py`, `probe.py` (psutil) and `nvml.py` (pynvml with no NVIDIA "
              "driver); the rest of the start is a few ms." if outside else "")
    win = results.get("window")
    if win:
        res = win["res"]
        ours, ct = med(res["nbcarbon"]["pair"]), med(res["carbontracker"]["pair"])
        rapl = med(res["nbcarbon-rapl"]["pair"])
        if ours is not None and ct is not None:
            say("one window below Carbontracker's", f"{ours:.0f} µs against {ct:.0f} µs",
                ours < ct, "Both move by a third from run to run on this shared machine "
                "(section 3 gives the spread); nbcarbon's floor is the next item's, with two "
                "model reads (CPU time: two clock calls; resident memory: one `pread` of "
                "`/proc/PID/statm`) in place of two counter files.")
        if rapl is not None:
            share = results.get("attribution", {}).get("costs")
            split = (f" With the default `attribution: share`, each boundary also reads `/proc/stat` "
                     f"(one `pread`, but the kernel writes the whole file each time) and the tree's CPU "
                     f"time: section 8 measures a window at {share['share']:.0f} µs in share mode "
                     f"against {share['machine']:.0f} µs with `NBCARBON_ATTRIBUTION=machine`."
                     if share else "")
            bare = med(res.get("nbcarbon-bare", {}).get("pair", []))
            reads = med(res["nbcarbon-rapl"].get("reads", []))
            what = res["nbcarbon-rapl"].get("reads_what") or "the meters"
            floor = (f" The floor, measured in the same run: the meters' reads at both boundaries "
                     f"take {reads:.0f} µs of it (timed alone: {what}), and a session with no "
                     f"meters at all spends {bare:.0f} µs on a window (its id, clocks, record and "
                     f"pricing), so {reads + bare:.0f} µs of the {rapl:.0f} µs are reads and "
                     f"bookkeeping that any window pays; the rest is turning readings into "
                     f"components (and, in share mode, splitting them)."
                     if reads is not None and bare is not None else "")
            say("one window ≤ 20 µs on fake RAPL counters", f"{rapl:.0f} µs", rapl <= 20,
                split + floor)
    kern = results.get("kernel")
    if kern:
        floor = kern.get("send_overhead_ms")
        reads = kern.get("reads_overhead_ms")
        if reads is not None and floor is not None:
            why = (f"The floor, measured in the same run: one `display_data` message of the "
                   f"readout's size, sent through the kernel's session with nothing else, costs "
                   f"{floor:.2f} ms over an empty cell (of which calling a function from the cell "
                   f"costs {kern.get('call_overhead_ms', float('nan')):.2f} ms); sent from "
                   f"`pre_run_cell`/`post_run_cell` hooks that also read the meters nbcarbon reads "
                   f"at both ends of the cell ({kern.get('meters') or 'this kernel'}), with no call "
                   f"in the cell, {reads:.2f} ms. Those reads and "
                   f"that message are what any readout of a measured cell costs, so the target "
                   f"leaves nbcarbon {max(0.0, 0.5 - reads):.2f} ms for its own work: the "
                   f"window's bookkeeping, the record, and the readout's text and HTML. They take "
                   f"about {kern['overhead_ms'] - reads:.2f} ms here. In a hot loop the same work "
                   f"takes a few tens of µs (section 3); in a kernel it runs once per cell, after "
                   f"IPython, ZeroMQ, the event loop and the client have filled the processor's "
                   f"caches with their own code and data, and costs several times that.")
            shell = ((results.get("window") or {}).get("shell") or {}).get("nbcarbon") or {}
            if "cold_overhead_ms" in shell:
                why += (f" Section 3 measures that: in an `InteractiveShell` (no kernel, no "
                        f"message), the whole of `%%carbon` costs {shell['overhead_ms']:.2f} ms "
                        f"over an empty cell, and {shell['cold_overhead_ms']:.2f} ms when "
                        f"{shell['sweep_mb']} MB of other memory is written before each cell, so "
                        f"that no cell finds its code and data in the caches (the empty cell "
                        f"itself goes from {shell['plain_ms']:.2f} to "
                        f"{shell['cold_plain_ms']:.2f} ms).")
            if kern.get("minimal_overhead_ms") is not None:
                minimal = kern["minimal_overhead_ms"]
                why += (f" For scale: a minimal readout (the same hooks also making a dict record "
                        f"and one line of text and HTML) costs {minimal:.2f} ms over an empty "
                        f"cell, so a tool that shows that much "
                        f"{'could meet' if minimal <= 0.5 else 'would miss'} the target here; "
                        f"nbcarbon's readout says per component how each number was "
                        f"obtained, with the region, PUE and warnings, and its session keeps every "
                        f"record to re-price, nest and total, which costs "
                        f"{kern['overhead_ms'] - minimal:.2f} ms more.")
        elif floor is not None:
            why = (f"The floor, measured in the same run: one `display_data` message of the "
                   f"readout's size, sent through the kernel's session with nothing else, costs "
                   f"{floor:.2f} ms over an empty cell (section 3b).")
        else:
            why = "What remains is mostly the readout's message itself (section 3b)."
        led = kern.get("ledger")
        if led:
            why += (f" The measure turns the history ledger off, as the peers' rows turn "
                    f"CodeCarbon's file off; with it on (the default) and cells run back to back, "
                    f"its writer thread adds {led['cost_ms']:+.2f} ms per measured cell, all its "
                    f"writes included ({led['records'] / max(led['batches'], 1):.1f} records per "
                    f"transaction, {led['writer_cpu_us']:.0f} µs of the writer's CPU per record; "
                    f"section 3b).")
        say("`%%carbon` overhead in a real kernel ≤ 0.5 ms", f"{kern['overhead_ms']:.2f} ms "
            f"(IPython's `display` of a bundle that size: {kern['display_overhead_ms']:.2f} ms)",
            kern["overhead_ms"] <= 0.5, why)
    rep = results.get("reprice")
    if rep:
        large, small = rep["large"], rep["small"]
        frontend_s = med(large["frontend_s"]) if large.get("frontend_s") else None
        paced_s = med(large["region_s"])
        say(f"re-pricing with {large['readouts']:,} readouts shown ≤ 1 s",
            (f"{frontend_s:.2f} s in a frontend that holds the readouts (nbcarbon's JupyterLab "
             f"extension); {paced_s:.2f} s readout by readout" if frontend_s is not None else
             f"{paced_s:.2f} s ({small['readouts']:,} readouts: {med(small['region_s']):.2f} s)"),
            (frontend_s if frontend_s is not None else paced_s) <= 1.0,
            (f"With the extension, the kernel sends the readouts' new bundles "
             f"{large['frontend_received'] // max(1, large['frontend_messages']):,} to a comm "
             f"message ({large['frontend_messages']} messages, "
             f"{large['frontend_bytes'] / 1e6:.1f} MB; `nbcarbon/frontends.py`), and the extension "
             f"writes them into the notebook (section 3c). " if frontend_s is not None else "")
            + "Readout by readout (no frontend holds them: Notebook 7 without the extension, VS "
            "Code, a console), the floor is the protocol and the Jupyter server: one message per "
            "readout, and the server forwards at most 1,000 a second, so 10,000 readouts take at "
            "least 10 s through a server with its default limits."
            + (f" Without a server in the way (measured in the same run): {large['readouts']:,} "
               f"bare messages of an update's size, sent through the kernel's session with "
               f"nothing else, take {med(large['floor_s']):.2f} s to arrive, and nbcarbon's whole "
               f"re-price with its pacing turned off takes {med(large['unpaced_s']):.2f} s "
               f"(re-pricing each record and rendering its readout is the difference)."
               if large.get("floor_s") and large.get("unpaced_s") else ""))
        say("a summary's update ≤ 1 MB per re-price",
            f"{large['pue_summary_bytes'] / 1e6:.2f} MB for {large['readouts']:,} cells",
            large["pue_summary_bytes"] <= 1e6,
            "The summary renders every cell's row, in text and HTML (`summary.py`, `magics.py`).")
    bg = results.get("background")
    if bg:
        idle = bg["idle"]
        pct = {t: med([x["cpu_s"] / x["wall_s"] * 100 for x in idle.get(t, [])])
               for t in ("nbcarbon", "nbcarbon-rapl", "carbontracker")}
        if None not in pct.values():
            worst = max(pct["nbcarbon"], pct["nbcarbon-rapl"])
            say("idle CPU ≤ 0.01 % of a core and ≤ Carbontracker's",
                f"{pct['nbcarbon']:.3f} % ({pct['nbcarbon-rapl']:.3f} % on fake RAPL) against "
                f"{pct['carbontracker']:.3f} %", worst <= 0.01 and worst <= pct["carbontracker"])
    clu = results.get("cluster")
    if clu:
        by_n = {row["n"]: row for row in clu["rows"]}
        if 32 in by_n:
            c, floor = med(by_n[32]["collect_ms"]), med(by_n[32]["noop_ms"])
            route = med(by_n[32].get("route_noop_ms") or [])
            say("the Dask boundary ≤ 20 ms at 32 worker processes", f"{c:.1f} ms", c <= 20,
                (f"The floor, measured in the same run: nbcarbon's own route (one request to a "
                 f"handler it installs on the scheduler, which asks every worker at once) to a "
                 f"handler that does nothing takes {route:.1f} ms, and distributed's "
                 f"`run_on_scheduler` {floor:.1f} ms (32 worker processes sharing 2 cores, whose "
                 f"heartbeats alone keep about one core busy); nbcarbon's part is the rest: each "
                 f"worker reads its meters and encodes them (section 6b)." if route is not None
                 else f"distributed's own fan-out to a handler that does nothing takes "
                 f"{floor:.1f} ms here (32 processes sharing 2 cores); nbcarbon's part is the "
                 f"rest (section 6b)."))
    rs = results.get("report")
    if rs:
        t = med(rs["times"]["table"])
        say(f"`nbcarbon report` of {rs['cells']:,} records ≤ 2 s", f"{t:.2f} s", t <= 2.0,
            "Most of it is the standard library's JSON scanner reading the 107 MB file (cell by "
            "cell, so the notebook is never whole in memory) and validating each record "
            "(`notebook.py`, `footprint.py`); tabulating and writing is the rest (`report.py`). "
            "Section 6c has the JSON output too.")
    sc = results.get("scale")
    if sc and "kernel" in sc and "blocks" in sc["kernel"]:
        k = sc["kernel"]
        say("the 10,000-cell run in a real kernel", f"{k['cells']:,} cells (section 6)", True)
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, shorter idle")
    parser.add_argument("--only", default=",".join(MEASURES),
                        help=f"comma-separated subset of {','.join(MEASURES)}")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--command", default="bash benchmarks/run.sh",
                        help="the command line to record in RESULTS.md")
    parser.add_argument("--note", default=os.environ.get("BENCH_NOTE", ""),
                        help="a sentence about the run for RESULTS.md (e.g. that the machine was "
                             "shared); also read from BENCH_NOTE")
    args = parser.parse_args()
    wanted = [m for m in args.only.split(",") if m]
    unknown = set(wanted) - set(MEASURES)
    if unknown:
        parser.error(f"unknown measure(s): {', '.join(sorted(unknown))}")

    date = subprocess.run(["date", "-u"], capture_output=True, text=True).stdout.strip()
    header = machine()
    started = time.perf_counter()
    results: dict[str, dict] = {}
    took: dict[str, float] = {}
    with FakeRaplServer() as fake:
        for name in wanted:
            t0 = time.perf_counter()
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            if name == "import":
                results[name] = bench_import.run(args.quick)
            elif name == "window":
                results[name] = bench_window.run(args.quick, fake.root)
            elif name == "background":
                results[name] = bench_background.run(args.quick, fake.root)
            elif name == "accuracy":
                results[name] = bench_accuracy.run(args.quick)
            elif name == "scale":
                results[name] = bench_scale.run(args.quick)
            elif name == "kernel":
                results[name] = bench_kernel.run(args.quick)
            elif name == "reprice":
                results[name] = bench_reprice.run(args.quick)
            elif name == "cluster":
                results[name] = bench_cluster.run(args.quick)
            elif name == "report":
                results[name] = report_scale.run(args.quick)
            elif name == "predict":
                results[name] = bench_predict.run(args.quick)
            elif name == "attribution":
                results[name] = bench_attribution.run(args.quick)
            took[name] = time.perf_counter() - t0
            print(f"bench: {name} done in {took[name]:.0f} s", file=sys.stderr, flush=True)
    total = time.perf_counter() - started

    sections = {
        "import": ("1. Import time and 2. cold start (fresh process each)", bench_import),
        "window": ("3. Per-window cost (warm process) and `%%carbon` per-cell cost", bench_window),
        "kernel": ("3b. `%%carbon` per-cell cost in a real ipykernel", bench_kernel),
        "reprice": ("3c. Re-pricing the readouts and summaries shown, in a real ipykernel",
                    bench_reprice),
        "background": ("4. Background cost: idle and CPU-bound workload", bench_background),
        "accuracy": ("5. Accuracy where the truth is known (nbcarbon on fake RAPL and NVML)",
                     bench_accuracy),
        "scale": ("6. Scale: a long session", bench_scale),
        "cluster": ("6b. A Dask cluster at the cell's boundaries", bench_cluster),
        "report": ("6c. `nbcarbon report` of a large notebook", report_scale),
        "predict": ("7. Predicting a loop's total from its first epochs (`nbcarbon.epochs`)",
                    bench_predict),
        "attribution": ("8. Shared machines: what the share costs and what it charges",
                        bench_attribution),
    }
    page = [
        "# nbcarbon and its peers: cost and accuracy",
        "",
        f"Produced by `{args.command}` on {date}, in {total / 60:.1f} min"
        + (" (**quick mode**: fewer repetitions, one 31 s idle period, 2 s loop, no 10 s windows, "
           "20 Dask boundaries per size)"
           if args.quick else "") + ".",
        "",
        *header,
        *([f"- Note: {args.note}"] if args.note else []),
        "",
        "Every tool runs in the same virtual environment (`benchmarks/.venv-peers`), interleaved "
        "round-robin. Peers run in their quietest offline configuration: CodeCarbon "
        "`OfflineEmissionsTracker(country_iso_code=\"SWE\", save_to_file=False, log_level=\"error\")`, "
        "Carbontracker `CarbonTracker(verbose=0, log_dir=None)`, Zeus `ZeusMonitor()`; nbcarbon "
        "with `NBCARBON_LEDGER=off` (no file written, as for CodeCarbon; section 3b measures what "
        "the ledger, on by default, adds). Read the \"measured on "
        "this machine\" rows before comparing: a tool that found no hardware can be fast because "
        "it measures nothing.",
        "",
        "## Headline",
        "",
        headline(results),
        "",
        "## The targets of the performance issue, in this run",
        "",
        targets(results),
        "",
    ]
    for name in wanted:
        title, module = sections[name]
        page += [f"## {title}", "", module.render(results[name]), "",
                 f"_Took {took[name]:.0f} s._", ""]
    text = "\n".join(page)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    print(f"bench: wrote {args.out} in {total / 60:.1f} min", file=sys.stderr)


if __name__ == "__main__":
    main()
