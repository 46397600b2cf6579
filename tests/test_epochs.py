"""nbcarbon.epochs(): windows per iteration, predictions, the budget, statuses and the display.

The hardware is faked at its boundary: one counter meter whose total the loop body advances,
so each iteration's energy is exactly what the test says.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbcarbon.errors import RegionError
from nbcarbon.intensity import lookup
from nbcarbon.loops import BudgetWarning, epochs
from nbcarbon.session import Session
from tests.conftest import kernel_env, run_cells
from tests.fakes.counter import CounterMeter, counted_session

KWH = 3.6e6
SE = lookup("SE").g_per_kwh


@pytest.fixture
def meter() -> CounterMeter:
    return CounterMeter()


@pytest.fixture
def session(meter: CounterMeter) -> Iterator[Session]:
    s = counted_session(meter)
    yield s
    s.close()


def run(loop, meter: CounterMeter, costs_kwh: list[float]) -> list[int]:
    seen = []
    for i in loop:
        meter.total_j += costs_kwh[i] * KWH
        seen.append(i)
    return seen


def test_the_loop_is_one_window_and_its_iterations_are_its_children(
        session: Session, meter: CounterMeter) -> None:
    out = io.StringIO()
    loop = epochs(range(5), session=session, stream=out, progress="text")
    assert run(loop, meter, [1.0] * 5) == [0, 1, 2, 3, 4]
    assert [fp.label for fp in session.records] == [f"epoch {i}/5" for i in range(1, 6)] + [
        "epoch loop"]
    assert loop.records == session.records[:5]
    whole = loop.footprint
    assert whole is session.records[-1] and whole.parent_id is None
    assert all(fp.parent_id == whole.id for fp in loop.records)
    assert whole.energy_j == pytest.approx(5 * KWH)
    assert whole.iterations is not None and whole.iterations.energy_j == pytest.approx((KWH,) * 5)
    assert len(whole.iterations.duration_s) == 5 and whole.iterations.statuses == ()
    # Counted once: the session's totals are the loop's, not the loop's plus its iterations'.
    totals = session.totals()
    assert totals.cells == 1 and totals.energy_j == pytest.approx(5 * KWH)
    assert all(fp.status == "ok" for fp in loop.records)
    assert [fp.energy_j for fp in loop.records] == pytest.approx([KWH] * 5)
    assert loop.records[0].co2e_g == pytest.approx(SE)
    assert [p.done for p in loop.predictions] == [1, 2, 3, 4]  # none once the loop is complete
    text = out.getvalue()
    assert "1/5 epochs · spent" in text and "nbcarbon: 5/5 epochs" in text
    assert "prediction method:" in text


def test_prediction_waits_for_predict_after_and_handles_warm_up(session: Session,
                                                               meter: CounterMeter) -> None:
    costs = [5.0] + [1.0] * 19
    loop = epochs(range(20), predict_after=3, session=session, progress=None)
    seen_predictions = []
    for i in loop:
        meter.total_j += costs[i] * KWH
        seen_predictions.append(loop.prediction)
    assert seen_predictions[:3] == [None, None, None]  # visible inside iteration i = after i done
    first = loop.predictions[0]
    assert first.done == 3 and first.warmup == 1
    assert first.energy_j == pytest.approx(sum(costs) * KWH, rel=1e-6)
    assert "warm-up" in first.method
    assert "predicted after epoch 3" in loop.summary() and "(+0%)" in loop.summary()


def test_budget_warn_warns_once_and_goes_on(session: Session, meter: CounterMeter) -> None:
    loop = epochs(range(10), budget_g=5 * SE, session=session, progress=None)  # 10 kWh predicted
    with pytest.warns(BudgetWarning) as caught:
        seen = run(loop, meter, [1.0] * 10)
    assert seen == list(range(10)) and not loop.stopped
    assert len([w for w in caught if issubclass(w.category, BudgetWarning)]) == 1
    message = str(caught[0].message)
    assert "over the budget of" in message and "predicted" in message
    assert "95% interval" in message or "not a 95% interval yet" in message
    assert loop.over_budget


def test_budget_stop_ends_the_loop_cleanly_after_the_current_iteration(
        session: Session, meter: CounterMeter) -> None:
    out = io.StringIO()
    loop = epochs(range(10), budget_g=5 * SE, on_budget="stop", session=session, stream=out,
                  progress="text")
    seen = run(loop, meter, [1.0] * 10)
    after_loop = True  # code after the loop runs: the loop simply ended
    # One iteration is not enough to stop (its low end, 4 kWh, is under 5): the second is.
    assert seen == [0, 1] and after_loop and loop.stopped
    assert len(loop.records) == 2 and all(fp.status == "ok" for fp in loop.records)
    assert loop.footprint is not None and loop.footprint.status == "ok"
    assert any("stopped by the budget after 2 epochs of 10" in w for w in loop.footprint.warnings)
    verdict = loop.budget_verdict(loop.footprint)
    assert verdict is not None and "stopped early" in verdict and "budget 179 g" in verdict
    assert loop.message is not None and "stopping the loop" in loop.message
    assert "predicted 358 g CO2e" in loop.message and "budget of 179 g" in loop.message
    assert "rough range" in loop.message and "not a 95% interval yet" in loop.message
    assert loop.message in out.getvalue() and "stopped by the budget" in out.getvalue()


def test_slow_first_epoch_does_not_trip_the_budget(session: Session, meter: CounterMeter) -> None:
    # Naive extrapolation of epoch 1 says 30 kWh; the truth is 12 kWh, under the 14 kWh budget.
    costs = [3.0] + [1.0] * 9
    loop = epochs(range(10), budget_g=14 * SE, on_budget="stop", session=session, progress=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run(loop, meter, costs) == list(range(10))
    assert not loop.stopped and not loop.over_budget


def test_single_iteration_stops_when_even_the_low_end_is_over(session: Session,
                                                              meter: CounterMeter) -> None:
    loop = epochs(range(10), budget_g=2 * SE, on_budget="stop", session=session, progress=None)
    assert run(loop, meter, [1.0] * 10) == [0]  # low end: 1 + 9/3 = 4 kWh > 2 kWh


def test_exception_propagates_unchanged_and_the_window_says_error(session: Session,
                                                                  meter: CounterMeter) -> None:
    boom = ValueError("boom")
    with pytest.raises(ValueError) as info:
        for i in epochs(range(5), session=session, progress=None):
            meter.total_j += KWH
            if i == 2:
                raise boom
    assert info.value is boom
    *iterations, whole = session.records
    assert [fp.status for fp in iterations] == ["ok", "ok", "error"]
    assert iterations[-1].energy_j == pytest.approx(KWH)
    assert whole.label == "epoch loop" and whole.status == "error"
    assert whole.energy_j == pytest.approx(3 * KWH) and whole.iterations.statuses == ((2, "error"),)


def test_break_closes_the_window_ok(session: Session, meter: CounterMeter) -> None:
    for i in epochs(range(5), session=session, progress=None):
        meter.total_j += KWH
        if i == 1:
            break
    assert [fp.status for fp in session.records] == ["ok", "ok", "ok"]  # two iterations, the loop
    assert session.records[-1].label == "epoch loop"


def test_with_form_tells_ctrl_c_from_errors(session: Session, meter: CounterMeter) -> None:
    with pytest.raises(KeyboardInterrupt):
        with epochs(range(5), session=session, progress=None) as loop:
            for i in loop:
                meter.total_j += KWH
                if i == 1:
                    raise KeyboardInterrupt
    assert [fp.status for fp in loop.records] == ["ok", "interrupted"]
    assert loop.records[-1].energy_j == pytest.approx(KWH)
    assert loop.footprint is not None and loop.footprint.status == "interrupted"
    assert session.records[-1] is loop.footprint


def test_no_total_means_no_prediction_but_the_budget_counts_spent(session: Session,
                                                                  meter: CounterMeter) -> None:
    def forever() -> Iterator[int]:
        i = 0
        while True:
            yield i
            i += 1

    loop = epochs(forever(), budget_g=2.5 * SE, on_budget="stop", session=session, progress=None)
    seen = run(loop, meter, [1.0] * 100)
    assert seen == [0, 1, 2] and loop.predictions == []
    assert [fp.label for fp in loop.records] == ["epoch 1", "epoch 2", "epoch 3"]
    assert loop.footprint is not None and loop.footprint.energy_j == pytest.approx(3 * KWH)
    assert "no total known" in (loop.message or "")


def test_widget_view_tracks_the_loop(session: Session, meter: CounterMeter) -> None:
    pytest.importorskip("ipywidgets")
    loop = epochs(range(4), session=session, progress="widget", budget_g=1000.0)
    run(loop, meter, [1.0] * 4)
    view = loop._view
    assert view is not None and view.bar.value == 4 and view.bar.max == 4
    assert view.bar.bar_style == "success"
    assert "4/4 epochs" in view.text.value and "<script" not in view.text.value


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"on_budget": "kill"}, ValueError, "on_budget must be 'warn' or 'stop'"),
    ({"predict_after": 0}, ValueError, "predict_after"),
    ({"budget_g": -1}, ValueError, "budget_g"),
    ({"total": -3}, ValueError, "total"),
    ({"progress": "fancy"}, ValueError, "progress"),
    ({"region": "Swedn"}, RegionError, "Sweden"),
    ({"pue": 9}, ValueError, "pue"),
])
def test_bad_arguments_fail_before_the_loop(session: Session, kwargs: dict, error: type,
                                            match: str) -> None:
    with pytest.raises(error, match=match):
        epochs(range(3), session=session, **kwargs)
    assert session.records == []


def test_a_loop_is_iterated_once(session: Session, meter: CounterMeter) -> None:
    loop = epochs(range(2), session=session, progress=None)
    run(loop, meter, [1.0, 1.0])
    with pytest.raises(RuntimeError, match="once"):
        iter(loop)


def test_region_and_pue_price_the_loop(session: Session, meter: CounterMeter) -> None:
    loop = epochs(range(2), session=session, progress=None, region="PL", pue=1.5)
    run(loop, meter, [1.0, 1.0])
    assert loop.records[0].region.code == "PL" and loop.records[0].pue == 1.5
    assert loop.records[0].co2e_g == pytest.approx(1.5 * lookup("PL").g_per_kwh)


def test_package_functions_stay_callable_and_import_stays_light() -> None:
    code = ("import sys, nbcarbon, nbcarbon.loops, nbcarbon.whatif, nbcarbon.predict, nbcarbon.compare;"
            "print(callable(nbcarbon.epochs), callable(nbcarbon.estimate),"
            "sorted(m for m in ('IPython', 'matplotlib', 'ipywidgets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True True []"


def test_in_a_kernel_the_widget_ends_as_a_static_summary(tmp_path: Path) -> None:
    pytest.importorskip("nbclient")
    nb = run_cells([
        "import nbcarbon\nloop = nbcarbon.epochs(range(3))\nfor e in loop:\n    sum(range(10**5))",
        "from nbcarbon.api import default_session\n"
        "print([fp.label for fp in default_session().records])",
    ], kernel_env(tmp_path))
    outputs = nb.cells[0].outputs
    displays = [o for o in outputs if o.output_type == "display_data"]
    assert len(displays) == 1
    data = displays[0]["data"]
    assert "application/vnd.jupyter.widget-view+json" not in data  # replaced when the loop ended
    assert "3/3 epochs" in data["text/plain"] and "prediction method" in data["text/plain"]
    assert "<script" not in data["text/html"]
    # The final line carries the loop's record, so the saved notebook keeps the loop's cost.
    record = displays[0]["metadata"]["nbcarbon"]
    assert record["label"] == "epoch loop" and record["parent_id"] is None
    assert len(record["iterations"]["energy_j"]) == 3
    assert "['epoch 1/3', 'epoch 2/3', 'epoch 3/3', 'epoch loop']" in nb.cells[1].outputs[0]["text"]


@pytest.mark.parametrize("label, n, expected", [
    ("epoch", 4, "4 epochs"), ("epoch", 1, "1 epoch"), ("batch", 3, "3 batches"),
    ("category", 2, "2 categories"), ("training step", 2, "2 training steps"),
    ("rep0", 4, "4 iterations · rep0"), ("fold-1", 1, "1 iteration · fold-1"),
])
def test_counts_read_naturally(label: str, n: int, expected: str) -> None:
    from nbcarbon.loops import plural

    assert plural(label, n) == expected


def test_final_line_says_the_budget_and_its_fate_in_words(session: Session, meter: CounterMeter) -> None:
    within = epochs(range(4), budget_g=10 * SE, session=session, progress=None, label="rep0")
    run(within, meter, [1.0] * 4)
    assert within.footprint is not None
    data, metadata = within.final_bundle(within.footprint)
    assert "4/4 iterations · rep0" in data["text/plain"]
    assert "budget 358 g: within it, spent 143 g (40% of the budget)" in data["text/plain"]
    assert metadata["nbcarbon"]["id"] == within.footprint.id
    assert "#3a7d44" in data["text/html"] and "✓" in data["text/html"]  # words and colour agree

    over = epochs(range(4), budget_g=2 * SE, on_budget="warn", session=session, progress=None)
    with pytest.warns(BudgetWarning):
        run(over, meter, [1.0] * 4)
    data, _ = over.final_bundle(over.footprint)
    assert "budget 71.6 g: exceeded, spent 143 g (200% of the budget)" in data["text/plain"]
    assert "#3a7d44" not in data["text/html"] and "⚠" in data["text/html"]
    # Re-pricing draws the same line for the new price: the verdict follows the record.
    cheap = over.footprint.repriced(pue=1.0, region=None)
    from dataclasses import replace
    cheap = replace(cheap, co2e_g=0.5 * SE)
    assert "within it" in over.final_bundle(cheap)[0]["text/plain"]


def test_predictions_stop_after_every_iteration_once_they_cost_more_than_their_share(
        session: Session) -> None:
    loop = epochs(range(100), total=100, session=session, progress=None)
    loop.predictions = [None] * 20  # type: ignore[list-item]  # the first ones are always made
    loop._started_at = time.perf_counter() - 10.0  # a loop running for 10 s ...
    loop._predict_s = 1.0  # ... that spent 1 s predicting: more than 2 %, so not now
    assert not loop._prediction_due()
    loop._predict_s = 0.1  # 1 %: due again
    assert loop._prediction_due()
    loop.predictions = [None] * 19  # type: ignore[list-item]
    loop._predict_s = 5.0
    assert loop._prediction_due()


def test_a_long_loop_of_short_iterations_does_not_predict_after_each(session: Session) -> None:
    # Before: a prediction after every iteration, each linear in the iterations seen, so 2,000
    # short iterations took seconds and the loop's own record measured that time.
    loop = epochs(range(2000), total=2000, session=session, progress=None)
    for _ in loop:
        pass
    assert 20 <= len(loop.predictions) < 1000  # the first 20, then within 2 % of the loop's time
    assert loop.footprint is not None and len(loop.records) == 2000


def test_the_text_views_final_line_is_the_loops_record(session: Session, meter: CounterMeter) -> None:
    stream = io.StringIO()
    loop = epochs(range(4), total=4, session=session, progress="text", stream=stream)
    for _ in loop:
        meter.total_j += 10.0
    assert loop.footprint is not None
    last = [ln for ln in stream.getvalue().splitlines() if ln.startswith("nbcarbon:")][-1]
    assert loop.summary("ok", loop.footprint) == last
    assert loop.footprint.region.code in last  # the loop's record, priced, not the sum of its epochs


def test_status_line_uses_the_latest_prediction_and_counts_iterations_since(
        session: Session, meter: CounterMeter) -> None:
    loop = epochs(range(10), total=10, session=session, progress=None)
    it = iter(loop)
    for _ in range(4):
        next(it)
        meter.total_j += 10.0
    next(it)  # the 4th iteration closed: a prediction from 4 iterations of 10 J each
    p = loop.prediction
    assert p is not None and p.done == 4
    loop.predictions = [p]
    meter.total_j += 10.0
    next(it)  # the 5th closed: say no new prediction was made for it
    loop.predictions = [p]
    line = loop.status_line()
    assert "left" in line and "to go" in line  # still shown, from the prediction after 4
    it.close()


def test_a_loop_longer_than_its_total_says_so_in_its_record(session: Session) -> None:
    loop = epochs(range(5), total=3, session=session, progress=None)
    for _ in loop:
        pass
    assert loop.footprint is not None
    assert "ran 5 epochs, more than total=3: the predictions were made for 3" in loop.footprint.warnings
