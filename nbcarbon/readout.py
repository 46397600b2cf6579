"""Text and HTML renderings of a footprint record. No measurement here: records in, strings out.

Every number shown says how it was obtained (measured counter, sampled power, or model
estimate), and every value put into HTML is escaped; the HTML carries no script, so it renders the
same on GitHub and nbviewer as in a live notebook.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

from .footprint import METADATA_KEY, Component, Footprint, PricedRegion

METHOD_LABEL = {
    "rapl-counter": "RAPL counter",
    "nvml-counter": "NVML energy counter",
    "nvml-power": "NVML power, sampled",
    "cpu-time-model": "CPU-time model",
    "memory-model": "memory model",
    "amdsmi-counter": "AMD SMI energy counter",
    "amdsmi-power": "AMD SMI power, sampled",
    "amd-energy-counter": "amd_energy counter",
    "ioreport-counter": "IOReport energy counter",
}
#: Where the readout's HTML ends up is a shared notebook: keep styles inline and neutral so
#: they survive sanitisers and suit both light and dark themes.
#: ``overflow-x:auto``: a readout wider than a narrow window scrolls inside its box (its cells
#: do not wrap, see ``_CELL_L``) instead of being cut off at the output area's edge.
BOX_STYLE = ("font-family:var(--jp-code-font-family,monospace);font-size:12px;line-height:1.4;"
             "border-left:3px solid #3a7d44;padding:2px 8px;margin:2px 0;overflow-x:auto")
#: The box of a cell that did not finish (error, interrupted): its rule in the warning colour,
#: as the extension's badge marks it.
_BOX_UNFINISHED = BOX_STYLE.replace("#3a7d44", "#b35900")


def _box(fp: Footprint) -> str:
    """The style of ``fp``'s readout box, by its status."""
    return BOX_STYLE if fp.status == "ok" else _BOX_UNFINISHED


#: The most characters of a label a readout or table shows; the record keeps the label whole.
LABEL_SHOWN = 80

#: Bidirectional controls: they reorder the text that follows them (U+202E shows "exe.txt" for
#: "txt.exe"), so a label could make a readout or table say something it does not.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                          "\u2066\u2067\u2068\u2069")


#: A character a terminal, a Markdown renderer or a browser would act on instead of showing:
#: C0 and C1 controls and DEL (ESC starts terminal commands: set the title, clear the screen),
#: the line and paragraph separators, bidirectional controls, and lone surrogates (which cannot
#: even be encoded to print them).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff"
                     + "".join(sorted(BIDI_CONTROLS)) + "]")


def _unsafe(ch: str) -> bool:
    return _UNSAFE.match(ch) is not None


def _escaped(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str, keep: str = "") -> str:
    """``text`` with every control, bidi-override and separator character written as ``\\x1b``,
    ``\\u202e``..., except those in ``keep`` (e.g. the newlines between lines of a table).

    Why: labels, file names and record fields are arbitrary text, and whatever nbcarbon prints
    must show them, never let them act (retitle the terminal, clear it, reverse a line). Text
    without such characters comes back unchanged, and escaping twice changes nothing more.
    """
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(lambda m: m.group() if m.group() in keep else _escaped(m.group()), text)


def shown_label(label: str, limit: int = LABEL_SHOWN) -> str:
    """A label as readouts and tables show it: on one line, at most ``limit`` characters, with
    control and bidi characters escaped (:func:`escape_controls`).

    Labels are the user's text, stored in the record exactly as given; what is shown must keep a
    readout one short block whatever they hold (newlines, escape sequences, 10,000 characters).
    Escaping for HTML or Markdown is the renderer's job, after this.
    """
    one_line = " ".join(label.split())
    if one_line.isprintable() and len(one_line) <= limit:
        return one_line
    pieces = [_escaped(ch) if _unsafe(ch) else ch for ch in one_line]
    if sum(map(len, pieces)) <= limit:
        return "".join(pieces)
    kept: list[str] = []
    used = 0
    for piece in pieces:  # whole escapes only: never "\\x1" at the cut
        if used + len(piece) > limit - 1:
            break
        kept.append(piece)
        used += len(piece)
    return "".join(kept) + "…"


