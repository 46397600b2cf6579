"""Measure 5: how exact nbcarbon's windows are where the true energy is known.

Why fakes: no real machine tells the true energy of an interval, but the test suite's fakes do:
``FakePowercap`` advances real ``energy_uj`` files at a known power profile and wraps them at
``max_energy_range_uj``; here the benchmark's own thread advances it to the clock every 1 ms
(like RAPL hardware, which updates its counters about every 1 ms), so no writer thread can fall
behind on a busy machine; ``FakeNvml`` answers NVML's energy counter (mJ) and power (mW) calls
from the same kind of profile. nbcarbon is run for real: its probe, ``RaplMeter``/``NvmlMeter``
and ``Sampler`` with its background thread at the default 1 s period, windows read with
``Sampler.read_all()`` exactly as ``Session.begin``/``end`` do. Truth is the profile's integral
between the two readings' timestamps.

Each trial is a fresh tree, so every window sees the feature its profile is about: the step
(10 -> 60 W) is placed mid-window, the bursty square wave (5/80 W at 3 Hz) has a random phase,
and the RAPL counter is started so that it wraps mid-window (range 100 J, so long windows wrap
several times).

The baseline is what a tracker that only polls power once per second would report: power
sampled every 1.0 s (random phase) and held until the next sample, integrated over exactly the
same window. It is exact for constant power and cannot see what happens between its samples.
"""

from __future__ import annotations

import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, _fast_tmp, table

sys.path.insert(0, str(REPO))  # tests.fakes lives in the repo, not in the installed package

RANGE_UJ = 100_000_000  # 100 J: wraps every 2.5 s at 40 W
WARMUP_S = 0.3
PERIOD_S = 1.0  # nbcarbon's default sampler period, and the sampling-only baseline's


def profiles(length_s: float, rng: random.Random) -> dict:
    """Power profiles (watts at seconds since the fake started) whose feature falls in the window."""
    mid = WARMUP_S + length_s / 2
    phase = rng.random() / 3.0

    def bursty(t: float) -> float:
        return 80.0 if ((t + phase) * 3.0) % 1.0 < 0.5 else 5.0

    return {
        "constant 40 W": lambda t: 40.0,
        "step 10 -> 60 W": lambda t: 10.0 if t < mid else 60.0,
        "bursty 5/80 W at 3 Hz": bursty,
    }


def sampled_only_j(profile, t0: float, t1: float, phase: float) -> float:
    """Energy a power poller with period ``PERIOD_S`` reports for [t0, t1] (zero-order hold)."""
    k = math.floor((t0 - phase) / PERIOD_S)
    total, t = 0.0, t0
    while t < t1:
        sample_t = phase + k * PERIOD_S
        nxt = min(t1, sample_t + PERIOD_S)
        total += profile(sample_t) * (nxt - t)
        t, k = nxt, k + 1
    return total


def follow(fake, t0: float, until: float) -> None:
    """Advances ``fake`` to the clock (its second 0 is ``t0``) every 1 ms until ``until``."""
    while True:
        now = time.monotonic()
        fake.advance(max(0.0, now - t0 - fake.elapsed_s))
        if now >= until:
            return
        time.sleep(min(0.001, until - now))


