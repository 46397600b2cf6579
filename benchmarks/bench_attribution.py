"""Shared machines: what the share costs at a window's boundaries, and what it charges for real.

``python benchmarks/bench_attribution.py [--quick] [--out FILE]`` (run from the repo root), or
section 8 of ``bash benchmarks/run.sh``.

1. Cost: windows (begin + end, no work inside) on a fake RAPL tree, in ``share`` mode (one
   ``pread`` of ``/proc/stat`` and the tree's CPU clocks at each boundary) and in ``machine`` mode,
   interleaved in blocks in one process, median per window.
2. Charge on this machine, for real: a cell busy on one core for 2 s with the real ``/proc/stat``,
   once alone and once beside an outside process (not a child of this one) busy on another core.
   The package's energy is a fake 40 W tree (this machine has no RAPL), so the energies are
   known; the share is the real one. What else ran on the machine (measured from ``/proc/stat`` in
   a second before each case) is printed with it: it is part of the machine's busy time too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nbcarbon.session import Session  # noqa: E402
from nbcarbon.settings import Settings  # noqa: E402
from tests.fakes.powercap import FakePowercap  # noqa: E402


def busy_s() -> float:
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return sum(int(fields[1 + i]) for i in (0, 1, 2, 5, 6)) / os.sysconf("SC_CLK_TCK")


def session(root: Path, mode: str) -> Session:
    settings = Settings(interval_s=1.0, powercap_root=root, ledger=None, attribution=mode)
    s = Session(settings, {"NBCARBON_REGION": "SE"})
    s.start()
    return s


def cost(root: Path, pairs: int) -> dict[str, float]:
    out: dict[str, list[float]] = {"share": [], "machine": []}
    sessions = {mode: session(root, mode) for mode in out}
    try:
        for block in range(10):
            for mode in (("share", "machine") if block % 2 == 0 else ("machine", "share")):
                s = sessions[mode]
                for _ in range(pairs // 10):
                    t0 = time.perf_counter()
                    s.end(s.begin())
                    out[mode].append((time.perf_counter() - t0) * 1e6)
    finally:
        for s in sessions.values():
            s.close()
    return {mode: statistics.median(v) for mode, v in out.items()}


def spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def charge(root: Path, fake: FakePowercap, outside: bool) -> tuple[float, float, float]:
    """(share charged, the cell's CPU seconds, other load in cores in the second before)."""
    b0 = busy_s()
    time.sleep(1.0)
    other_cores = busy_s() - b0
    pid = None
    if outside:
        # Not a child of this process (its tree would count it as ours): started by a shell that
        # exits at once, in a session of its own, as another user's program would be.
        out = subprocess.run(["sh", "-c", f"setsid {sys.executable} -c 'while 1: pass' >/dev/null 2>&1 & "
                              "echo $!"], capture_output=True, text=True, check=True)
        pid = int(out.stdout.split()[-1])
        time.sleep(0.3)
    s = session(root, "share")
    try:
        w = s.begin("busy")
        c0 = time.process_time()
        t0 = time.monotonic()
        spin(2.0)
        fake.advance(time.monotonic() - t0)
        cpu = time.process_time() - c0
        fp = s.end(w)
    finally:
        s.close()
        if pid is not None:
            os.kill(pid, 9)
    (c,) = [c for c in fp.components if c.component == "cpu"]
    return (c.share.fraction if c.share else 1.0), cpu, other_cores


def run(quick: bool) -> dict:
    pairs = 1000 if quick else 4000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "powercap"
        fake = FakePowercap(root)
        fake.add_package(0, 40.0, dram=5.0, range_uj=10**12)
        costs = cost(root, pairs)
        cases = (False, True) * (1 if quick else 2)
        rows = [(outside, *charge(root, fake, outside)) for outside in cases]
    return {"pairs": pairs, "costs": costs, "rows": rows, "load": os.getloadavg()}


def render(r: dict) -> str:
    lines = [
        f"Windows (begin + end, nothing inside) on a fake RAPL tree, {r['pairs']} per mode, "
        "interleaved in blocks in one process (`benchmarks/bench_attribution.py`):",
        "",
        "| window, median | µs |",
        "|---|---|",
        f"| `attribution: machine` | {r['costs']['machine']:.1f} |",
        f"| `attribution: share` (`/proc/stat` and the tree's CPU time at both ends, the split) "
        f"| {r['costs']['share']:.1f} |",
        "",
        "A cell busy on one core for 2 s, real `/proc/stat`, a fake 40 W package, with and without "
        "an outside process (not in the kernel's tree) busy on another core. \"Other load\" is what "
        "the machine was busy with in the second before, in cores: it is part of the machine's busy "
        "time too, so it lowers the share.",
        "",
        "| outside process | other load before (cores) | cell's CPU s | share charged |",
        "|---|---|---|---|",
    ]
    for outside, share, cpu, other in r["rows"]:
        lines.append(f"| {'busy' if outside else 'none'} | {other:.2f} | {cpu:.2f} | {share * 100:.0f} % |")
    lines += ["", "Load average at the end: " + " ".join(f"{x:.2f}" for x in r["load"]) + "."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    text = render(run(args.quick)) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
