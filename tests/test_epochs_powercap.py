"""nbcarbon.epochs() end to end over a fake powercap tree at a known, constant power.

Unlike ``test_epochs.py`` (a fake meter whose total the loop body sets), nothing here is faked
above the hardware boundary: the session probes a ``FakePowercap`` tree whose package draws
40 W and its DRAM 5 W, and the RAPL counter meter reads the ``energy_uj`` files. Each loop body
runs the fake's counters for its nominal length (in real time, in small steps), so each
iteration's energy is exactly 45 W times that length, whatever the machine's load does to how
long the iteration really takes.

The loop: 8 iterations, the first a slow warm-up (0.6 s), the others 0.2 s each. Rendering in
a Jupyter kernel is covered by
``tests/test_epochs.py::test_in_a_kernel_the_widget_ends_as_a_static_summary``.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbcarbon.intensity import lookup
from nbcarbon.loops import BudgetWarning, Epochs, epochs
from nbcarbon.predict import mean_extrapolation, predict
from nbcarbon.session import Session
from nbcarbon.settings import Settings
from tests.fakes.nvml import FakeNvml
from tests.fakes.powercap import FakePowercap
from tests.fakes.procstat import quiet_stat

POWER_W = 45.0  # package 40 W + DRAM 5 W: both metered by counters, no model
N = 8
FIRST_S, REST_S = 0.6, 0.2
NOMINAL_J = POWER_W * (FIRST_S + (N - 1) * REST_S)  # 90 J
G_PER_J = lookup("SE").g_per_kwh / 3.6e6  # the loops are priced region="SE", pue=1.0


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def fake(tmp_path: Path) -> FakePowercap:
    fake = FakePowercap(tmp_path)
    fake.add_package(0, 40.0, range_uj=262_143_328_850, dram=5.0, power_limit_w=60.0)
    return fake


@pytest.fixture
def session(tmp_path: Path, fake: FakePowercap) -> Iterator[Session]:
    s = Session(Settings(interval_s=0.05, powercap_root=tmp_path, ledger=None,
                         proc_stat=quiet_stat(tmp_path.parent)),
                {"NBCARBON_REGION": "SE"}, nvml=FakeNvml(gpus=[]))
    yield s
    s.close()


def run(loop: Epochs[int], fake: FakePowercap) -> list[int]:
    seen = []
    for i in loop:
        fake.run(FIRST_S if i == 0 else REST_S)
        seen.append(i)
    return seen


def loop_of(session: Session, **kwargs) -> Epochs[int]:
    kwargs.setdefault("progress", None)
    return epochs(range(N), session=session, region="SE", pue=1.0, **kwargs)


def test_prediction_after_three_iterations_within_5_percent_and_shown_in_a_terminal(
        session: Session, fake: FakePowercap) -> None:
    term = Terminal()
    loop = loop_of(session, predict_after=3, progress="text", stream=term)
    assert run(loop, fake) == list(range(N))
    records = loop.records
    assert len(records) == N and all(fp.status == "ok" for fp in records)
    assert {(c.component, c.method) for fp in records for c in fp.components} == {
        ("cpu", "rapl-counter"), ("dram", "rapl-counter")}
    # The meters measure exactly what the fake's counters ran inside each iteration.
    expected = [POWER_W * (FIRST_S if i == 0 else REST_S) for i in range(N)]
    assert [fp.energy_j for fp in records] == pytest.approx(expected, abs=1e-4)
    assert all(fp.warnings == () for fp in records)
    measured_j = sum(fp.energy_j for fp in records)

    first = loop.predictions[0]
    assert first.done == 3 and first.warmup == 1 and "warm-up" in first.method
    # One warm-up apart, two steady iterations of 9 J extrapolate to exactly the loop's 90 J.
    assert first.energy_j == pytest.approx(measured_j, rel=1e-4)
    # Two identical steady iterations: the interval closes on the prediction (to the counter's uJ).
    assert first.energy_low_j - 1e-4 <= measured_j <= first.energy_high_j + 1e-4
    # The loop's own window brackets its iterations and nothing else ran the counters.
    assert loop.footprint.energy_j == pytest.approx(measured_j, abs=1e-4)
    # Wall time is the machine's to decide: the loop must hand the predictor the iterations'
    # real durations (each at least its nominal length), whatever they were.
    assert all(fp.duration_s >= nominal for fp, nominal in
               zip(records, [FIRST_S] + [REST_S] * (N - 1), strict=True))
    observed = predict([(fp.duration_s, fp.energy_j) for fp in records[:3]], N)
    assert first.duration_s == pytest.approx(observed.duration_s)
    assert first.energy_j == pytest.approx(observed.energy_j)
    # The slow first iteration is what makes this a test: extrapolating the mean is ~33% high.
    naive = mean_extrapolation([fp.energy_j for fp in records[:3]], N)
    assert naive > 1.2 * measured_j

    text = term.getvalue()
    assert "\r" in text  # one line rewritten in place
    lines = text.split("\r")
    shown = [ln for ln in lines if ln.startswith(f"3/{N} epochs")]
    assert shown and " · total " in shown[0] and "CO2e" in shown[0] and " left" in shown[0]
    assert not any(" · total " in ln for ln in lines if ln.startswith((f"1/{N} ", f"2/{N} ")))
    assert f"nbcarbon: {N}/{N} epochs" in text and "predicted after epoch 3" in text
    # The last prediction's method, as made: how many iterations it sets apart as warm-up
    # depends on their durations too, which a busy machine stretches (the energies are exact).
    assert f"  prediction method: {loop.prediction.method}\n" in text
    assert loop.prediction.method.startswith("first ") and "set apart as warm-up" in text


def budget_g(share: float) -> float:
    """Grams of CO2e for ``share`` of the loop's nominal energy."""
    return share * NOMINAL_J * G_PER_J


