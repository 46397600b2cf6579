"""What a paper or a README says about a notebook's footprint: a methods paragraph, a table, a badge.

Why its own module: researchers report footprints in prose, and the prose must carry what makes a
number checkable (how each part was measured, the grid's source and year, the PUE, the tool's
version) without the reader opening the notebook. Records in, text out (``nbcarbon report
--format latex|markdown|svg``); totals add top-level records only, like every other view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from .footprint import Footprint, top_level
from .meters.base import METHOD_KIND
from .readout import escape_controls, format_mass, share_basis_label

#: How a method is named in prose (the readout's labels are longer).
SHORT = {
    "rapl-counter": "RAPL", "nvml-counter": "NVML", "nvml-power": "NVML power",
    "amdsmi-counter": "AMD SMI", "amdsmi-power": "AMD SMI power", "amd-energy-counter": "amd_energy",
    "ioreport-counter": "IOReport", "cpu-time-model": "CPU-time model", "memory-model": "memory model",
}
_KINDS = ("measured", "sampled", "estimated")


@dataclass(frozen=True)
class Methods:
    """The facts a methods paragraph states, summed over top-level records of some notebooks."""

    notebooks: tuple[str, ...]
    cells: int
    duration_s: float
    energy_j: float
    co2e_g: float
    by_component: tuple[tuple[str, str, float], ...]  # (component, method, joules)
    regions: tuple[tuple[str, float, str, int | None, str], ...]  # (code, g/kWh, source, year, basis)
    pues: tuple[float, ...]
    versions: tuple[str, ...]
    #: (method, how it was split) of the methods whose energy is this process's share of a
    #: machine-wide counter: the counter is measured, the split is not, and prose must say so.
    shares: tuple[tuple[str, str], ...] = ()


def methods(notebooks: Sequence[tuple[str, Sequence[Footprint]]]) -> Methods:
    """Sum each notebook's top-level records (nested windows are in their parents already)."""
    cells, duration, energy, co2e = 0, 0.0, 0.0, 0.0
    parts: dict[tuple[str, str], float] = {}
    regions: dict[tuple[str, float, str, int | None, str], None] = {}
    pues: dict[float, None] = {}
    versions: dict[str, None] = {}
    shares: dict[tuple[str, str], None] = {}
    for _, records in notebooks:
        for fp in top_level(records):
            cells += 1
            duration += fp.duration_s
            energy += fp.energy_j
            co2e += fp.co2e_g
            for c in fp.components:
                parts[(c.component, c.method)] = parts.get((c.component, c.method), 0.0) + c.energy_j
                if c.share is not None:
                    shares[(c.method, c.share.basis)] = None
            r = fp.region
            regions[(r.code, r.g_per_kwh, r.source, r.year, r.basis)] = None
            pues[fp.pue] = None
            if fp.nbcarbon_version:
                versions[fp.nbcarbon_version] = None
    return Methods(tuple(name for name, _ in notebooks), cells, duration, energy, co2e,
                   tuple((c, m, j) for (c, m), j in sorted(parts.items())), tuple(regions),
                   tuple(pues), tuple(versions), tuple(shares))


def energy_words(energy_j: float) -> str:
    """Energy in the unit a reader expects in prose: kWh, Wh or mWh, three significant digits."""
    wh = energy_j / 3600.0
    if wh >= 1000:
        return f"{wh / 1000:.3g} kWh"
    if wh >= 1:
        return f"{wh:.3g} Wh"
    return f"{wh * 1000:.3g} mWh"


def how_measured(m: Methods) -> str:
    """``measured: RAPL, NVML; estimated: memory model``: kinds in a fixed order, names once;
    a method whose energy was this process's share says how it was split."""
    by_kind: dict[str, dict[str, None]] = {}
    for _, method, _ in m.by_component:
        by_kind.setdefault(METHOD_KIND.get(method, "estimated"), {})[_named(m, method)] = None
    return "; ".join(f"{kind}: {', '.join(by_kind[kind])}" for kind in _KINDS if kind in by_kind)


def _named(m: Methods, method: str) -> str:
    """``RAPL``, or ``RAPL (the process's share, by CPU time)`` where it was shared."""
    name = SHORT.get(method, method)
    splits = [share_basis_label(basis) for shared, basis in m.shares if shared == method]
    return f"{name} (the process's share, {' or '.join(splits)})" if splits else name


