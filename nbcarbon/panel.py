"""``%carbon dashboard``: a live ipywidgets panel of the session's totals, power, pricing and cells.

Data flows one way: the session and its sampler are read here, never the reverse. The panel
learns of new and re-priced records through the session's listeners, and reads live power from
the sampler's timeline in a small thread of its own.

Why a thread that sets traitlets, and nothing else: while a cell runs, the kernel's main thread
is busy, so only another thread can refresh the panel. ipykernel >= 6 sends comm messages from
any thread (7.0.* did not: see pyproject), so setting a widget's ``value`` there is safe. The
thread never prints and never touches an ``Output`` widget; it updates at most ``MAX_HZ`` times
a second and only when the sampler has a new point. It stops when the panel is closed and when
the extension is unloaded. While the panel is open it holds the session's sampler at its full
rate (:meth:`Session.keep_awake`); without it, the sampler slows down between cells.

Changing the region or PUE goes through ``set_pricing``, a callable of the outer layer (the
IPython extension), which re-prices every record and every readout shown and, while a measured
cell runs, defers the change until that cell finishes.
"""

from __future__ import annotations

import csv
import functools
import io
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from importlib import resources
from typing import Any

from . import intensity
from .errors import NbcarbonError
from .footprint import Footprint
from .meters.base import METHOD_KIND, Channel
from .readout import (
    METHOD_LABEL,
    ROW_STYLE,
    TABLE_STYLE,
    format_duration,
    format_energy,
    format_mass,
    how_obtained,
    td,
)
from .session import Session, Totals
from .summary import cell_name

#: The live view refreshes at most this often (the brief: a few times a second at most).
MAX_HZ = 4.0
#: How many sampler points the sparkline draws.
SPARK_POINTS = 60
#: How many of the last cells the table lists.
LAST_CELLS = 8

#: ``set_pricing(region=..., pue=...)``: the re-priced records, or ``None`` if deferred.
PricingSetter = Callable[..., "list[Footprint] | None"]
DEFERRED = "(the change applies when the running cell finishes)"
_STYLE = "font-family:var(--jp-code-font-family,monospace);font-size:12px;line-height:1.45"


@dataclass(frozen=True)
class Equivalent:
    """An everyday quantity to compare a footprint with, and where its number comes from."""

    name: str
    unit: str
    g_co2e_per_unit: float | None
    wh_per_unit: float | None
    source: str
    year: int

    def amount(self, energy_j: float, co2e_g: float) -> float:
        """How many units ``energy_j`` (if defined per Wh) or ``co2e_g`` (per g CO2e) make."""
        if self.wh_per_unit is not None:
            return energy_j / 3600.0 / self.wh_per_unit
        assert self.g_co2e_per_unit is not None
        return co2e_g / self.g_co2e_per_unit

    def describe(self, amount: float) -> str:
        """Readable at any size: '1.2 m of driving ...', '0.35 % of a smartphone charge'."""
        def num(x: float) -> str:
            return f"{x:,.0f}" if x >= 1000 else f"{x:.3g}"

        if self.unit == "km":
            for unit, scale in (("km", 1.0), ("m", 1e-3), ("mm", 1e-6)):
                if amount >= scale or unit == "mm":
                    return f"{num(amount / scale)} {unit} of {self.name}"
        if amount >= 1.0:
            return f"{num(amount)} {self.name}{'' if amount == 1 else 's'}"
        return f"{amount * 100:.2g} % of a {self.name}"


@functools.lru_cache(maxsize=1)
def equivalents() -> tuple[Equivalent, ...]:
    """The bundled equivalents (``data/equivalents.csv``), each with its source and year."""
    raw = resources.files("nbcarbon").joinpath("data/equivalents.csv").read_text("utf-8")
    out = []
    for row in csv.DictReader(io.StringIO(raw)):
        out.append(Equivalent(
            row["name"], row["unit"],
            float(row["g_co2e_per_unit"]) if row["g_co2e_per_unit"] else None,
            float(row["wh_per_unit"]) if row["wh_per_unit"] else None,
            row["source"], int(row["year"])))
    return tuple(out)


