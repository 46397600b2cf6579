"""Measure 4: what a running tracker costs when the user is not asking it anything.

Idle: each tool is started and the process sleeps; the CPU time the process uses while it sleeps
(``time.process_time()``, all threads) is the tracker's background cost, given as % of one core.
The peers are started with a window open (their background work is the same either way).
nbcarbon idles as a kernel does between cells: session started, one cell measured, no window open
and no dashboard (its sampler then wakes every 30 s); the ``*-cell`` runs idle inside a long
measured cell instead (a window open: sampling at the full 1 s rate). Every process settles for
6 s first, past the 5 s of full rate that follow a measured cell. Resident memory is compared
with a baseline process that imports nothing and sleeps the same way, so it includes what the
tracker imported. All tools of one repetition idle at the same time, each in its own process:
sleeping processes do not compete for the two cores, and sharing the same wall-clock period
exposes them to the same machine noise.

Workload: a fixed pure-Python loop (calibrated once to the target length, then the same iteration
count for all) runs three times in one process: before the tracker starts, while it runs, after
it stops. The slowdown of a run is the loop's time with the tracker over the mean of the two
without, minus one: comparing with another process instead would measure process state (a
process that imported pandas runs this loop at a different speed), not the tracker. Processes
are interleaved and rotated; "none" runs the same three loops with nothing started, so its
spread is the noise floor. A background thread that takes the GIL shows up in wall time even
when its own CPU time is small.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from common import fmt, rotate, run_child, table

BG_TOOLS = ("none", "nbcarbon", "nbcarbon-rapl", "codecarbon", "carbontracker", "zeus")
IDLE_TOOLS = BG_TOOLS + ("nbcarbon-cell", "nbcarbon-rapl-cell")
#: Seconds each idling process waits before its measured period (see the module docstring).
SETTLE_S = 6
COLS = ("nbcarbon", "nbcarbon-rapl", "codecarbon", "carbontracker", "zeus")
LABELS = ["nbcarbon (this machine)", "nbcarbon (RAPL counters, fake tree)", "codecarbon",
          "carbontracker", "zeus"]


def calibrate(target_s: float) -> int:
    """Iterations of the busy loop that take about ``target_s`` on this machine now."""
    from _child import busy_loop

    n = 200_000
    while True:
        t0 = time.perf_counter()
        busy_loop(n)
        dt = time.perf_counter() - t0
        if dt > 0.2:
            return int(n * target_s / dt)
        n *= 2


def run(quick: bool, fake_root) -> dict:
    # Long enough to hold at least one of nbcarbon's idle wake-ups (every 30 s) in quick mode too.
    idle_s = 31.0 if quick else 61.0
    idle_reps = 1 if quick else 3
    work_s = 2.0 if quick else 5.0
    work_reps = 2 if quick else 5
    errors: dict[str, str] = {}
    idle: dict[str, list[dict]] = {t: [] for t in IDLE_TOOLS}
    describe: dict[str, str] = {}
    for _ in range(idle_reps):
        with ThreadPoolExecutor(len(IDLE_TOOLS)) as pool:
            futures = {t: pool.submit(run_child, "idle", t, SETTLE_S, idle_s, fake_root=fake_root)
                       for t in IDLE_TOOLS}
        for t, f in futures.items():
            r = f.result()
            if "error" in r:
                errors[f"idle {t}"] = r["error"]
            else:
                idle[t].append(r)
                describe[t] = r["describe"]
    n = calibrate(work_s)
    work: dict[str, list[float]] = {t: [] for t in BG_TOOLS}
    work_cpu: dict[str, list[float]] = {t: [] for t in BG_TOOLS}
    work_base: list[float] = []
    for rep in range(work_reps):
        for t in rotate(BG_TOOLS, rep):
            r = run_child("workload", t, n, fake_root=fake_root)
            if "error" in r:
                errors[f"workload {t}"] = r["error"]
            else:
                work[t].append((r["wall_s"] / r["off_wall_s"] - 1) * 100)
                work_cpu[t].append((r["cpu_s"] / r["off_cpu_s"] - 1) * 100)
                work_base.append(r["off_wall_s"])
    return {"idle_s": idle_s, "idle_reps": idle_reps, "work_s": work_s, "work_reps": work_reps,
            "iterations": n, "idle": idle, "work": work, "work_cpu": work_cpu,
            "work_base": work_base, "errors": errors, "describe": describe}


def render(r: dict) -> str:
    idle, work = r["idle"], r["work"]
    base_rss = [x["rss_bytes"] for x in idle["none"]]
    base_rss_med = statistics.median(base_rss) if base_rss else None

    def cpu_pct(t: str) -> str:
        return fmt([x["cpu_s"] / x["wall_s"] * 100 for x in idle[t]], "%", 3)

    def in_cell(t: str) -> str:
        if t not in ("nbcarbon", "nbcarbon-rapl"):
            return "(the row above: started with a window open)"
        return fmt([x["cpu_s"] / x["wall_s"] * 100 for x in idle.get(t + "-cell", [])], "%", 3)

    def cpu_ms(t: str) -> str:
        return fmt([x["cpu_s"] * 1e3 for x in idle[t]], "ms", 1)

    def rss_added(t: str) -> str:
        if base_rss_med is None:
            return "n/a"
        return fmt([(x["rss_bytes"] - base_rss_med) / 2**20 for x in idle[t]], "MiB", 1)

    def rss_growth(t: str) -> str:
        return fmt([x["rss_growth_bytes"] / 2**20 for x in idle[t]], "MiB", 2)

    def slowdown(t: str) -> str:
        return fmt(work[t], "%", 1)

    def cpu_change(t: str) -> str:
        return fmt(r["work_cpu"][t], "%", 1)

    rows = [
        [f"CPU while idle, % of one core ({r['idle_s']:.0f} s; nbcarbon: between cells)"]
        + [cpu_pct(t) for t in COLS],
        ["CPU during a long measured cell (window open), % of one core"]
        + [in_cell(t) for t in COLS],
        [f"CPU time over {r['idle_s']:.0f} s idle"] + [cpu_ms(t) for t in COLS],
        ["resident memory added (vs. a bare interpreter)"] + [rss_added(t) for t in COLS],
        [f"resident memory growth during the {r['idle_s']:.0f} s"] + [rss_growth(t) for t in COLS],
        [f"slowdown of a {r['work_s']:.0f} s CPU-bound loop (wall time)"] + [slowdown(t) for t in COLS],
        ["change in the process's CPU time for the loop"] + [cpu_change(t) for t in COLS],
        ["meters in use"] + [r["describe"].get(t, "failed") for t in COLS],
    ]
    out = [
        f"Idle: {r['idle_reps']} repetitions of {r['idle_s']:.0f} s, all tools idling at once in "
        f"separate processes, after {SETTLE_S} s of settling. The peers idle with a window open; "
        "nbcarbon idles as a kernel between cells (session started, one cell measured, no window "
        "open, no dashboard: the sampler wakes every 30 s), and also inside a long measured cell "
        f"(window open: every second, upkeep every 2 s). Workload: {r['iterations']:,} iterations of a "
        f"pure-Python loop ({fmt(r['work_base'], 's', 2)} without a tracker), before, while and "
        f"after each tracker runs, {r['work_reps']} processes per tool interleaved. The same three "
        f"loops with nothing started give {fmt(work['none'], '%', 1)} (wall) and "
        f"{fmt(r['work_cpu']['none'], '%', 1)} (CPU): that is the noise floor. Median (min–max).",
        "",
        table(["measure", *LABELS], rows),
    ]
    if r["errors"]:
        out += ["", "Failures:"] + [f"- {k}: `{v}`" for k, v in r["errors"].items()]
    return "\n".join(out)