def _region_words(m: Methods) -> str:
    if len(m.regions) != 1:
        codes = ", ".join(dict.fromkeys(code for code, *_ in m.regions))
        return f"priced per cell in {len(m.regions)} grid figures ({codes})"
    code, g, source, year, basis = m.regions[0]
    when = f" {year}" if year and str(year) not in source else ""
    return f"at {g:.4g} g/kWh ({code}, {source}{when}, {basis})"


def sentence(m: Methods) -> str:
    """The sentence users paste: energy and how it was obtained, CO2e and the grid it assumes."""
    what = "the notebook" if len(m.notebooks) == 1 else f"the {len(m.notebooks)} notebooks"
    pue = f", PUE {m.pues[0]:g}" if len(m.pues) == 1 and m.pues[0] != 1 else (
        "" if len(m.pues) == 1 else ", with several PUEs")
    return (f"Running {what} used {energy_words(m.energy_j)} ({how_measured(m)}), about "
            f"{format_mass(m.co2e_g)} CO2e {_region_words(m)}{pue}.")


def paragraph(m: Methods) -> str:
    """The methods paragraph: the sentence, then what the numbers include and exclude."""
    version = ", ".join(m.versions) or "unknown"
    return (f"{sentence(m)} Energy was measured per cell ({m.cells} measured cells, "
            f"{m.duration_s:.4g} s in all) with nbcarbon {version}: hardware counters read at each "
            "cell's start and end where the machine has them, models where it does not; CO2e is "
            "energy × PUE × the grid's carbon intensity, so it can be re-priced for another grid.")


def _latex_escape(text: str) -> str:
    table = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
             "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(table.get(ch, ch) for ch in escape_controls(text))


def _rows(m: Methods) -> list[tuple[str, str, str, str]]:
    total = m.energy_j or 1.0
    return [(component, f"{METHOD_KIND.get(method, 'estimated')}: {_named(m, method)}",
             energy_words(joules), f"{joules / total * 100:.1f}\\%")
            for component, method, joules in m.by_component]


def latex(m: Methods) -> str:
    """A methods paragraph and a ``tabular`` by component, ready for ``\\input``."""
    lines = [_latex_escape(paragraph(m)), "", r"\begin{tabular}{llrr}", r"\hline",
             r"component & how obtained & energy & \% of energy \\", r"\hline"]
    for component, how, energy, share in _rows(m):
        lines.append(f"{_latex_escape(component)} & {_latex_escape(how)} & "
                     f"{_latex_escape(energy)} & {share} \\\\")
    lines += [r"\hline", f"total & & {_latex_escape(energy_words(m.energy_j))} & "
              f"{_latex_escape(format_mass(m.co2e_g))} CO$_2$e \\\\", r"\hline", r"\end{tabular}"]
    return "\n".join(lines)


def markdown(m: Methods) -> str:
    """The same paragraph and table in Markdown (after ``report --format markdown``'s cell table)."""
    from .report import markdown_cell

    lines = [f"**Methods.** {markdown_cell(paragraph(m))}", "",
             "| component | how obtained | energy | % of energy |", "| --- | --- | --- | --- |"]
    lines += [f"| {markdown_cell(c)} | {markdown_cell(h)} | {e} | {s.replace(chr(92), '')} |"
              for c, h, e, s in _rows(m)]
    return "\n".join(lines)


def badge(m: Methods) -> str:
    """A README badge (SVG, no scripts, no external fonts): ``CO2e | 0.9 kg · 2.4 kWh``."""
    left, right = "CO2e", f"{format_mass(m.co2e_g)} · {energy_words(m.energy_j)}"
    lw, rw = 8 + 7 * len(left), 10 + 7 * len(right)
    title = escape(sentence(m))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{lw + rw}" height="20" role="img" '
            f'aria-label="{escape(left)}: {escape(right)}"><title>{title}</title>'
            f'<rect width="{lw}" height="20" fill="#555"/>'
            f'<rect x="{lw}" width="{rw}" height="20" fill="#3a7d44"/>'
            f'<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">'
            f'<text x="{lw / 2:g}" y="14" text-anchor="middle">{escape(left)}</text>'
            f'<text x="{lw + rw / 2:g}" y="14" text-anchor="middle">{escape(right)}</text>'
            "</g></svg>")