def _channel_label(channels: Sequence[Channel]) -> str:
    labels: list[str] = []
    for ch in channels:
        label = f"{METHOD_KIND[ch.method]}: {METHOD_LABEL.get(ch.method, ch.method)}"
        if label not in labels:
            labels.append(label)
    return ", ".join(labels)


def power_by_component(channels: Sequence[Channel],
                       power_w: Sequence[float | None]) -> dict[str, float | None]:
    """Sum the per-meter power of one timeline point by component (``None``: none readable)."""
    out: dict[str, float | None] = {}
    for ch, p in zip(channels, power_w, strict=False):
        if p is None:
            out.setdefault(ch.component, None)
        else:
            out[ch.component] = (out.get(ch.component) or 0.0) + p
    return out


def sparkline_svg(values: Sequence[float], width: int = 220, height: int = 44) -> str:
    """An inline SVG polyline of ``values`` (total W), scaled to its maximum; no script.

    The max label sits in a band of its own above the plot area, so the line never crosses it.
    """
    if len(values) < 2:
        return f'<svg width="{width}" height="{height}"></svg>'
    top = max(values) or 1.0
    step = width / (len(values) - 1)
    band = 12  # the label's band; the line is drawn from band + 1 to height - 2
    pts = " ".join(f"{i * step:.1f},{height - 2 - (v / top) * (height - band - 3):.1f}"
                   for i, v in enumerate(values))
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="power, last samples">'
            f'<text x="{width}" y="9" font-size="9" fill="#888" text-anchor="end">'
            f"{top:.3g} W max</text>"
            f'<line x1="0" x2="{width}" y1="{band}" y2="{band}" stroke="#888" stroke-width="0.5" '
            f'stroke-dasharray="2,2"/>'
            f'<polyline fill="none" stroke="#3a7d44" stroke-width="1.5" points="{pts}"/></svg>')


#: Secondary text: the theme's own secondary colour in JupyterLab (4.5:1 or more on its light and
#: dark backgrounds; #888 was 3.5:1 on white), a darker grey where no theme is (GitHub, nbviewer).
_GREY = "color:var(--jp-content-font-color2,#666)"
_NOWRAP = "white-space:nowrap"


def totals_html(totals: Totals, records: Sequence[Footprint]) -> str:
    """Cumulative energy, CO2e, duration and the everyday equivalents, their source said once."""
    how = how_obtained([c for fp in records for c in fp.components])
    eqs, sources = [], []
    for eq in equivalents():
        n = eq.amount(totals.energy_j, totals.co2e_g)
        basis = "energy" if eq.wh_per_unit is not None else "CO2e"
        eqs.append(f'<span title="{escape(eq.source)} ({eq.year})" style="{_NOWRAP}">'
                   f'≈ {escape(eq.describe(n))} <span style="{_GREY}">(by {basis})</span></span>')
        source = f"{eq.source.split(':')[0]}, {eq.year}"
        if source not in sources:
            sources.append(source)
    cells = f"{totals.cells} cell{'' if totals.cells == 1 else 's'}"
    return (f'<div style="{_STYLE}"><b>session</b> · {cells} · '
            f"{escape(format_duration(totals.duration_s))}"
            f'<div style="font-size:15px;margin:2px 0"><b data-nbcarbon="energy">'
            f"{escape(format_energy(totals.energy_j))}</b> · "
            f'<b data-nbcarbon="co2e">{escape(format_mass(totals.co2e_g))} CO2e</b></div>'
            f'<div style="{_GREY}">{escape(how)}</div>'
            f'<div>{" · ".join(eqs)}</div>'
            f'<div style="{_GREY};font-size:11px">equivalents: {escape("; ".join(sources))}</div></div>')


