"""Readouts and summaries of records whose energy is a share of a machine-wide counter.

Why: a shared counter (a CPU package, a GPU) measures every process on the machine, and the cell
is charged only its part (``Component.share``, ``attribution: "share"``). The readout must say so
per component, with the machine's figure and how it was split, or a reader takes the charged
energy for the machine's; a summary says once which figures are shares.
"""

from __future__ import annotations

import dataclasses
import math
import re
from html import unescape

from nbcarbon import readout, summary
from nbcarbon.footprint import Component, Footprint, PricedRegion, Share

REGION = PricedRegion("SE", "Sweden", 41.0, 2023, "Ember", "annual average", "env")


def record(i: int = 0, *, shared: bool = True, label: str | None = None,
           warnings: tuple[str, ...] = ()) -> Footprint:
    cpu_share = Share("cpu-time", 0.38, 40.0) if shared else None
    gpu_share = Share("gpu-utilization", 0.5, 80.0) if shared else None
    comps = (Component("cpu", "package-0", "rapl-counter", 15.2, 24.0, cpu_share),
             Component("dram", "dram-0", "rapl-counter", 1.5, 2.0),
             Component("gpu", "gpu-0", "nvml-counter", 40.0, 65.0, gpu_share))
    energy = sum(c.energy_j for c in comps)
    return Footprint(
        id=f"{i:032x}", cell_id=None, label=label, execution_count=i + 1,
        started_at="2026-01-01T00:00:00+00:00", duration_s=0.6, status="ok", components=comps,
        energy_j=energy, pue=1.0, region=REGION,
        co2e_g=energy / 3.6e6 * 41.0, attribution="share" if shared else "process",
        warnings=warnings, nbcarbon_version="0")


def _plain(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


def test_readout_says_each_share_with_the_machines_figure_and_basis() -> None:
    data, metadata = readout.mimebundle(record())
    text, html = data["text/plain"], _plain(data["text/html"])
    for shown in (text, html):
        assert "your share: 38% of package-0's 40 J (11.1 mWh), by CPU time" in shown
        assert "your share: 50% of gpu-0's 80 J (22.2 mWh), by GPU utilization" in shown
        assert shown.count("your share") == 2  # dram is the counter's whole energy: no note
    # The share line sits under its component's line, in the text and in the HTML table.
    lines = text.splitlines()
    cpu = next(i for i, line in enumerate(lines) if line.strip().startswith("cpu "))
    assert "your share" in lines[cpu + 1]
    rows = re.findall(r"<tr.*?</tr>", data["text/html"])
    assert len(rows) == 5 and "your share" in rows[1] and 'colspan="5"' in rows[1]
    comps = metadata["nbcarbon"]["components"]
    assert comps[0]["share"] == {"basis": "cpu-time", "fraction": 0.38, "machine_energy_j": 40.0}
    assert "share" not in comps[1]


def test_gpu_processes_basis_and_an_unnamed_basis_are_said_in_words() -> None:
    fp = record()
    gpu = dataclasses.replace(fp.components[2], share=Share("gpu-processes", 0.25, 80.0))
    fp = dataclasses.replace(fp, components=(fp.components[0], fp.components[1], gpu))
    assert "25% of gpu-0's 80 J (22.2 mWh), split between the processes on the GPU" in readout.text(fp)


def test_readout_without_shares_says_nothing_of_them() -> None:
    data, _ = readout.mimebundle(record(shared=False))
    assert "share" not in data["text/plain"] and "share" not in data["text/html"]


def test_share_note_escapes_the_device_name() -> None:
    fp = record()
    cpu = dataclasses.replace(fp.components[0], device="<b>pkg</b>\x1b[2J")
    fp = dataclasses.replace(fp, components=(cpu, *fp.components[1:]))
    data, _ = readout.mimebundle(fp)
    assert "<b>pkg" not in data["text/html"] and "&lt;b&gt;pkg" in data["text/html"]
    assert "\x1b" not in readout.share_note(cpu)


def test_compact_readout_is_one_line_with_shares_too() -> None:
    data, _ = readout.mimebundle(record(), compact=True)
    assert len(data["text/plain"].splitlines()) == 1
    assert "<table" not in data["text/html"]


def test_summary_says_once_that_figures_are_shares() -> None:
    records = [record(i) for i in range(3)]
    data, meta = summary.mimebundle(records, REGION, 1.0, "0")
    text, html = data["text/plain"], _plain(data["text/html"])
    for shown in (text, html):
        assert shown.count("share of machine-wide counters") == 1
        assert "energies are each cell's share" in shown
        assert "by CPU time; by GPU utilization" in shown
        assert " *" not in shown  # every row is a share: no row is marked
    assert math.isclose(meta["nbcarbon"]["energy_j"], sum(fp.energy_j for fp in records))


def test_summary_marks_the_shared_rows_when_only_some_are() -> None:
    records = [record(0), record(1, shared=False), record(2)]
    text = summary.mimebundle(records, REGION, 1.0, "0")[0]["text/plain"]
    rows = [line for line in text.splitlines() if line.startswith("In [")]
    assert [line.split("  ")[0] for line in rows] == ["In [1] *", "In [2]", "In [3] *"]
    assert text.count("* energy is the cell's share of machine-wide counters") == 1


def test_summary_without_shares_says_nothing_of_them() -> None:
    data, _ = summary.mimebundle([record(i, shared=False) for i in range(2)], REGION, 1.0, "0")
    assert "share" not in data["text/plain"] and "share" not in data["text/html"]


def test_every_view_that_names_methods_says_which_energy_is_a_share() -> None:
    """The counter is measured, the split between processes is not: the method column of the
    summary and the report, and the paper's prose and table, say how a share was split."""
    from nbcarbon import paper, report
    from nbcarbon.readout import how_obtained

    fp = record(0)
    how = how_obtained(fp.components)
    assert how == ("measured: RAPL counter (share by CPU time), RAPL counter, "
                   "NVML energy counter (share by GPU utilization)")
    assert how_obtained(record(1, shared=False).components) == "measured: RAPL counter, NVML energy counter"
    assert [r.method for r in report.rows("nb", [fp, record(1, shared=False), record(2)])] == [
        how, "measured: RAPL counter, NVML energy counter", how]
    m = paper.methods([("nb", [fp])])
    assert ("(measured: RAPL (the process's share, by CPU time), "
            "NVML (the process's share, by GPU utilization))") in paper.sentence(m)
    latex = paper.latex(m)
    assert r"component & how obtained & energy & \% of energy \\" in latex
    assert r"measured: RAPL (the process's share, by CPU time)" in latex
    assert "| component | how obtained | energy | % of energy |" in paper.markdown(m)