def format_energy(energy_j: float) -> str:
    """Joules with the Wh equivalent people compare against (mWh, Wh or kWh)."""
    wh = energy_j / 3600.0
    if wh < 1.0:
        other = f"{wh * 1000:.3g} mWh"
    elif wh < 1000.0:
        other = f"{wh:.3g} Wh"
    else:
        other = f"{wh / 1000:.3g} kWh"
    if energy_j < 1e3:
        joules = f"{energy_j:.3g} J"
    elif energy_j < 1e6:
        joules = f"{energy_j / 1e3:.3g} kJ"
    elif energy_j < 1e9:
        joules = f"{energy_j / 1e6:.3g} MJ"
    else:
        joules = f"{energy_j / 1e9:.3g} GJ"
    return f"{joules} ({other})"


def format_mass(co2e_g: float) -> str:
    """Grams of CO2e in mg, g or kg, three significant figures."""
    if co2e_g < 1.0:
        return f"{co2e_g * 1000:.3g} mg"
    if co2e_g < 1000.0:
        return f"{co2e_g:.3g} g"
    return f"{co2e_g / 1000:.3g} kg"


def format_duration(duration_s: float) -> str:
    if duration_s < 60:
        return f"{duration_s:.2f} s"
    minutes, seconds = divmod(duration_s, 60)
    if minutes < 60:
        return f"{int(minutes)} min {seconds:.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)} h {int(minutes)} min"


def how_obtained(components: tuple[Component, ...] | list[Component]) -> str:
    """'measured: RAPL counter; estimated: memory model' — grouped by kind, in a stable order.

    A component that is this process's share of a machine-wide counter says so, with how it was
    split ('RAPL counter (share by CPU time)'): the counter is measured, the split is not.
    """
    groups: dict[str, list[str]] = {}
    for c in components:
        label = METHOD_LABEL.get(c.method, c.method)
        if c.share is not None:
            label = f"{label} (share {share_basis_label(c.share.basis)})"
        names = groups.setdefault(c.kind, [])
        if label not in names:
            names.append(label)
    order = ("measured", "sampled", "estimated")
    parts = [f"{kind}: {', '.join(groups[kind])}" for kind in order if kind in groups]
    return "; ".join(parts) or "nothing measured"


def _region_line(fp: Footprint) -> str:
    """The readout's region line, kept for the last region and PUE object it was made for.

    Why: every readout says it, the records of a session share their region and PUE objects
    until the pricing changes, and in a kernel this is the cell's first formatting of a number,
    run cold; checked by identity, so an equal but distinct object only makes it again.
    """
    global _last_region_line
    r, pue = fp.region, fp.pue
    last = _last_region_line
    if last[0] is r and last[1] is pue:
        return last[2]
    line = region_line(r, pue)
    _last_region_line = (r, pue, line)  # one tuple, replaced whole: no reader sees half of it
    return line


def region_line(r: PricedRegion, pue: float) -> str:
    """'SE Sweden, 41 g/kWh (Ember …, lifecycle; chosen by environment) · PUE 1.2'."""
    year = f" {r.year}" if r.year and str(r.year) not in r.source else ""
    return (f"{r.code} {r.name}, {r.g_per_kwh:.4g} g/kWh ({r.source}{year}, {r.basis}; "
            f"chosen by {r.chosen_by}) · PUE {pue:g}")


#: (region, PUE, line) of the last :func:`_region_line` made.
_last_region_line: tuple[Any, Any, str] = (None, None, "")


def _title(fp: Footprint) -> str:
    who = shown_label(fp.label) if fp.label is not None else (
        f"In [{fp.execution_count}]" if fp.execution_count is not None else "window")
    status = "" if fp.status == "ok" else f" · {fp.status}"
    return f"{who}{status}"