def power_html(channels: Sequence[Channel], power_w: Sequence[float | None], age_s: float | None) -> str:
    """Live power per component, each with how it is obtained, and the total."""
    if age_s is None:
        return f'<div style="{_STYLE}"><b>power now</b>: waiting for the sampler…</div>'
    by = power_by_component(channels, power_w)
    rows = []
    for component, watts in by.items():
        chans = [ch for ch in channels if ch.component == component]
        value = "unreadable" if watts is None else f"{watts:.3g} W"
        rows.append(f'<tr style="{ROW_STYLE}">{td(component)}{td(value, "right", extra=";font-weight:bold")}'
                    f"{td(_channel_label(chans), extra=';' + _GREY + ';' + _NOWRAP)}</tr>")
    total = sum(w for w in by.values() if w is not None)
    return (f'<div style="{_STYLE}"><b>power now</b>: <b data-nbcarbon="power">{total:.3g} W</b> '
            f'<span style="{_GREY}">(sampled {age_s:.1f} s ago)</span>'
            f'<table style="{TABLE_STYLE}">{"".join(rows)}</table></div>')


def cells_html(records: Sequence[Footprint], last: int = LAST_CELLS) -> str:
    """The last cells measured: name, energy, CO2e, and region/method only where they differ."""
    if not records:
        return f'<div style="{_STYLE};{_GREY}">no cells measured yet</div>'
    shown = list(reversed(list(records)[-last:]))
    regions = len({fp.region.code for fp in shown}) > 1
    methods = len({how_obtained(fp.components) for fp in shown}) > 1
    rows = []
    for fp in shown:
        values = [(cell_name(fp), "left"), (format_energy(fp.energy_j), "right"),
                  (f"{format_mass(fp.co2e_g)} CO2e", "right")]
        values += [(fp.region.code, "left")] if regions else []
        values += [(how_obtained(fp.components), "left")] if methods else []
        rows.append(f'<tr style="{ROW_STYLE}">' + "".join(td(v, a) for v, a in values) + "</tr>")
    note = "" if methods else f' <span style="{_GREY}">· {escape(how_obtained(shown[0].components))}</span>'
    return (f'<div style="{_STYLE}"><b>last cells</b>{note}'
            f'<table style="{TABLE_STYLE}">{"".join(rows)}</table></div>')


def pricing_html(session: Session, pending: str | None) -> str:
    r = session.region
    year = f" {r.year}" if r.year and str(r.year) not in r.source else ""
    note = f' <span style="color:#b35900">{escape(pending)}</span>' if pending else ""
    return (f'<div style="{_STYLE}">priced for <b>{escape(r.code)}</b> {escape(r.name)}, '
            f"{r.g_per_kwh:.4g} g CO2e/kWh ({escape(r.source)}{escape(year)}, {escape(r.basis)}; "
            f"chosen by {escape(r.chosen_by)}) · PUE {session.pue:g}{note}</div>")


#: When a saved snapshot was taken, as its text says it (``when`` of :func:`static_html`).
SHOWN = "a snapshot from when it was shown"


def static_html(session: Session, when: str = SHOWN) -> str:
    """The dashboard as plain HTML, for renderers without widgets (GitHub, nbviewer), as tqdm does.

    A snapshot: the session's totals, its cells and the pricing, no controls. It says when it
    was taken and where later figures are. It is not updated while the panel is shown: sending
    the widget's output again makes JupyterLab draw a second view of the live panel. ``nbcarbon
    run`` takes it again at the end of the run (``when``), where no one is looking.
    """
    records = session.top_records()
    return (f'<div style="{_STYLE};border-left:3px solid #3a7d44;padding:2px 8px">'
            f'<b>nbcarbon dashboard</b> <span style="{_GREY}">({escape(when)}, live in a running '
            "kernel; cells run and prices changed later are in the readouts and "
            "<code>%carbon summary</code>)</span>"
            f"{totals_html(session.totals(), records)}{cells_html(records)}"
            f"{pricing_html(session, None)}</div>")


