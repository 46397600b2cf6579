"""Measure 7: predicting a training loop's total energy from its first epochs.

Why synthetic traces: the truth of a prediction is the whole loop's measured total, and a
benchmark cannot train fifty real epochs per trial. What decides the error is the shape of the
per-epoch costs, so the traces are generated from the shapes seen in practice, with seeded noise:

- steady: every epoch alike (duration 60 s x (1 + 3% noise), power 250 W x (1 + 2% noise));
- warm-up 1: as steady, but the first epoch takes 3x (JIT, CUDA context, autotuning, caches);
- warm-up 2: the same with a second slow epoch at 1.6x (a data cache filled over two epochs);
- drifting: each epoch 1% dearer than the one before (growing sequences, curriculum, thermal
  throttling), so the last costs ~1.5x the first;
- validation: as steady, but every 5th epoch also validates and costs 1.5x.

For each trace and each number ``k`` of epochs observed out of 50, the loop's total energy is
predicted by ``nbcarbon.predict.predict`` (warm-up set apart, mean of the steady epochs, a
trend line when significant, a 95% interval) and by plain linear extrapolation (mean of the
``k`` epochs times 50), and each is compared with the trace's true total. Pure Python, no
hardware, a few seconds.
"""

from __future__ import annotations

import random
import statistics
import sys

from common import REPO, table

sys.path.insert(0, str(REPO))

from nbcarbon.predict import mean_extrapolation, predict  # noqa: E402

TOTAL = 50
OBSERVED = (2, 3, 5, 10, 20)
SEED = 20240607
BASE_S, BASE_W = 60.0, 250.0
SHAPES = ("steady", "warm-up 1", "warm-up 2", "drifting", "validation")


def trace(shape: str, rng: random.Random, total: int = TOTAL) -> list[tuple[float, float]]:
    """Per-epoch ``(duration_s, energy_j)`` of one loop of ``shape``."""
    out = []
    for i in range(total):
        factor = 1.0
        if shape.startswith("warm-up"):
            factor = 3.0 if i == 0 else 1.6 if i == 1 and shape == "warm-up 2" else 1.0
        elif shape == "drifting":
            factor = 1.0 + 0.01 * i
        elif shape == "validation":
            factor = 1.5 if i % 5 == 4 else 1.0
        duration = BASE_S * factor * max(0.5, 1 + rng.gauss(0, 0.03))
        power = BASE_W * max(0.5, 1 + rng.gauss(0, 0.02))
        out.append((duration, duration * power))
    return out


def run(quick: bool) -> dict:
    seeds = 50 if quick else 200
    rng = random.Random(SEED)
    errs: dict[tuple[str, int, str], list[float]] = {}
    covered: dict[tuple[str, int], list[bool]] = {}
    for _ in range(seeds):
        for shape in SHAPES:
            t = trace(shape, rng)
            truth = sum(e for _, e in t)
            for k in OBSERVED:
                p = predict(t[:k], TOTAL)
                naive = mean_extrapolation([e for _, e in t[:k]], TOTAL)
                errs.setdefault((shape, k, "nbcarbon"), []).append((p.energy_j - truth) / truth * 100)
                errs.setdefault((shape, k, "naive"), []).append((naive - truth) / truth * 100)
                covered.setdefault((shape, k), []).append(p.energy_low_j <= truth <= p.energy_high_j)
    return {"seeds": seeds, "errs": errs, "covered": covered}


def _cell(values: list[float]) -> str:
    a = sorted(abs(v) for v in values)
    p90 = a[min(len(a) - 1, int(0.9 * len(a)))]
    return f"{statistics.median(a):.1f} % ({p90:.1f} %)"


def _bias(values: list[float]) -> str:
    return f"{statistics.median(values):+.1f} %"


def render(r: dict) -> str:
    rows = []
    for shape in SHAPES:
        for k in OBSERVED:
            nb, naive = r["errs"][(shape, k, "nbcarbon")], r["errs"][(shape, k, "naive")]
            cov = r["covered"][(shape, k)]
            rows.append([shape, str(k), _cell(nb), _bias(nb), _cell(naive), _bias(naive),
                         f"{sum(cov) / len(cov) * 100:.0f} %"])
    header = ["trace shape", "epochs seen", "nbcarbon: median |error| (90th pct)", "nbcarbon: median error",
              "mean × 50: median |error| (90th pct)", "mean × 50: median error",
              "truth inside nbcarbon's 95% interval"]
    return "\n".join([
        f"Error of the predicted total energy of a {TOTAL}-epoch loop against its true total, in %, "
        f"after seeing the first k epochs: median of |error| (90th percentile of |error|) and median "
        f"signed error, over {r['seeds']} seeded traces per shape (`benchmarks/bench_predict.py`). "
        "Shapes: steady (3% noise in time, 2% in power), warm-up 1 (first epoch 3x), warm-up 2 "
        "(first epoch 3x, second 1.6x), "
        "drifting (+1% per epoch), validation (every 5th epoch 1.5x). \"mean × 50\" is plain "
        "linear extrapolation, the mean of the epochs seen times 50. The interval assumes the "
        "epochs vary independently around a level or line; a periodic validation epoch not yet "
        "seen, or a drift too small to be significant in a few epochs, is outside what it covers.",
        "",
        table(header, rows),
    ])


if __name__ == "__main__":
    print(render(run("--quick" in sys.argv)))
