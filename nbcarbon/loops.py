"""``nbcarbon.epochs()``: measure each iteration of a training loop and predict the whole loop.

(The module is ``loops``, not ``epochs``: a submodule named like the package's function would
replace ``nbcarbon.epochs`` with the module object as soon as it is imported.)

    for epoch in nbcarbon.epochs(range(50), budget_g=100):
        train_one_epoch()

The loop is one window of the process's session (the meters the magics use) and each iteration
a window inside it, labelled ``epoch 3/50``: the iterations' records are the loop's children
(``parent_id``), and the loop's own record, with every iteration's duration and energy in a
compact series, is what totals count (inside a measured cell, it is that cell's child in turn).
When the loop ends in IPython, its final line is an output carrying that record, so a saved
notebook keeps the loop's cost whether or not the cell was measured. After ``predict_after``
iterations a prediction of the whole loop's energy, CO2e and time (:mod:`nbcarbon.predict`) is
shown and updated after every iteration: an ipywidgets bar in a Jupyter kernel, one plain text
line on stderr elsewhere. With ``budget_g``, a predicted total over the budget warns
(:class:`BudgetWarning`) or, with ``on_budget="stop"``, ends the loop after the current
iteration.

How an iteration ends. The loop body runs in the caller's frame, and Python does not tell an
iterator why it was abandoned: a ``break`` and an exception both just close it. The iteration's
window is closed right then, ``ok`` when the caller's frame is leaving the loop by ``break`` or
``return`` (the iterator is dropped by a plain ``POP_TOP``; CPython), else ``error``. Ctrl-C
cannot be told from an error that way; for the exact status (``interrupted``) use the
context-manager form, whose ``__exit__`` sees the exception::

    with nbcarbon.epochs(range(50)) as loop:
        for epoch in loop:
            ...

The user's exception always propagates unchanged.
"""

from __future__ import annotations

import dis
import math
import numbers
import operator
import re
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from html import escape
from types import FrameType, TracebackType
from typing import Any, Generic, TextIO, TypeVar

from . import intensity, shown
from .errors import NbcarbonError
from .footprint import J_PER_KWH, METADATA_KEY, Footprint, Iterations
from .predict import Prediction, predict
from .readout import format_duration, format_energy, format_mass, how_obtained
from .session import Session, Window
from .settings import parse_pue

T = TypeVar("T")
ON_BUDGET = ("warn", "stop")
PROGRESS = ("auto", "widget", "text", "none")
#: Display updates at most this often (the last iteration and budget events always show).
MIN_REDRAW_S = 0.2
#: After the first :data:`PREDICT_EVERY_FIRST` predictions, a new one is made only while all of
#: them together have taken at most this share of the loop's time. Why: a prediction costs time
#: linear in the iterations seen (13 ms at 2,000), so one after every iteration made a long loop
#: of short iterations quadratic (2,000 empty iterations took 17 s), and that time was measured
#: as the loop's own energy.
PREDICT_SHARE = 0.02
PREDICT_EVERY_FIRST = 20
# Opcodes that drop a for-loop's iterator when the loop is left by break or return.
_CLEAN_EXIT_OPS = frozenset({"POP_TOP", "POP_ITER", "END_FOR", "RETURN_VALUE", "RETURN_CONST"})


class EpochsError(NbcarbonError, ValueError):
    """An argument of :func:`epochs` out of range; raised before the loop starts."""


def _whole(value: object, name: str, low: int) -> int:
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        number = None
    if number is None or isinstance(value, bool) or number < low:
        raise EpochsError(f"{name} must be a whole number >= {low}, not {value!r}")
    return number


def _caller() -> FrameType | None:
    """The frame that resumed or closed the generator calling this (None if there is none)."""
    try:
        return sys._getframe(2)
    except ValueError:
        return None


_IRREGULAR = {"epoch": "epochs", "stomach": "stomachs", "child": "children", "person": "people",
              "datum": "data", "index": "indices", "series": "series", "analysis": "analyses"}


def plural(label: str, n: int) -> str:
    """``label`` counted: "1 epoch", "4 epochs", "3 batches"; a label that is not a plain word
    is named after the count instead: "4 iterations · rep0"."""
    if not re.fullmatch(r"[A-Za-z]+( [A-Za-z]+)*", label):
        return f"{n} iteration{'s' if n != 1 else ''} · {label}"
    if n == 1:
        return f"1 {label}"
    head, _, last = label.rpartition(" ")
    lower = last.lower()
    if lower in _IRREGULAR:
        word = _IRREGULAR[lower]
    elif re.search(r"(s|x|z|ch|sh)$", lower):
        word = last + "es"
    elif re.search(r"[^aeiou]y$", lower):
        word = last[:-1] + "ies"
    else:
        word = last + "s"
    return f"{n} {head + ' ' if head else ''}{word}"


