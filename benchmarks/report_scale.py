"""How long ``nbcarbon report`` takes on a notebook of many measured cells (the target: 50,000 in 2 s).

Run: ``.venv/bin/python benchmarks/report_scale.py [--cells 50000] [--runs 3] [--notebook PATH]``

Builds a notebook whose every code cell carries a stdout output and a full readout (text, HTML and
record, as ``%%carbon`` writes them, with CPU, DRAM and memory components), then times the real
console script in a subprocess (interpreter start-up included), for the table and the JSON format,
and prints a Markdown table with the median and worst of the runs. ``--notebook PATH`` keeps the
notebook there and reuses it on the next run (building 50,000 cells takes a while).

Beside the wall-clock time, each run's CPU time (user + system, from the child's resource usage)
is shown: on a shared machine the wall clock measures the neighbours too, the CPU time much less.

``--phases`` prints instead where a report's CPU time goes (the best of the runs, each in a fresh
interpreter): reading the file, parsing it (alone, each cell dropped once parsed), reading the
records (parse included), making the rows, writing the table or the JSON, freeing it all.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from nbcarbon import intensity, readout
from nbcarbon.footprint import Component, Footprint
from nbcarbon.session import priced


def make_notebook(cells: int) -> dict:
    region = priced(intensity.lookup("SE"), "env:NBCARBON_REGION")
    t0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
    out = []
    for i in range(cells):
        comps = (Component("cpu", "package-0", "rapl-counter", 12.5 + i % 7, 25.0),
                 Component("dram", "package-0", "rapl-counter", 1.5, 3.0),
                 Component("memory", "process", "memory-model", 0.2, 0.4))
        fp = Footprint(
            id=uuid.uuid4().hex, cell_id=uuid.uuid4().hex[:8], label=None, execution_count=i + 1,
            started_at=(t0 + timedelta(seconds=i)).isoformat(timespec="milliseconds"),
            duration_s=0.5, status="ok", components=comps, energy_j=sum(c.energy_j for c in comps),
            pue=1.0, region=region, co2e_g=0.0, attribution="machine", nbcarbon_version="0.1.0",
        ).repriced()
        data, metadata = readout.mimebundle(fp, compact=True)
        out.append({"cell_type": "code", "id": fp.cell_id, "metadata": {}, "execution_count": i + 1,
                    "source": f"x{i} = sum(range({i}))\nprint(x{i})",
                    "outputs": [{"output_type": "stream", "name": "stdout", "text": f"{i}\n"},
                                {"output_type": "display_data", "data": data, "metadata": metadata}]})
    return {"cells": out, "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                        "language": "python"}}}


def time_report(script: str, path: Path, fmt: str, runs: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds (user + system) of each run of ``nbcarbon report``."""
    times, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run([script, "report", str(path), "--format", fmt], capture_output=True,
                              text=True)
        times.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if proc.returncode != 0:
            raise SystemExit(f"nbcarbon report failed: {proc.stderr}")
    return times, cpu


def measure(path: Path, cells: int, runs: int, keep: bool = False) -> dict:
    """Build the notebook at ``path`` (unless ``keep`` and it is there) and time both formats,
    the runs of the two formats interleaved so that a change in the machine's load hits both."""
    if not (keep and path.is_file()):
        path.write_text(json.dumps(make_notebook(cells), indent=1))
    script = shutil.which("nbcarbon", path=str(Path(sys.executable).parent)) or "nbcarbon"
    times: dict[str, list[float]] = {"table": [], "json": []}
    cpu: dict[str, list[float]] = {"table": [], "json": []}
    for _ in range(runs):
        for fmt in times:
            wall, used = time_report(script, path, fmt, 1)
            times[fmt] += wall
            cpu[fmt] += used
    return {"cells": cells, "size_mb": path.stat().st_size / 1e6, "runs": runs, "times": times,
            "cpu": cpu}


#: One report, phase by phase, in a fresh interpreter: CPU seconds (user + system) of each.
_PHASES = """
import json, resource, sys
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
from nbcarbon import notebook, report
times = {"start-up and imports": cpu()}
path, fmt = sys.argv[1], sys.argv[2]
with notebook.collector_paused():
    t = cpu(); text = notebook.read_text(path); times["read the file"] = cpu() - t
    t = cpu()
    for _ in notebook._cells_of(text):
        pass
    times["parse (cells dropped)"] = cpu() - t
    del text
    t = cpu(); found = notebook.load_records(path); times["read the records (all)"] = cpu() - t
    t = cpu(); rows = report.rows("big", report.repriced(found.records)); times["rows"] = cpu() - t
    t = cpu(); out = report.render(rows, fmt); times["render " + fmt] = cpu() - t
    t = cpu(); del out, rows, found; times["free"] = cpu() - t
print(json.dumps(times))
"""


def phases(path: Path, runs: int) -> dict[str, dict[str, float]]:
    """The best CPU time of each phase of ``nbcarbon report`` over ``runs`` fresh interpreters."""
    best: dict[str, dict[str, float]] = {}
    for _ in range(runs):
        for fmt in ("table", "json"):
            done = subprocess.run([sys.executable, "-c", _PHASES, str(path), fmt], capture_output=True,
                                  text=True, check=True)
            for name, seconds in json.loads(done.stdout).items():
                mine = best.setdefault(fmt, {})
                mine[name] = min(mine.get(name, seconds), seconds)
    return best


def run(quick: bool) -> dict:
    """For ``bench.py``: ``nbcarbon report`` of a notebook of 50,000 measured cells."""
    with tempfile.TemporaryDirectory() as tmp:
        return measure(Path(tmp) / "big.ipynb", 50_000, 2 if quick else 3)


def render(r: dict) -> str:
    rows = ["| records | file | format | median | worst | CPU (median) | target |",
            "|---|---|---|---|---|---|---|"]
    for fmt, times in r["times"].items():
        cpu = r.get("cpu", {}).get(fmt)
        rows.append(f"| {r['cells']:,} | {r['size_mb']:.0f} MB | {fmt} | "
                    f"{statistics.median(times):.2f} s | {max(times):.2f} s | "
                    f"{f'{statistics.median(cpu):.2f} s' if cpu else '—'} | < 2 s |")
    return "\n".join(rows) + (
        f"\n\nThe real console script in a subprocess (interpreter start-up included), {r['runs']} "
        "runs per format, on a notebook whose every cell carries a stdout output and a full "
        "readout (text, HTML and record, with CPU, DRAM and memory components), built by "
        "`benchmarks/report_scale.py`. CPU is the child's user + system time: on a busy machine "
        "the wall clock also counts the time spent waiting for a core.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--notebook", type=Path, default=None,
                        help="build the notebook here, or reuse it if it is there")
    parser.add_argument("--phases", action="store_true",
                        help="where the CPU time goes, phase by phase, instead of the timings")
    args = parser.parse_args()
    if args.phases:
        with tempfile.TemporaryDirectory() as tmp:
            path = args.notebook or Path(tmp) / "big.ipynb"
            if not path.is_file():
                path.write_text(json.dumps(make_notebook(args.cells), indent=1))
            for fmt, times in phases(path, args.runs).items():
                print(f"{fmt}: " + ", ".join(f"{name} {seconds:.3f} s" for name, seconds in times.items()))
        return
    if args.notebook is not None:
        result = measure(args.notebook, args.cells, args.runs, keep=True)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = measure(Path(tmp) / "big.ipynb", args.cells, args.runs)
    print(render(result))


if __name__ == "__main__":
    main()
