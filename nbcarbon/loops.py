"""``nbcarbon.epochs()``: measure each iteration of a training loop and predict the whole loop.

(The module is ``loops``, not ``epochs``: a submodule named like the package's function would
replace ``nbcarbon.epochs`` with the module object as soon as it is imported.)

    for epoch in nbcarbon.epochs(range(50), budget_g=100):
        train_one_epoch()

Each iteration is one window of the process's session (the meters the magics use), labelled
``epoch 3/50``; its record goes into ``session.records`` like a cell's. After ``predict_after``
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
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from html import escape
from types import FrameType, TracebackType
from typing import Any, Generic, TextIO, TypeVar

from . import intensity
from .errors import NbcarbonError
from .footprint import J_PER_KWH, Footprint
from .predict import Prediction, predict
from .readout import format_duration, format_energy, format_mass
from .session import Session, Window
from .settings import parse_pue

T = TypeVar("T")
ON_BUDGET = ("warn", "stop")
PROGRESS = ("auto", "widget", "text", "none")
#: Display updates at most this often (the last iteration and budget events always show).
MIN_REDRAW_S = 0.2
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

    After (or during) the loop: ``records`` (this loop's footprints), ``prediction`` (the
    latest :class:`~nbcarbon.predict.Prediction`, or None), ``predictions`` (one per update),
    ``over_budget``, ``stopped`` (ended by the budget) and ``message`` (the budget message).
    """

    def __init__(self, iterable: Iterable[T], total: int | None, predict_after: int,
                 budget_g: float | None, on_budget: str, label: str, region: str | None,
                 pue: float | None, progress: str | None, session: Session | None,
                 stream: TextIO | None) -> None:
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
        self._view: _View | None = None
        self._warned = False

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
        try:
            while not self.stopped:
                try:
                    item = next(items)
                except StopIteration:
                    break
                done += 1
                of = f"/{self.total}" if self.total is not None else ""
                self._open = self.session.begin(f"{self.label} {done}{of}", *self._pricing)
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
            p = predict([(fp.duration_s, fp.energy_j) for fp in self.records], self.total)
            self.predictions.append(p)
            event = self._check_budget(p)
        elif self.total is None and self.budget_g is not None:
            event = self._check_spent()
        self._show(force=event or done == self.total)

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
        what = (f"predicted {format_mass(point)} CO2e for {p.total} {self.label}s (95% interval "
                f"{format_mass(low)} to {format_mass(high)}), over the budget of "
                f"{format_mass(self.budget_g)}, after {self.label} {p.done}/{p.total}")
        return self._act(what)

    def _check_spent(self) -> bool:
        spent = sum(fp.co2e_g for fp in self.records)
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
        if self._progress_kind != "none" and self.records:
            if self._view is None:
                self._view = _make_view(self._progress_kind, self._stream)
            self._view.finish(self, status)

    def status_line(self) -> str:
        """The progress text: done, spent, and the prediction with its interval and time left."""
        n = len(self.records)
        of = f"/{self.total}" if self.total is not None else ""
        spent_j = sum(fp.energy_j for fp in self.records)
        spent_g = sum(fp.co2e_g for fp in self.records)
        line = f"{self.label} {n}{of} · spent {format_energy(spent_j)}, {format_mass(spent_g)} CO2e"
        p = self.prediction
        if p is not None and p.done == n and n < p.total:
            k = self._g_per_j()
            line += (f" · total {format_mass(p.energy_j * k)} CO2e ({format_mass(p.energy_low_j * k)}"
                     f" to {format_mass(p.energy_high_j * k)}), {format_energy(p.energy_j)}"
                     f" · {format_duration(p.remaining_duration_s)} left"
                     f" ({format_mass(p.remaining_energy_j * k)} to go)")
        if self.budget_g is not None:
            line += f" · budget {format_mass(self.budget_g)}{' OVER' if self.over_budget else ''}"
        return line

    def summary(self, status: str = "ok") -> str:
        """One line after the loop: totals, and how far off the first prediction was."""
        n = len(self.records)
        energy_j = sum(fp.energy_j for fp in self.records)
        line = (f"nbcarbon: {n}{f'/{self.total}' if self.total is not None else ''} {self.label}s · "
                f"{format_energy(energy_j)} · {format_mass(sum(fp.co2e_g for fp in self.records))} "
                f"CO2e · {format_duration(sum(fp.duration_s for fp in self.records))}")
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
    ``stream`` (for the text) default to the process's session and stderr.
    """
    return Epochs(iterable, total, predict_after, budget_g, on_budget, label, region, pue,
                  progress, session, stream)


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
        self._write(loop.summary(status), "\n")
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
        summary = loop.summary(status)
        self.text.value = self._html(loop, summary)
        if self.handle is not None:
            p = loop.prediction
            method = f"\n  prediction method: {p.method}" if p is not None else ""
            colour = "#3a7d44" if ok else "#b00020"
            html = (f'<div style="border-left:3px solid {colour};padding:2px 8px">'
                    f"{self._html(loop, summary)}</div>")
            self.handle.update({"text/plain": summary + method, "text/html": html}, raw=True)
            self.box.close()


def _in_kernel() -> bool:
    """True in a Jupyter kernel (IPython is only looked at if something already imported it)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def _make_view(kind: str, stream: TextIO | None) -> _View:
    if kind == "widget" or (kind == "auto" and stream is None and _in_kernel()):
        try:
            return _WidgetView()
        except ImportError:
            if kind == "widget":
                raise
    return _TextView(stream)
