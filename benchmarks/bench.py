"""Runs every measure and writes ``benchmarks/RESULTS.md``; started by ``benchmarks/run.sh``.

Why one driver: the numbers only compare if they come from the same run, on the same machine,
with the same interpreter, so this records the date, the machine and the package versions next
to the tables, and the exact command that produced them. Each measure is a small module
(``bench_import``, ``bench_window``, ``bench_background``, ``bench_accuracy``, ``bench_scale``,
``bench_predict``)
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
import bench_background  # noqa: E402
import bench_import  # noqa: E402
import bench_kernel  # noqa: E402
import bench_predict  # noqa: E402
import bench_scale  # noqa: E402
import bench_window  # noqa: E402
from common import HERE, TOOLS, FakeRaplServer, table  # noqa: E402

MEASURES = ("import", "window", "kernel", "background", "accuracy", "scale", "predict")


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
    return [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores; RAM {mem_gib} GiB; "
        f"Linux {platform.release()}; RAPL readable: {rapl}; NVIDIA GPU: {gpu}",
        f"- Python {platform.python_version()} ({sys.executable})",
        f"- Packages: {', '.join(versions)}",
        f"- Load average at start (1, 5, 15 min): {load}",
    ]


def headline(results: dict) -> str:
    """The one table for the README: each tool's median for each measure."""
    med = lambda v: statistics.median(v) if v else None  # noqa: E731

    def cell(v: float | None, unit: str, digits: int = 1) -> str:
        return "n/a" if v is None else f"{v:.{digits}f} {unit}"

    rows = []
    imp = results.get("import")
    if imp:
        rows.append(["import of the tracker module", *[cell(med(imp["imports"][t]), "ms") for t in TOOLS],
                     "< 150 ms"])
        rows.append(["cold start (construct, start, stop)",
                     *[cell(med(imp["cold"][t]), "ms") for t in TOOLS], "< 50 ms"])
    win = results.get("window")
    if win:
        res = win["res"]
        rows.append(["one window (begin + end), this machine",
                     *[cell(med(res[t]["pair"]), "µs", 0) for t in TOOLS], "< 200 µs with counters"])
        rows.append(["one window, RAPL counters (fake tree)",
                     cell(med(res["nbcarbon-rapl"]["pair"]), "µs", 0), "—", "—", "—",
                     "< 200 µs"])
        sh = win["shell"].get("nbcarbon")
        rows.append(["`%%carbon` per-cell overhead, readout included",
                     cell(sh["overhead_ms"] if sh else None, "ms", 2), "—", "—", "—", "< 1 ms"])
    kern = results.get("kernel")
    if kern:
        rows.append(["`%%carbon` per-cell overhead in a real ipykernel, readout delivered",
                     f"{kern['overhead_ms']:.2f} ms ({kern['display_overhead_ms']:.2f} ms of it: "
                     "sending any output that size)", "—", "—", "—", "< 1 ms"])
    bg = results.get("background")
    if bg:
        idle = bg["idle"]
        rows.append(["background CPU while idle (% of one core)",
                     *[cell(med([x["cpu_s"] / x["wall_s"] * 100 for x in idle[t]]), "%", 3)
                       for t in TOOLS], "< 0.05 %"])
        rows.append(["background CPU while idle, RAPL counters (fake tree)",
                     cell(med([x["cpu_s"] / x["wall_s"] * 100 for x in idle["nbcarbon-rapl"]]),
                          "%", 3), "—", "—", "—", "< 0.05 %"])
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
    return table(["measure (median)", *TOOLS, "target / reference"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, shorter idle")
    parser.add_argument("--only", default=",".join(MEASURES),
                        help=f"comma-separated subset of {','.join(MEASURES)}")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--command", default="bash benchmarks/run.sh",
                        help="the command line to record in RESULTS.md")
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
            elif name == "predict":
                results[name] = bench_predict.run(args.quick)
            took[name] = time.perf_counter() - t0
            print(f"bench: {name} done in {took[name]:.0f} s", file=sys.stderr, flush=True)
    total = time.perf_counter() - started

    sections = {
        "import": ("1. Import time and 2. cold start (fresh process each)", bench_import),
        "window": ("3. Per-window cost (warm process) and `%%carbon` per-cell cost", bench_window),
        "kernel": ("3b. `%%carbon` per-cell cost in a real ipykernel", bench_kernel),
        "background": ("4. Background cost: idle and CPU-bound workload", bench_background),
        "accuracy": ("5. Accuracy where the truth is known (nbcarbon on fake RAPL and NVML)",
                     bench_accuracy),
        "scale": ("6. Scale: a long session", bench_scale),
        "predict": ("7. Predicting a loop's total from its first epochs (`nbcarbon.epochs`)",
                    bench_predict),
    }
    page = [
        "# nbcarbon and its peers: cost and accuracy",
        "",
        f"Produced by `{args.command}` on {date}, in {total / 60:.1f} min"
        + (" (**quick mode**: fewer repetitions, 5 s idle, 2 s loop, no 10 s windows)"
           if args.quick else "") + ".",
        "",
        *header,
        "",
        "Every tool runs in the same virtual environment (`benchmarks/.venv-peers`), interleaved "
        "round-robin. Peers run in their quietest offline configuration: CodeCarbon "
        "`OfflineEmissionsTracker(country_iso_code=\"SWE\", save_to_file=False, log_level=\"error\")`, "
        "Carbontracker `CarbonTracker(verbose=0, log_dir=None)`, Zeus `ZeusMonitor()`; nbcarbon "
        "with `NBCARBON_LEDGER=off` (no file written, as for CodeCarbon). Read the \"measured on "
        "this machine\" rows before comparing: a tool that found no hardware can be fast because "
        "it measures nothing.",
        "",
        "## Headline",
        "",
        headline(results),
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