# The budget is 85% of the nominal 90 J. The first prediction, after 3 iterations (1 warm-up,
# 2 steady), is 90 J whatever the machine's load: over.

def test_budget_warn_warns_once_and_the_loop_completes(session: Session,
                                                       fake: FakePowercap) -> None:
    loop = loop_of(session, predict_after=3, budget_g=budget_g(0.85), on_budget="warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run(loop, fake) == list(range(N))
    budget = [w for w in caught if issubclass(w.category, BudgetWarning)]
    assert len(budget) == 1 and not loop.stopped and loop.over_budget
    message = str(budget[0].message)
    assert "over the budget of" in message and "not a 95% interval yet" in message  # 2 steady
    assert "the loop goes on (on_budget='warn')" in message and f"after epoch 3/{N}" in message
    assert len(loop.records) == N


def test_budget_stop_ends_the_loop_after_the_current_iteration(session: Session,
                                                               fake: FakePowercap) -> None:
    out = io.StringIO()
    loop = loop_of(session, predict_after=3, budget_g=budget_g(0.85), on_budget="stop",
                   progress="text", stream=out)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # stop prints its message; it does not warn
        seen = run(loop, fake)
    assert loop.stopped and seen == [0, 1, 2]  # iteration 3 ran to its end; 4 never started
    assert len(loop.records) == 3 and all(fp.status == "ok" for fp in loop.records)
    # No window left open for an iteration not run: the iterations, then the loop's record.
    assert loop.records == session.records[:-1] and session.records[-1] is loop.footprint
    assert loop.footprint.energy_j == pytest.approx(POWER_W * (FIRST_S + 2 * REST_S), abs=1e-4)
    assert loop.prediction is not None and loop.prediction.done == 3
    assert loop.prediction.energy_j * G_PER_J > loop.budget_g
    assert loop.message is not None and "stopping the loop here (on_budget='stop')" in loop.message
    assert f"after epoch 3/{N}" in loop.message
    text = out.getvalue()
    assert loop.message in text and "stopped by the budget" in text
