"""Record per-epoch traces of real CPU training loops, measured by nbcarbon, as benchmark fixtures.

Why real traces: the synthetic shapes of ``bench_predict.py`` are what the predictor's author
expected; a real loop on a shared machine also has what nobody wrote down (allocator and cache
effects, other processes, a first epoch a little slow, noise that is not independent). The
benchmark reads only the JSON files written here, so it needs no scikit-learn.

Each loop trains scikit-learn's ``MLPClassifier`` with ``partial_fit`` (one pass per epoch) on
the digits data shipped with scikit-learn, enlarged 5x by shifting each image one pixel in each
direction (a common augmentation), so an epoch takes ~0.15 s. Every epoch is one
``nbcarbon.track()`` window; its ``duration_s`` and ``energy_j`` are stored. On a machine
without RAPL (like the one the committed fixtures come from), the energy is nbcarbon's CPU-time
model, CPU seconds of this process times the CPU's power per core, and each file says which
meter it was. Shapes:

- ``constant``: the same training set every epoch;
- ``growing``: the training set grows each epoch (a curriculum, or active learning adding
  labelled data), from 10% of the data by 3% of it per epoch, so epochs slow down;
- ``shrinking``: hard-example mining: each epoch scores all examples, then trains only on those
  the model still gets wrong or is unsure of (at least 5% of the data), so epochs speed up as
  it learns, and level off;
- ``validation``: as ``constant``, but every 5th epoch also scores a validation set as large
  as the training set (the digits shifted by 2 pixels instead of 1).

Run from the repository root (two to three minutes on 2 cores, longer when the machine is busy;
numpy held to one thread so the epochs are not at the mercy of a thread pool on a shared
machine)::

    .venv/bin/pip install scikit-learn   # only the recording needs it
    .venv/bin/python benchmarks/traces/record.py [--epochs 30] [--runs 8] [--only NAME,...] [--out DIR]

Each run writes one JSON file per shape into ``--out`` (default ``benchmarks/traces/new``), so a
new recording never overwrites the sessions the benchmark reads (``session1`` ... ``session3``;
``bench_predict.py`` reads every ``benchmarks/traces/*/*.json``, each directory one session).
"""

from __future__ import annotations

import os

# Before numpy is imported: one BLAS thread (see the docstring), and no ledger file written.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ["NBCARBON_LEDGER"] = "off"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

import numpy as np  # noqa: E402

import nbcarbon  # noqa: E402

try:
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
except ImportError:  # pragma: no cover - a message, not a code path
    sys.exit("record.py needs scikit-learn: .venv/bin/pip install scikit-learn")

SHAPES = ("constant", "growing", "shrinking", "validation")
CLASSES = np.arange(10)
VALIDATE_EVERY = 5


def augmented(shifts: tuple[int, ...] = (-1, 1)) -> tuple[np.ndarray, np.ndarray]:
    """Digits plus copies shifted by each of ``shifts`` pixels along each axis."""
    x, y = load_digits(return_X_y=True)
    images = (x / 16.0).reshape(-1, 8, 8)
    copies = [images] + [np.roll(images, s, axis=a) for a in (1, 2) for s in shifts]
    return np.concatenate(copies).reshape(-1, 64), np.tile(y, len(copies))


def loop(shape: str, seed: int) -> Callable[[int], None]:
    """The body of epoch ``i`` of a loop of ``shape`` (data and model prepared here, unmeasured)."""
    rng = np.random.default_rng(seed)
    x, y = augmented()
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    model = MLPClassifier(hidden_layer_sizes=(256, 128), batch_size=64, random_state=seed)
    n = len(y)
    if shape == "constant":
        return lambda i: model.partial_fit(x, y, classes=CLASSES)
    if shape == "growing":
        def grow(i: int) -> None:
            size = min(n, int(n * (0.10 + 0.03 * i)))
            model.partial_fit(x[:size], y[:size], classes=CLASSES)
        return grow
    if shape == "shrinking":
        def mine(i: int) -> None:
            if i == 0:
                model.partial_fit(x, y, classes=CLASSES)
                return
            proba = model.predict_proba(x)
            hard = np.flatnonzero(proba[np.arange(n), y] < 0.95)
            if len(hard) < n // 20:
                hard = rng.choice(n, n // 20, replace=False)
            model.partial_fit(x[hard], y[hard], classes=CLASSES)
        return mine
    if shape == "validation":
        xv, yv = augmented(shifts=(-2, 2))
        def train_and_validate(i: int) -> None:
            model.partial_fit(x, y, classes=CLASSES)
            if i % VALIDATE_EVERY == VALIDATE_EVERY - 1:
                model.score(xv, yv)
        return train_and_validate
    raise ValueError(f"unknown shape {shape!r}")


def record(shape: str, epochs: int, seed: int) -> list[list[float]]:
    """``[duration_s, energy_j]`` of each epoch of one loop, each epoch one nbcarbon window."""
    body = loop(shape, seed)
    out = []
    for i in range(epochs):
        with nbcarbon.track(f"{shape} epoch {i + 1}/{epochs}") as t:
            body(i)
        fp = t.footprint
        assert fp is not None
        out.append([round(fp.duration_s, 5), round(fp.energy_j, 5)])
    return out


def meters() -> str:
    """What measured the energy on this machine (component: method), from one short window."""
    with nbcarbon.track("probe") as t:
        sum(range(100_000))
    assert t.footprint is not None
    return ", ".join(sorted({f"{c.component}: {c.method}" for c in t.footprint.components}))


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--only", default=",".join(SHAPES))
    parser.add_argument("--out", type=Path, default=HERE / "new")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    warnings.simplefilter("ignore", ConvergenceWarning)
    measured_by = meters()
    note = ("energy measured by nbcarbon.track() per epoch with " + measured_by + "; "
            + ("there is no RAPL counter on this machine, so it is CPU seconds of the process "
               "times the CPU's power per core (nbcarbon's CPU-time model), not a power reading"
               if "cpu-time-model" in measured_by else "read from the energy counters"))
    for shape in args.only.split(","):
        started = time.perf_counter()
        load_before = os.getloadavg()[0]
        runs = [record(shape, args.epochs, seed) for seed in range(args.runs)]
        doc = {
            "shape": shape,
            "loop": _describe(shape),
            "energy": note,
            "machine": f"{cpu_model()}, {os.cpu_count()} logical CPUs",
            # Other work on the machine changes an epoch's CPU time: say how busy it was.
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "versions": {d: metadata.version(d) for d in ("nbcarbon", "scikit-learn", "numpy")},
            "python": platform.python_version(),
            "recorded": time.strftime("%Y-%m-%d", time.gmtime()),
            "command": " ".join(["python benchmarks/traces/record.py", *sys.argv[1:]]),
            "columns": ["duration_s", "energy_j"],
            "runs": runs,
        }
        path = args.out / f"{shape}.json"
        path.write_text(json.dumps(doc, indent=None, separators=(",", ":")) + "\n")
        took = time.perf_counter() - started
        print(f"record: {shape}: {args.runs} runs x {args.epochs} epochs in {took:.0f} s -> "
              f"{path.name} ({path.stat().st_size} bytes)", file=sys.stderr)


def _describe(shape: str) -> str:
    """The docstring's line for ``shape``, so a fixture says what loop it came from."""
    text = " ".join((__doc__ or "").split())
    start = text.index(f"``{shape}``:")
    end = text.find("; - ``", start)
    end = text.find(". Run from", start) if end < 0 else end
    return text[start:end].replace("``", "")


if __name__ == "__main__":
    main()