def static_text(session: Session, when: str = SHOWN) -> str:
    """One plain-text line: what a renderer without HTML or widgets shows."""
    t = session.totals()
    return (f"nbcarbon dashboard ({when}; cells run and prices changed later are in the readouts "
            f"and %carbon summary): {t.cells} cell(s) · {format_duration(t.duration_s)} · "
            f"{format_energy(t.energy_j)} · {format_mass(t.co2e_g)} CO2e · {session.region.code} · "
            f"PUE {session.pue:g}")


def snapshot_json(session: Session, when: str) -> str:
    """The saved snapshot's ``text/plain`` and ``text/html`` as JSON, for ``nbcarbon run`` to
    put in the dashboards it saves (it asks the kernel, where the session is, for this)."""
    import json

    return json.dumps({"text/plain": static_text(session, when),
                       "text/html": static_html(session, when)})


def _option(region: intensity.Region) -> tuple[str, str]:
    return (f"{region.code} · {region.name} ({region.g_per_kwh:.4g} g/kWh)", region.code)


class Dashboard:
    """The panel: widgets, the session listeners and the live thread, closed together.

    Attributes are the widgets (``region``, ``search``, ``pue``, ``totals``, ``power``,
    ``sparkline``, ``cells``, ``pricing``), so code and tests can drive it as a user would.
    """

    def __init__(self, session: Session, set_pricing: PricingSetter,
                 on_close: Callable[["Dashboard"], None] | None = None) -> None:
        import ipywidgets as w

        self.session = session
        self._set_pricing = set_pricing
        self._on_close = on_close
        self._closed = False
        self._syncing = False
        self._stop = threading.Event()
        self._last_point_t: float | None = None
        self.pending: str | None = None

        self.totals = w.HTML()
        self.power = w.HTML()
        self.sparkline = w.HTML()
        self.cells = w.HTML()
        self.pricing = w.HTML()
        self.search = w.Text(placeholder="search code or name", description="region",
                             layout=w.Layout(width="240px"))
        self.region = w.Dropdown(options=[_option(r) for r in intensity.all_regions()],
                                 value=session.region.code,
                                 layout=w.Layout(width="360px", max_width="100%"))
        self.pue = w.BoundedFloatText(value=session.pue, min=1.0, max=3.0, step=0.05,
                                      description="PUE", layout=w.Layout(width="150px"))
        self.search.observe(self._on_search, "value")
        self.region.observe(self._on_region, "value")
        self.pue.observe(self._on_pue, "value")
        # Two cards side by side, each as wide as its content needs (wrapping under each other in
        # a narrow notebook); a theme-aware border; the controls and pricing under them.
        def card(width: str) -> Any:
            return w.Layout(border="1px solid var(--jp-border-color2, #8884)", padding="4px 8px",
                            margin="2px", flex=f"1 1 {width}")

        self.widget = w.VBox([
            w.HTML(f'<div style="{_STYLE}"><b>nbcarbon dashboard</b></div>'),
            w.HBox([w.VBox([self.totals, self.cells], layout=card("420px")),
                    w.VBox([self.power, self.sparkline], layout=card("340px"))],
                   layout=w.Layout(flex_flow="row wrap", align_items="stretch")),
            w.HBox([self.search, self.region, self.pue],
                   layout=w.Layout(flex_flow="row wrap")),
            self.pricing,
        ])
        self._unsubscribe = [session.on_record(lambda fp: self.refresh()),
                             session.on_reprice(lambda changed: self.refresh())]
        # Live power needs the sampler's full rate while the panel is shown; between cells the
        # sampler otherwise wakes every 30 s (nbcarbon.sampler.IDLE_INTERVAL_S).
        self._unsubscribe.append(session.keep_awake())
        self.refresh()
        self._tick()
        self._thread = threading.Thread(target=self._run, name="nbcarbon-dashboard", daemon=True)
        self._thread.start()

    # -- display -----------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget view, with a readable ``text/plain`` and a static ``text/html`` snapshot for
        renderers without widgets (not ``VBox(children=(HTML(value='<div...``)."""
        bundle = self.widget._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if isinstance(data, dict):
            data["text/plain"] = static_text(self.session)
            data["text/html"] = static_html(self.session)
        return bundle

    # -- records and pricing (main thread) ----------------------------------------------------
    def refresh(self) -> None:
        """Redraw totals, cells and pricing from the session; sync the selector to its region."""
        if self._closed:
            return
        records = self.session.top_records()  # nested windows are in their cell's numbers
        self.totals.value = totals_html(self.session.totals(), records)
        self.cells.value = cells_html(records)
        self.pricing.value = pricing_html(self.session, self.pending)
        self._syncing = True
        try:
            code = self.session.region.code
            if code not in [value for _, value in self.region.options]:
                # Priced elsewhere (%carbon region) for a region the search hides: the search
                # no longer describes the list, so it is cleared and the region listed first.
                self.search.value = ""
                self._filter("", keep=code)
            self.region.value = code
            self.pue.value = self.session.pue
        finally:
            self._syncing = False

    def _filter(self, text: str, keep: str | None = None) -> None:
        """Show the regions matching ``text``, with ``keep`` (by default the one chosen) first so
        it stays chosen."""
        current = keep or self.region.value
        found = [r for r in intensity.search(text) if r.code != current] if text.strip() else \
            [r for r in intensity.all_regions() if r.code != current]
        first = [_option(intensity.lookup(current))] if current else []
        syncing, self._syncing = self._syncing, True
        try:
            self.region.options = first + [_option(r) for r in found]
            if current:
                self.region.value = current
        finally:
            self._syncing = syncing

    def _on_search(self, change: dict[str, Any]) -> None:
        self._filter(change["new"])

    def _on_region(self, change: dict[str, Any]) -> None:
        if self._syncing or change["new"] is None:
            return
        self._apply(region=change["new"])

    def _on_pue(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        self._apply(pue=float(change["new"]))

    def _apply(self, **change: Any) -> None:
        """Ask the outer layer to re-price; it returns ``None`` when the change is deferred."""
        try:
            outcome = self._set_pricing(**change)
        except NbcarbonError as exc:  # shown in the panel: an observer's exception would be lost
            self.pricing.value = pricing_html(self.session, str(exc))
            return
        self.pending = DEFERRED if outcome is None else None
        self.pricing.value = pricing_html(self.session, self.pending)

    def applied(self) -> None:
        """Called by the outer layer once a deferred change was applied."""
        self.pending = None
        self.refresh()

    # -- live power (own thread) -------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(1.0 / MAX_HZ):
            self._tick()

    def _tick(self) -> None:
        """Update power and sparkline when the sampler has a new point; set traitlets only."""
        sampler = self.session.sampler
        if sampler is None or self._closed:
            return
        points = list(sampler.timeline)[-SPARK_POINTS:]
        if not points:
            self.power.value = power_html(sampler_channels(sampler), (), None)
            return
        last = points[-1]
        if last.t_s == self._last_point_t:
            return
        self._last_point_t = last.t_s
        channels = sampler_channels(sampler)
        self.power.value = power_html(channels, last.power_w, max(0.0, time.monotonic() - last.t_s))
        totals = [sum(p for p in pt.power_w if p is not None) for pt in points]
        self.sparkline.value = sparkline_svg(totals)

    # -- life cycle --------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the live thread, unsubscribe from the session and close the widgets. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(5.0)
        for unsubscribe in self._unsubscribe:
            try:
                unsubscribe()
            except ValueError:  # the session already dropped its listeners
                pass
        self._close_widgets()
        if self._on_close is not None:
            self._on_close(self)

    def _close_widgets(self) -> None:
        stack = [self.widget]
        while stack:
            widget = stack.pop()
            stack.extend(getattr(widget, "children", ()))
            widget.close()

    @property
    def running(self) -> bool:
        """Whether the live thread is alive."""
        return self._thread.is_alive()


def sampler_channels(sampler: Any) -> list[Channel]:
    return [m.channel for m in sampler.meters]
