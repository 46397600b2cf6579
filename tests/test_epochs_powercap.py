"""nbcarbon.epochs() end to end over a fake powercap tree at a known, constant power.

Unlike ``test_epochs.py`` (a fake meter whose total the loop body sets), nothing here is faked
above the hardware boundary: the session probes a ``FakePowercap`` tree whose package draws
40 W and its DRAM 5 W, the RAPL counter meter reads the ``energy_uj`` files, and each
iteration's energy is 45 W times however long the iteration really took. The loop bodies
sleep (not spin), so a loaded machine changes the iterations' lengths a little, not the power.

The loop: 8 iterations, the first a slow warm-up (0.6 s), the others 0.2 s each. Rendering in
a Jupyter kernel is covered by
``tests/test_epochs.py::test_in_a_kernel_the_widget_ends_as_a_static_summary``.
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbcarbon.intensity import lookup
from nbcarbon.loops import BudgetWarning, Epochs, epochs
from nbcarbon.predict import mean_extrapolation
from nbcarbon.session import Session
from nbcarbon.settings import Settings
from tests.fakes.nvml import FakeNvml
from tests.fakes.powercap import FakePowercap

POWER_W = 45.0  # package 40 W + DRAM 5 W: both metered by counters, no model
N = 8
FIRST_S, REST_S = 0.6, 0.2
NOMINAL_J = POWER_W * (FIRST_S + (N - 1) * REST_S)  # 90 J
G_PER_J = lookup("SE").g_per_kwh / 3.6e6  # the loops are priced region="SE", pue=1.0


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    fake = FakePowercap(tmp_path)
    fake.add_package(0, 40.0, range_uj=262_143_328_850, dram=5.0, power_limit_w=60.0)
    with fake:
        s = Session(Settings(interval_s=0.05, powercap_root=tmp_path, ledger=None),
                    {"NBCARBON_REGION": "SE"}, nvml=FakeNvml(gpus=[]))
        yield s
        s.close()


def run(loop: Epochs[int]) -> list[int]:
    seen = []
    for i in loop:
        time.sleep(FIRST_S if i == 0 else REST_S)
        seen.append(i)
    return seen


def loop_of(session: Session, **kwargs) -> Epochs[int]:
    kwargs.setdefault("progress", None)
    return epochs(range(N), session=session, region="SE", pue=1.0, **kwargs)


def test_prediction_after_three_iterations_within_5_percent_and_shown_in_a_terminal(
        session: Session) -> None:
    term = Terminal()
    loop = loop_of(session, predict_after=3, progress="text", stream=term)
    assert run(loop) == list(range(N))
    records = loop.records
    assert len(records) == N and all(fp.status == "ok" for fp in records)
    assert {(c.component, c.method) for fp in records for c in fp.components} == {
        ("cpu", "rapl-counter"), ("dram", "rapl-counter")}
    # The meters measure the fake's 45 W: each iteration's energy is its length times 45 W.
    for fp in records:
        assert fp.energy_j == pytest.approx(POWER_W * fp.duration_s, rel=0.05)
    measured_j = sum(fp.energy_j for fp in records)
    assert measured_j == pytest.approx(NOMINAL_J, rel=0.25)  # sleeps only ever overshoot

    first = loop.predictions[0]
    assert first.done == 3 and first.warmup == 1 and "warm-up" in first.method
    assert first.energy_j == pytest.approx(measured_j, rel=0.05)
    assert first.energy_low_j <= measured_j <= first.energy_high_j
    measured_s = sum(fp.duration_s for fp in records)
    assert first.duration_s == pytest.approx(measured_s, rel=0.05)
    # The slow first iteration is what makes this a test: extrapolating the mean is ~33% high.
    naive = mean_extrapolation([fp.energy_j for fp in records[:3]], N)
    assert naive > 1.2 * measured_j

    text = term.getvalue()
    assert "\r" in text  # one line rewritten in place
    lines = text.split("\r")
    shown = [ln for ln in lines if ln.startswith(f"epoch 3/{N}")]
    assert shown and " · total " in shown[0] and "CO2e" in shown[0] and " left" in shown[0]
    assert not any(" · total " in ln for ln in lines if ln.startswith(("epoch 1/", "epoch 2/")))
    assert f"nbcarbon: {N}/{N} epochs" in text and "predicted after epoch 3" in text
    assert "prediction method: first 1 iteration set apart as warm-up" in text


def budget_g(share: float) -> float:
    """Grams of CO2e for ``share`` of the loop's nominal energy."""
    return share * NOMINAL_J * G_PER_J


# The budget is 85% of the nominal 90 J. The first prediction, after 3 iterations (1 warm-up,
# 2 steady), is ~90 J: over. A loaded machine only lengthens the sleeps, so it stays over.

def test_budget_warn_warns_once_and_the_loop_completes(session: Session) -> None:
    loop = loop_of(session, predict_after=3, budget_g=budget_g(0.85), on_budget="warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run(loop) == list(range(N))
    budget = [w for w in caught if issubclass(w.category, BudgetWarning)]
    assert len(budget) == 1 and not loop.stopped and loop.over_budget
    message = str(budget[0].message)
    assert "over the budget of" in message and "95% interval" in message
    assert "the loop goes on (on_budget='warn')" in message and f"after epoch 3/{N}" in message
    assert len(loop.records) == N


def test_budget_stop_ends_the_loop_after_the_current_iteration(session: Session) -> None:
    out = io.StringIO()
    loop = loop_of(session, predict_after=3, budget_g=budget_g(0.85), on_budget="stop",
                   progress="text", stream=out)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # stop prints its message; it does not warn
        seen = run(loop)
    assert loop.stopped and seen == [0, 1, 2]  # iteration 3 ran to its end; 4 never started
    assert len(loop.records) == 3 and all(fp.status == "ok" for fp in loop.records)
    assert loop.records == session.records  # no window left open for an iteration not run
    assert loop.prediction is not None and loop.prediction.done == 3
    assert loop.prediction.energy_j * G_PER_J > loop.budget_g
    assert loop.message is not None and "stopping the loop here (on_budget='stop')" in loop.message
    assert f"after epoch 3/{N}" in loop.message
    text = out.getvalue()
    assert loop.message in text and "stopped by the budget" in text