class BudgetWarning(UserWarning):
    """The predicted CO2e of a loop exceeds its ``budget_g`` (``on_budget="warn"``)."""


def _left_by(frame: FrameType | None) -> str:
    """``ok`` if ``frame`` is leaving a loop by break/return, else ``error`` (see the module doc)."""
    try:
        op = dis.opname[frame.f_code.co_code[frame.f_lasti]] if frame is not None else ""
    except (IndexError, AttributeError):
        op = ""
    return "ok" if op in _CLEAN_EXIT_OPS else "error"


class Epochs(Generic[T]):
    """An iterable over ``iterable`` that measures each iteration; see :func:`epochs`.

    After (or during) the loop: ``footprint`` (the loop's own record, the one totals count),
    ``records`` (the iterations' records, its children), ``prediction`` (the latest
    :class:`~nbcarbon.predict.Prediction`, or None), ``predictions`` (one per update),
    ``over_budget``, ``stopped`` (ended by the budget) and ``message`` (the budget message).
    """

    def __init__(self, iterable: Iterable[T], total: int | None, predict_after: int,
                 budget_g: float | None, on_budget: str, label: str, region: str | None,
                 pue: float | None, progress: str | None, session: Session | None,
                 stream: TextIO | None, display: bool = True) -> None:
        if total is None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        total = None if total is None else _whole(total, "total", 0)
        predict_after = _whole(predict_after, "predict_after", 1)
        if on_budget not in ON_BUDGET:
            raise EpochsError(f"on_budget must be 'warn' or 'stop', not {on_budget!r}")
        if budget_g is not None:
            ok = isinstance(budget_g, numbers.Real) and not isinstance(budget_g, bool)
            if not ok or not 0 < float(budget_g) < math.inf:
                raise EpochsError(f"budget_g must be a number of grams > 0, not {budget_g!r}")
        progress = "none" if progress in (None, False) else progress
        if progress not in PROGRESS:
            raise EpochsError(f"progress must be one of {PROGRESS} or None, not {progress!r}")
        if session is None:
            from .api import default_session

            session = default_session()
        if region is not None:
            intensity.lookup(region)  # a bad code fails here, before the loop starts
        if pue is not None:
            pue = parse_pue(pue, "pue")
        if not isinstance(label, str) or not label.strip():
            raise EpochsError(f"label must be a non-empty string, not {label!r}")
        self._iterable = iterable
        self.total = total
        self.predict_after = predict_after
        self.budget_g = None if budget_g is None else float(budget_g)
        self.on_budget = on_budget
        self.label = label
        self._pricing = (region, pue)
        self._progress_kind = progress
        self._stream = stream
        self.session = session
        self.records: list[Footprint] = []
        self.predictions: list[Prediction] = []
        self.over_budget = False
        self.stopped = False
        self.message: str | None = None
        self._started = False
        self._managed = False
        self._open: Window | None = None
        self._loop: Window | None = None
        self._finished = False
        self._display = display
        self._view: _View | None = None
        self._warned = False
        self._spent_g = 0.0  # the iterations' CO2e so far (a budget with no total)
        self._predict_s = 0.0  # time spent predicting so far, and since when the loop runs
        self._started_at = 0.0
        self.footprint: Footprint | None = None

    # -- the two ways in ----------------------------------------------------------------------
    def __iter__(self) -> Iterator[T]:
        if self._started:
            raise RuntimeError("an nbcarbon.epochs() loop can be iterated once; make a new one")
        self._started = True
        return self._run()

    def __enter__(self) -> "Epochs[T]":
        self._managed = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if self._open is not None:  # left by an exception the iterator could not see
            status = "ok" if exc_type is None else (
                "interrupted" if issubclass(exc_type, KeyboardInterrupt) else "error")
            self._close(status)
            self._finish(status)
        return False

    @property
    def prediction(self) -> Prediction | None:
        return self.predictions[-1] if self.predictions else None

    # -- the loop -----------------------------------------------------------------------------
    def _run(self) -> Iterator[T]:
        items = iter(self._iterable)
        done = 0
        finished = "ok"
        self._loop = self.session.begin(f"{self.label} loop", *self._pricing, source="loop")
        self._started_at = time.perf_counter()
        try:
            while not self.stopped:
                try:
                    item = next(items)
                except StopIteration:
                    break
                done += 1
                of = f"/{self.total}" if self.total is not None else ""
                self._open = self.session.begin(f"{self.label} {done}{of}", *self._pricing,
                                                source="loop")
                try:
                    yield item
                except GeneratorExit:
                    finished = _left_by(_caller())
                    if self._managed and finished != "ok":
                        return  # __exit__ closes the window with the exact status
                    self._close(finished)
                    raise
                self._close("ok")
                self._update(done)
        except BaseException as exc:
            if not isinstance(exc, GeneratorExit):
                finished = "interrupted" if isinstance(exc, KeyboardInterrupt) else "error"
            if self._open is not None:
                self._close(finished)
            raise
        finally:
            if self._open is None:
                self._finish(finished)

    def _close(self, status: str) -> None:
        window, self._open = self._open, None
        assert window is not None
        fp = self.session.end(window, status)
        self.records.append(fp)
        self._spent_g += fp.co2e_g
        if sys.is_finalizing():  # closed by the interpreter's teardown: nothing may print
            return
        for notice in self.session.take_notices():
            print(notice, file=sys.stderr)

    def _g_per_j(self) -> float:
        """CO2e per joule of the latest record's pricing (its region and PUE)."""
        fp = self.records[-1]
        return fp.pue * fp.region.g_per_kwh / J_PER_KWH

    def _update(self, done: int) -> None:
        """After an ok iteration: predict, check the budget, redraw."""
        event = False
        if self.total is not None and self.predict_after <= done < self.total:
            if self._prediction_due():
                t0 = time.perf_counter()
                p = predict([(fp.duration_s, fp.energy_j) for fp in self.records], self.total)
                self._predict_s += time.perf_counter() - t0
                self.predictions.append(p)
                event = self._check_budget(p)
        elif self.total is None and self.budget_g is not None:
            event = self._check_spent()
        self._show(force=event or done == self.total)

    def _prediction_due(self) -> bool:
        """Whether to predict again now: always for the first few, then only while predicting
        stays within :data:`PREDICT_SHARE` of the loop's time (a budget is then checked as often)."""
        if len(self.predictions) < PREDICT_EVERY_FIRST:
            return True
        return self._predict_s <= PREDICT_SHARE * (time.perf_counter() - self._started_at)

    def _check_budget(self, p: Prediction) -> bool:
        """Decide on the budget; True when a message was given (so the display redraws)."""
        if self.budget_g is None:
            return False
        k = self._g_per_j()
        point, low, high = p.energy_j * k, p.energy_low_j * k, p.energy_high_j * k
        # One iteration cannot tell a warm-up from the steady state: wait for a second steady one
        # unless even the low end of the interval is over.
        over = point > self.budget_g and (p.steady >= 2 or low > self.budget_g)
        self.over_budget = over
        if not over:
            return False
        if getattr(p, "bounded", True):
            spread = f"95% interval {format_mass(low)} to {format_mass(high)}"
        else:  # the range is a rule of thumb, not an interval the prediction can stand behind
            spread = (f"rough range {format_mass(low)} to {format_mass(high)}, not a 95% interval "
                      f"yet: {getattr(p, 'why_unbounded', None) or 'too few iterations'}")
        what = (f"predicted {format_mass(point)} CO2e for {plural(self.label, p.total)} ({spread}), "
                f"over the budget of {format_mass(self.budget_g)}, after {self.label} "
                f"{p.done}/{p.total}")
        return self._act(what)

    def _check_spent(self) -> bool:
        spent = self._spent_g
        self.over_budget = spent > self.budget_g  # type: ignore[operator]
        if not self.over_budget:
            return False
        return self._act(f"spent {format_mass(spent)} CO2e in {len(self.records)} {self.label}s "
                         f"(no total known, so no prediction), over the budget of "
                         f"{format_mass(self.budget_g)}")  # type: ignore[arg-type]

    def _act(self, what: str) -> bool:
        if self.on_budget == "stop":
            self.stopped = True
            self.message = f"nbcarbon: {what}; stopping the loop here (on_budget='stop')."
            print(self.message, file=self._stream or sys.stderr)
            return True
        if self._warned:
            return False
        self._warned = True
        self.message = f"nbcarbon: {what}; the loop goes on (on_budget='warn')."
        warnings.warn(self.message, BudgetWarning, stacklevel=5)
        return True

    # -- display ------------------------------------------------------------------------------
    def _show(self, force: bool = False) -> None:
        if self._progress_kind == "none":
            return
        if self._view is None:
            self._view = _make_view(self._progress_kind, self._stream)
        self._view.update(self, force)

    def _finish(self, status: str) -> None:
        """Close the loop's window (its record carries the iterations) and show the final line."""
        if self._finished:
            return
        self._finished = True
        loop, self._loop = self._loop, None
        if loop is not None:
            warnings_: list[str] = []
            if self.stopped:
                warnings_.append(f"stopped by the budget after {plural(self.label, len(self.records))}"
                                 f"{f' of {self.total}' if self.total is not None else ''}")
            if self.total is not None and len(self.records) > self.total:
                warnings_.append(f"ran {plural(self.label, len(self.records))}, more than total="
                                 f"{self.total}: the predictions were made for {self.total}")
            series = Iterations(
                self.label, tuple(fp.duration_s for fp in self.records),
                tuple(fp.energy_j for fp in self.records),
                tuple((i, fp.status) for i, fp in enumerate(self.records) if fp.status != "ok"))
            self.footprint = self.session.end(loop, status, iterations=series,
                                              warnings=tuple(warnings_))
        if sys.is_finalizing():  # closed by the interpreter's teardown: no imports, no output
            return
        if self._progress_kind != "none" and self.records:
            if self._view is None:
                self._view = _make_view(self._progress_kind, self._stream)
            self._view.finish(self, status)
        try:
            self._show_final(status)
        except Exception as exc:  # noqa: BLE001 - the loop has run and its record is kept
            print(f"nbcarbon: the loop's footprint could not be shown ({type(exc).__name__}); "
                  "it is kept in the session and the ledger.", file=sys.stderr)
        for notice in self.session.take_notices():
            print(notice, file=sys.stderr)

    def _show_final(self, status: str) -> None:
        """Replace the progress widget (or add an output) with the final line and the record.

        A widget's saved form would be its first state, so the widget always becomes static
        text; the record rides along unless ``display=False``, and it is re-priced in place.
        """
        fp = self.footprint
        handle = getattr(self._view, "handle", None)
        if fp is None:
            if handle is not None:
                line = self.summary(status)
                handle.update({"text/plain": line, "text/html": f"<pre>{escape(line)}</pre>"},
                              raw=True)
            return
        if handle is None and not (self._display and shown.in_ipython()):
            return
        data, metadata = self.final_bundle(fp)
        if handle is not None:
            handle.update(data, metadata=metadata if self._display else {}, raw=True)
            if self._display:
                shown.registry(self.session).register(fp.id, handle.display_id, self.final_bundle)
        else:
            shown.registry(self.session).show(fp, self.final_bundle)

    # -- the final line -----------------------------------------------------------------------
    def _counted(self) -> str:
        n = len(self.records)
        if self.total is not None:
            return f"{n}/{plural(self.label, self.total)}"
        return plural(self.label, n)

    def budget_verdict(self, fp: Footprint | None = None) -> str | None:
        """The budget and what became of it, in words (``None`` without a budget)."""
        if self.budget_g is None:
            return None
        spent = fp.co2e_g if fp is not None else sum(r.co2e_g for r in self.records)
        budget = format_mass(self.budget_g)
        ratio = spent / self.budget_g * 100
        share = "<1%" if 0 < ratio < 1 else f"{ratio:.0f}%"
        if self.stopped:
            return (f"budget {budget}: stopped early because the predicted total was over it; "
                    f"spent {format_mass(spent)} ({share} of the budget)")
        if spent > self.budget_g:
            return f"budget {budget}: exceeded, spent {format_mass(spent)} ({share} of the budget)"
        if self.over_budget:
            return (f"budget {budget}: within it so far, spent {format_mass(spent)} ({share}), "
                    "but the predicted total was over it")
        return f"budget {budget}: within it, spent {format_mass(spent)} ({share} of the budget)"

    def final_bundle(self, fp: Footprint) -> tuple[dict[str, str], dict[str, Any]]:
        """The loop's final output (text, HTML, and its record); drawn again when re-priced."""
        line = self.summary(fp.status, fp)
        verdict = self.budget_verdict(fp)
        p = self.prediction
        method = f"prediction method: {p.method}" if p is not None else None
        text = "\n".join([line] + [f"  {x}" for x in (verdict, method) if x])
        good = fp.status == "ok" and not self.stopped and not (
            self.budget_g is not None and fp.co2e_g > self.budget_g)
        colour = "#3a7d44" if good else "#b35900"
        parts = [f"<div>{escape(line)}</div>"]
        if verdict:
            mark = "✓" if good else "⚠"
            parts.append(f"<div><b>{mark} {escape(verdict)}</b></div>")
        if method:
            parts.append(f'<div style="font-size:11px;opacity:0.75">{escape(method)}</div>')
        html = (f'<div style="font-family:var(--jp-code-font-family,monospace);font-size:12px;'
                f'line-height:1.4;border-left:3px solid {colour};padding:2px 8px;margin:2px 0">'
                f'{"".join(parts)}</div>')
        return {"text/plain": text, "text/html": html}, {METADATA_KEY: fp.to_dict()}

    def status_line(self) -> str:
        """The progress text: done, spent, and the prediction with its interval and time left."""
        n = len(self.records)
        spent_j = sum(fp.energy_j for fp in self.records)
        spent_g = sum(fp.co2e_g for fp in self.records)
        line = f"{self._counted()} · spent {format_energy(spent_j)}, {format_mass(spent_g)} CO2e"
        p = self.prediction
        if p is not None and n < p.total:  # the latest prediction (not made after every one)
            k = self._g_per_j()
            if getattr(p, "bounded", True):
                interval = f" ({format_mass(p.energy_low_j * k)} to {format_mass(p.energy_high_j * k)})"
            else:
                why = getattr(p, "why_unbounded", None)
                interval = f" (cannot bound the total yet{': ' + why if why else ''})"
            since = self.records[p.done:]  # iterations run since the prediction was made
            left_s = max(0.0, p.remaining_duration_s - sum(fp.duration_s for fp in since))
            left_j = max(0.0, p.remaining_energy_j - sum(fp.energy_j for fp in since))
            line += (f" · total {format_mass(p.energy_j * k)} CO2e{interval}, "
                     f"{format_energy(p.energy_j)}"
                     f" · {format_duration(left_s)} left"
                     f" ({format_mass(left_j * k)} to go)")
        if self.budget_g is not None:
            line += f" · budget {format_mass(self.budget_g)}{' OVER' if self.over_budget else ''}"
        return line

    def summary(self, status: str = "ok", fp: Footprint | None = None) -> str:
        """One line after the loop: totals, and how far off the first prediction was.

        With the loop's record ``fp`` the totals are the loop's own (the iterations and the
        code between them), priced as the record is now.
        """
        n = len(self.records)
        if fp is None:
            energy_j = sum(r.energy_j for r in self.records)
            co2e_g = sum(r.co2e_g for r in self.records)
            duration_s = sum(r.duration_s for r in self.records)
            how = ""
        else:
            energy_j, co2e_g, duration_s = fp.energy_j, fp.co2e_g, fp.duration_s
            how = f" · {fp.region.code} · {how_obtained(fp.components)}"
        line = (f"nbcarbon: {self._counted()} · {format_energy(energy_j)} · {format_mass(co2e_g)} "
                f"CO2e · {format_duration(duration_s)}{how}")
        if status != "ok":
            line += f" · {status}"
        if self.stopped:
            line += " · stopped by the budget"
        first = self.predictions[0] if self.predictions else None
        if first is not None and n == self.total and energy_j > 0:
            off = (first.energy_j - energy_j) / energy_j * 100
            line += (f" · predicted after {self.label} {first.done}: {format_energy(first.energy_j)} "
                     f"({off:+.0f}%)")
        return line