def trial(name: str, length_s: float, rng: random.Random) -> dict:
    from nbcarbon.session import Session
    from nbcarbon.settings import Settings
    from tests.fakes.nvml import FakeGpu, FakeNvml
    from tests.fakes.powercap import FakePowercap, integrate

    profile = profiles(length_s, rng)[name]
    with tempfile.TemporaryDirectory(dir=_fast_tmp()) as tmp:  # RAM, like sysfs: fast writes
        root = Path(tmp) / "powercap"
        root.mkdir()
        fake = FakePowercap(root)
        before_mid = integrate(profile, 0.0, WARMUP_S + length_s / 2)
        start_uj = int((RANGE_UJ - (before_mid * 1e6) % RANGE_UJ) % RANGE_UJ)  # wrap mid-window
        fake.add_package(0, profile, range_uj=RANGE_UJ, start_uj=start_uj, core=False,
                         power_limit_w=100.0)
        nvml = FakeNvml([FakeGpu(power=profile, has_counter=True),
                         FakeGpu(power=profile, has_counter=False)])
        t0 = nvml.t0  # second 0 of every fake's profile
        session = Session(Settings(powercap_root=root), {}, nvml=nvml, timezone_name="UTC")
        try:
            sampler = session.start()
            follow(fake, t0, t0 + WARMUP_S)
            r0 = sampler.read_all()
            shown0 = fake.energy_j("intel-rapl:0")  # what the file held: only this thread writes
            follow(fake, t0, r0[0].t_s + length_s)
            r1 = sampler.read_all()
            shown1 = fake.energy_j("intel-rapl:0")
            rapl = next(m for m in sampler.meters if m.channel.method == "rapl-counter")
            wraps = rapl.wraps
        finally:
            session.close()
    out: dict[str, float] = {"wraps": wraps}
    phase = rng.random() * PERIOD_S
    for i, meter in enumerate(sampler.meters):
        ch = meter.channel
        if ch.component not in ("cpu", "gpu"):
            continue
        b, e = r0[i], r1[i]
        if ch.method == "rapl-counter":
            truth = integrate(profile, b.t_s - t0, e.t_s - t0)
            out["sampling-only, 1 s period"] = _err(
                sampled_only_j(profile, b.t_s - t0, e.t_s - t0, phase), truth)
            out["rapl-arithmetic"] = _err(e.total_j - b.total_j, shown1 - shown0)
        else:
            truth = nvml.true_energy_j(int(ch.device[3:]), b.t_s, e.t_s)
        out[ch.method] = _err(e.total_j - b.total_j, truth)
    return out


def _err(measured_j: float, truth_j: float) -> float:
    return (measured_j - truth_j) / truth_j * 100.0


METHODS = {
    "rapl-counter": "nbcarbon, RAPL counter (wrapping)",
    "rapl-arithmetic": "… of which arithmetic (vs. what the counter files held)",
    "nvml-counter": "nbcarbon, NVML energy counter",
    "nvml-power": "nbcarbon, NVML power only (integrated)",
    "sampling-only, 1 s period": "baseline: power sampled every 1 s",
}


def run(quick: bool) -> dict:
    lengths = (0.1, 1.0) if quick else (0.1, 1.0, 10.0)
    trials = {0.1: 5, 1.0: 3} if quick else {0.1: 15, 1.0: 6, 10.0: 3}
    rng = random.Random(20240601)
    names = list(profiles(1.0, rng))
    errs: dict[tuple[str, float, str], list[float]] = {}
    wraps: dict[tuple[str, float], list[int]] = {}
    for length in lengths:
        for _ in range(trials[length]):
            for name in names:  # interleaved: one trial of each profile in turn
                r = trial(name, length, rng)
                wraps.setdefault((name, length), []).append(int(r.pop("wraps")))
                for method, e in r.items():
                    errs.setdefault((name, length, method), []).append(e)
    return {"lengths": lengths, "trials": trials, "names": names, "errs": errs, "wraps": wraps}


def render(r: dict) -> str:
    lengths = r["lengths"]
    header = ["profile", "method", *[f"{L:g} s window" for L in lengths]]
    rows = []
    for name in r["names"]:
        for method, label in METHODS.items():
            cells = []
            for L in lengths:
                v = r["errs"].get((name, L, method))
                cells.append(_cell(v))
            rows.append([name, label, *cells])
        rows.append([name, "RAPL wraps inside each window",
                     *[_wraps(r["wraps"].get((name, L), [])) for L in lengths]])
    trials = ", ".join(f"{n} at {L:g} s" for L, n in r["trials"].items())
    return "\n".join([
        f"Error of the window's energy against the true integral, in %: median of |error| "
        f"(largest |error|), over {trials} trials per profile. Signed errors are in the raw run; "
        "a counter's error at 0.1 s is its 1 ms update step and the fake NVML's 1 ms integration "
        "grid; the arithmetic row compares nbcarbon with the values the counter files actually "
        "held at the two reads, wraps included.",
        "",
        table(header, rows),
    ])


def _cell(values: list[float] | None) -> str:
    if not values:
        return "n/a"
    a = [abs(v) for v in values]
    return f"{statistics.median(a):.2f} % ({max(a):.2f} %)"


def _wraps(values: list[int]) -> str:
    return f"{min(values)}–{max(values)}" if values else "n/a"