def one_line(fp: Footprint, brief: bool = False) -> str:
    """The compact readout used by auto mode and ``--quiet``.

    ``brief`` leaves out the region and methods: ``nbcarbon run`` uses it when they are the same
    for every cell, and its summary says them once.
    """
    status = "" if fp.status == "ok" else f" · {fp.status}"
    warn = f" · {len(fp.warnings)} warning(s)" if fp.warnings else ""
    where = "" if brief else f" · {fp.region.code} · {how_obtained(fp.components)}"
    # A labelled window (``track("inner")``) is named, so two in one cell can be told apart; a
    # nested one says that its cell's readout already includes it.
    who = f"nbcarbon · {shown_label(fp.label)}:" if fp.label is not None else "nbcarbon:"
    nested = " · nested: in its parent's total" if fp.parent_id is not None else ""
    return (f"{who} {format_energy(fp.energy_j)} · {format_mass(fp.co2e_g)} CO2e · "
            f"{format_duration(fp.duration_s)}{status}{nested}{where}{warn}")


#: How a share of a machine-wide counter was split (``Share.basis``), as the readout says it.
SHARE_BASIS_LABEL = {
    "cpu-time": "by CPU time",
    "gpu-utilization": "by GPU utilization",
    "gpu-processes": "split between the processes on the GPU",
}


def share_basis_label(basis: str) -> str:
    """How a share was split, in words ('by CPU time'); an unknown basis as 'by <basis>'."""
    return SHARE_BASIS_LABEL.get(basis) or f"by {basis}"


def share_note(c: Component) -> str | None:
    """"your share: 38% of package-0's 40 J (11.1 mWh), by CPU time", or ``None`` for a whole
    counter.

    Why said per component: a shared counter (the CPU package, a GPU) measures every process on
    the machine, and the cell is charged only its part of it; the reader must see both figures
    and how the split was made, or the energy reads as the machine's.
    """
    s = c.share
    if s is None:
        return None
    basis = share_basis_label(s.basis)
    return (f"your share: {s.fraction * 100:.3g}% of {shown_label(c.device, 40)}'s "
            f"{format_energy(s.machine_energy_j)}, {basis}")


def _component_cells(fp: Footprint) -> list[tuple[Any, ...]]:
    """Per component: name, device, energy, % of the cell, mean power, method (and share note)."""
    total = fp.energy_j
    rows = []
    for c in fp.components:
        pct = c.energy_j / total * 100 if total > 0 else 0.0
        how = f"{c.kind}: {METHOD_LABEL.get(c.method, c.method)}"
        note = share_note(c)
        rows.append((c.component, c.device, c.energy_j, f"{pct:.1f}%", c.mean_power_w, how,
                     note))
    return rows


def text(fp: Footprint) -> str:
    """The full plain-text readout (what terminals, ``nbconvert --to script`` and diffs show).

    Written out directly, as :func:`html` is: the readout of a cell comes from :func:`_full`'s
    templates, which must say exactly this (``tests/test_perf_paths.py`` holds them to it).
    """
    return _text(fp, _component_cells(fp))


def _head(fp: Footprint) -> tuple[str, str, str, str, str]:
    """Title, duration, energy, CO2e and region line of a full readout."""
    return (_title(fp), format_duration(fp.duration_s), format_energy(fp.energy_j),
            format_mass(fp.co2e_g), _region_line(fp))


def _text(fp: Footprint, rows: list[tuple[Any, ...]]) -> str:
    title, duration, energy, mass, region = _head(fp)
    lines = [f"nbcarbon · {title} · {duration} · {energy} · {mass} CO2e"]
    for component, device, energy_j, pct, power_w, how, note in rows:
        lines.append(f"  {component:<7} {device:<14} {energy_j:10.3g} J {pct:>6}  "
                     f"{power_w:7.3g} W  {how}")
        if note:
            lines.append(f"          {note}")
    lines.append(f"  region {region}")
    lines.extend(f"  ! {w}" for w in fp.warnings)
    return "\n".join(lines)


#: Inline styles that undo what notebook front ends do to every table they render: JupyterLab
#: and Notebook 7 right-align cells, pad them 0.5em, shade odd rows, centre the table and set
#: the UI font size; nbconvert's classic template does much the same. Inline styles win over
#: those stylesheets (none uses !important), so the readout looks the same everywhere.
TABLE_STYLE = ("border-collapse:collapse;border:none;margin:2px 0;font-size:inherit;"
               "color:inherit;table-layout:auto")
