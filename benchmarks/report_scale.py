"""How long ``nbcarbon report`` takes on a notebook of many measured cells (the target: 5,000 under 1 s).

Run: ``.venv/bin/python benchmarks/report_scale.py [--cells 5000] [--runs 5]``

Builds a notebook whose every code cell carries a stdout output and a full readout (text, HTML and
record, as ``%%carbon`` writes them, with CPU, DRAM and memory components), then times the real
console script in a subprocess (interpreter start-up included), for the table and the JSON format,
and prints a Markdown table with the median and worst of the runs.
"""

from __future__ import annotations

import argparse
import json
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


def time_report(script: str, path: Path, fmt: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run([script, "report", str(path), "--format", fmt], capture_output=True,
                              text=True)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"nbcarbon report failed: {proc.stderr}")
    return times


def run(quick: bool) -> dict:
    """For ``bench.py``: ``nbcarbon report`` of a notebook of 50,000 measured cells."""
    cells, runs = 50_000, 2 if quick else 3
    script = shutil.which("nbcarbon", path=str(Path(sys.executable).parent)) or "nbcarbon"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.ipynb"
        path.write_text(json.dumps(make_notebook(cells), indent=1))
        size_mb = path.stat().st_size / 1e6
        times = {fmt: time_report(script, path, fmt, runs) for fmt in ("table", "json")}
    return {"cells": cells, "size_mb": size_mb, "runs": runs, "times": times}


def render(r: dict) -> str:
    rows = ["| records | file | format | median | worst | target |", "|---|---|---|---|---|---|"]
    for fmt, times in r["times"].items():
        rows.append(f"| {r['cells']:,} | {r['size_mb']:.0f} MB | {fmt} | "
                    f"{statistics.median(times):.2f} s | {max(times):.2f} s | < 2 s |")
    return "\n".join(rows) + (
        f"\n\nThe real console script in a subprocess (interpreter start-up included), {r['runs']} "
        "runs per format, on a notebook whose every cell carries a stdout output and a full "
        "readout (text, HTML and record, with CPU, DRAM and memory components), built by "
        "`benchmarks/report_scale.py`.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    script = shutil.which("nbcarbon", path=str(Path(sys.executable).parent)) or "nbcarbon"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.ipynb"
        path.write_text(json.dumps(make_notebook(args.cells), indent=1))
        size_mb = path.stat().st_size / 1e6
        results = {fmt: time_report(script, path, fmt, args.runs) for fmt in ("table", "json")}
    print("| cells | file | format | median | worst | target |")
    print("|---|---|---|---|---|---|")
    for fmt, times in results.items():
        ok = "under 1 s" if max(times) < 1.0 else "**over 1 s**"
        print(f"| {args.cells:,} | {size_mb:.1f} MB | {fmt} | {statistics.median(times):.3f} s | "
              f"{max(times):.3f} s | {ok} |")


if __name__ == "__main__":
    main()