def epochs(
    iterable: Iterable[T],
    total: int | None = None,
    predict_after: int = 1,
    budget_g: float | None = None,
    on_budget: str = "warn",
    *,
    label: str = "epoch",
    region: str | None = None,
    pue: float | None = None,
    progress: str | None = "auto",
    session: Session | None = None,
    stream: TextIO | None = None,
    display: bool = True,
) -> Epochs[T]:
    """Measure each iteration of ``iterable`` and predict the whole loop's energy, CO2e and time.

    ``total``: the number of iterations (default ``len(iterable)``; without one there is no
    prediction, only what was spent). ``predict_after``: iterations measured before the first
    prediction. ``budget_g``: grams of CO2e; when the predicted total exceeds it,
    ``on_budget="warn"`` issues a :class:`BudgetWarning` once and ``"stop"`` ends the loop after
    the current iteration with a message (the loop then simply ends: code after it runs). A
    prediction resting on one iteration does not trigger either unless even its low end is over.
    ``label`` names the iterations in records ("epoch 3/50"); ``region``/``pue`` price this
    loop's records as ``track()`` does. ``progress``: ``"auto"`` (a widget in a Jupyter kernel
    with ipywidgets, else text on stderr), ``"widget"``, ``"text"`` or ``None``. ``session`` and
    ``stream`` (for the text) default to the process's session and stderr. ``display``: in
    IPython, end with an output carrying the loop's record (the saved notebook keeps its cost).
    """
    return Epochs(iterable, total, predict_after, budget_g, on_budget, label, region, pue,
                  progress, session, stream, display)