ROW_STYLE = "background:none;border:none"
_TD = "padding:0 10px 0 0;border:none;line-height:inherit;white-space:nowrap;text-align:"


def td(value: str, align: str = "left", tag: str = "td", extra: str = "") -> str:
    """One escaped table cell with the inline styles above (``align``: left or right)."""
    return f'<{tag} style="{_TD}{align}{extra}">{escape(value)}</{tag}>'


#: The readout's own cell styles, kept short because they repeat in every cell: each cell must
#: carry its own (see :data:`TABLE_STYLE`: the notebook's stylesheet sets padding and alignment on
#: ``td`` itself, so nothing set on the table or row reaches them, and ``<style>`` blocks are
#: removed by JupyterLab's sanitiser and GitHub). ``border:0`` is for renderers that rule tables;
#: ``white-space:nowrap`` keeps "0.573 J (0.159 mWh)" on one line in a narrow window, where the
#: box scrolls sideways instead (``BOX_STYLE``).
_CELL_L = '<td style="padding:0 1em 0 0;border:0;white-space:nowrap;text-align:left">'
_CELL_R = '<td style="padding:0 1em 0 0;border:0;white-space:nowrap;text-align:right">'
_ROW = '<tr style="background:none;border:0">'
_TABLE = ('<table style="border-collapse:collapse;border:0;margin:2px 0;font-size:inherit;'
          'color:inherit;table-layout:auto">')
_WARN = '<div style="color:#b35900">⚠ '
#: A share is said on a row of its own under its component, from the device column on (as in
#: the text readout): in the method's cell it would make the row two lines high, and the
#: notebook's stylesheet centres the other cells of that row vertically.
_SHARE = (f'{_ROW}{_CELL_L}</td><td colspan="5" '
          'style="padding:0;border:0;text-align:left;opacity:.75">')


def html(fp: Footprint, compact: bool = False, brief: bool = False) -> str:
    """Script-free HTML; every value escaped."""
    if compact:
        return f'<div style="{_box(fp)}">{escape(one_line(fp, brief))}</div>'
    return _html(fp, _component_cells(fp))


def _html(fp: Footprint, rows: list[tuple[Any, ...]]) -> str:
    """One row per component, one style per cell (the least that renders the same in JupyterLab,
    nbconvert's templates and a bare browser), and a row under a component whose energy is a
    share."""
    title, duration, energy, mass, region = _head(fp)
    L, R = _CELL_L, _CELL_R  # noqa: N806
    body = "".join(
        f"{_ROW}{L}{escape(component)}</td>{L}{escape(device)}</td>"
        f"{R}{escape(format_energy(energy_j))}</td>{R}{pct}</td>{R}{power_w:.3g} W</td>"
        f"{L}{escape(how)}</td></tr>{_SHARE + escape(note) + '</td></tr>' if note else ''}"
        for component, device, energy_j, pct, power_w, how, note in rows)
    warnings = "".join(f"{_WARN}{escape(w)}</div>" for w in fp.warnings)
    return (
        f'<div style="{_box(fp)}">'
        f"<div><b>{escape(energy)}</b> · <b>{escape(mass)}"
        f" CO2e</b> · {escape(duration)} · {escape(title)}</div>"
        f"{_TABLE}{body}</table>"
        f"<div>region {escape(region)}</div>{warnings}</div>"
    )


def mimebundle(fp: Footprint, compact: bool = False,
               brief: bool = False) -> tuple[dict[str, str], dict[str, Any]]:
    """``(data, metadata)`` for a ``display_data`` output carrying the record
    (``brief``: the compact line without region and methods, see :func:`one_line`)."""
    if compact:
        line = one_line(fp, brief)
        data = {"text/plain": line,
                "text/html": f'<div style="{_box(fp)}">{escape(line)}</div>'}
    else:
        data = _full(fp)
    return data, {METADATA_KEY: fp.to_dict()}


#: The full readout's text and HTML per shape of record (:func:`_full`), with what is the same
#: from cell to cell already formatted and escaped, and a ``{}`` for each number and the title.
_TEMPLATES: dict[tuple[Any, ...], tuple[str, str]] = {}
#: The most shapes kept: a session has one or two (its meters, its region); re-pricing for many
#: regions in turn makes more, and a full cache starts again.
_TEMPLATES_KEPT = 64


def _full(fp: Footprint) -> dict[str, str]:
    """The full readout (:func:`text` and :func:`html`, character for character), from a template.

    Why: this runs under every measured cell, once per readout when 10,000 are re-priced, and in
    a kernel it runs cold, after the kernel's own code. Of what the two renderings say, only the
    title and the numbers change from one cell to the next; the components' names and methods,
    the region line and the warnings are formatted and escaped once per shape, so a readout is
    a few numbers formatted and two ``str.format`` calls, not a dozen escapes and f-strings.
    """
    comps = fp.components
    region = _region_line(fp)
    key = (region, fp.warnings, fp.status == "ok",
           *[(c.component, c.device, c.method, c.share is None) for c in comps])
    found = _TEMPLATES.get(key)
    if found is None:
        if len(_TEMPLATES) >= _TEMPLATES_KEPT:
            _TEMPLATES.clear()
        found = _TEMPLATES[key] = _templates(fp, region)
    total = fp.energy_j
    title, duration = _title(fp), format_duration(fp.duration_s)
    energy, mass = format_energy(total), format_mass(fp.co2e_g)
    # Numbers and their units never hold what HTML escapes; the title can.
    plain: list[Any] = [title, duration, energy, mass]
    rich: list[Any] = [energy, mass, duration, escape(title)]
    for c in comps:
        joules = c.energy_j
        pct = f"{joules / total * 100 if total > 0 else 0.0:.1f}%"
        plain += (joules, pct, c.mean_power_w)
        rich += (format_energy(joules), pct, c.mean_power_w)
        if c.share is not None:
            note = share_note(c)
            plain.append(note)
            rich.append(escape(note))  # type: ignore[arg-type]
    return {"text/plain": found[0].format(*plain), "text/html": found[1].format(*rich)}


def _literal(text: str) -> str:
    """``text`` as it must stand in a ``str.format`` template to come out unchanged."""
    return text.replace("{", "{{").replace("}", "}}")


def _templates(fp: Footprint, region: str) -> tuple[str, str]:
    """The text and HTML templates of :func:`_full` for ``fp``'s shape: what :func:`_text` and
    :func:`_html` write, with a ``{}`` (and the same format spec) where they put a number."""
    lit = _literal
    lines = ["nbcarbon · {} · {} · {} · {} CO2e"]
    body = []
    for c in fp.components:
        how = f"{c.kind}: {METHOD_LABEL.get(c.method, c.method)}"
        lines.append(lit(f"  {c.component:<7} {c.device:<14} ") + "{:10.3g} J {:>6}  {:7.3g} W  "
                     + lit(how))
        body.append(lit(f"{_ROW}{_CELL_L}{escape(c.component)}</td>{_CELL_L}{escape(c.device)}</td>"
                        f"{_CELL_R}") + "{}" + lit(f"</td>{_CELL_R}") + "{}" + lit(f"</td>{_CELL_R}")
                    + "{:.3g}" + lit(f" W</td>{_CELL_L}{escape(how)}</td></tr>"))
        if c.share is not None:
            lines.append("          {}")
            body.append(lit(_SHARE) + "{}" + lit("</td></tr>"))
    lines.append(lit(f"  region {region}"))
    lines.extend(lit(f"  ! {w}") for w in fp.warnings)
    warnings = "".join(f"{_WARN}{escape(w)}</div>" for w in fp.warnings)
    html = (lit(f'<div style="{_box(fp)}"><div><b>') + "{}" + lit("</b> · <b>") + "{}"
            + lit(" CO2e</b> · ") + "{}" + lit(" · ") + "{}" + lit(f"</div>{_TABLE}")
            + "".join(body) + lit(f"</table><div>region {escape(region)}</div>{warnings}</div>"))
    return "\n".join(lines), html