# ----------------------------------------------------------------------------- progress views


class _View:
    def update(self, loop: Epochs[Any], force: bool) -> None:
        raise NotImplementedError

    def finish(self, loop: Epochs[Any], status: str) -> None:
        raise NotImplementedError


class _TextView(_View):
    """One line rewritten with ``\\r`` on a terminal; one line per update when not a terminal."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream
        self._last = 0.0
        self._width = 0

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    def _write(self, text: str, end: str) -> None:
        stream = self.stream
        tty = getattr(stream, "isatty", lambda: False)()
        if tty:
            stream.write("\r" + text.ljust(self._width) + end)
            self._width = 0 if end else len(text)
        else:
            stream.write(text + "\n")
        stream.flush()

    def update(self, loop: Epochs[Any], force: bool) -> None:
        now = time.monotonic()
        if force or now - self._last >= MIN_REDRAW_S:
            self._last = now
            self._write(loop.status_line(), "")

    def finish(self, loop: Epochs[Any], status: str) -> None:
        self._write(loop.summary(status, loop.footprint), "\n")
        p = loop.prediction
        if p is not None:
            self.stream.write(f"  prediction method: {p.method}\n")


class _WidgetView(_View):
    """An ipywidgets bar and text, updated from the loop's own thread.

    When the loop ends the widget is replaced, through its display id, by a static text and
    HTML summary: that is what a saved notebook, nbviewer or GitHub then shows (a widget's saved
    form would be its first state), and the widget's comm is closed.
    """

    def __init__(self) -> None:
        import ipywidgets as w
        from IPython.display import display

        self.bar = w.IntProgress(value=0, min=0, max=1, description="", bar_style="info",
                                 layout=w.Layout(width="220px"))
        self.text = w.HTML(value="")
        self.box = w.HBox([self.bar, self.text])
        self._last = 0.0
        self.handle = display(self.box, display_id=True)

    def _html(self, loop: Epochs[Any], line: str) -> str:
        p = loop.prediction
        method = p.method if p is not None else "prediction after the first iteration(s)"
        colour = "#b00020" if loop.over_budget else "inherit"
        return (f'<span style="font-family:var(--jp-code-font-family,monospace);font-size:12px;'
                f'color:{colour}">{escape(line)}</span><br><span style="font-size:11px;'
                f'color:#777">{escape(method)}</span>')

    def update(self, loop: Epochs[Any], force: bool) -> None:
        now = time.monotonic()
        if not (force or now - self._last >= MIN_REDRAW_S):
            return
        self._last = now
        n = len(loop.records)
        self.bar.max = max(1, loop.total if loop.total is not None else n)
        self.bar.value = n
        self.bar.bar_style = "danger" if loop.over_budget else "info"
        self.text.value = self._html(loop, loop.status_line())

    def finish(self, loop: Epochs[Any], status: str) -> None:
        n = len(loop.records)
        self.bar.max = max(1, loop.total if loop.total is not None else n)
        self.bar.value = n
        ok = status == "ok" and not loop.stopped
        self.bar.bar_style = "success" if ok else ("warning" if loop.stopped else "danger")
        self.text.value = self._html(loop, loop.summary(status, loop.footprint))
        self.box.close()  # the loop then puts its static final line in the widget's place


def _make_view(kind: str, stream: TextIO | None) -> _View:
    if kind == "widget" or (kind == "auto" and stream is None and shown.in_kernel()):
        try:
            return _WidgetView()
        except ImportError:
            if kind == "widget":
                raise
    return _TextView(stream)
