"""``nbcarbon report --format latex|markdown|svg``: the methods paragraph, table and badge of a saved
notebook, with totals that agree with ``--format json`` (top-level records only)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from nbcarbon import cli, intensity
from nbcarbon.footprint import Component, Footprint
from nbcarbon.paper import energy_words, methods, sentence
from nbcarbon.session import priced


def record(i: int, components: tuple[Component, ...], parent: str | None = None,
           label: str | None = None) -> Footprint:
    return Footprint(
        id=f"{i:032x}", cell_id=None, label=label, execution_count=i,
        started_at="2026-01-01T00:00:00.000+00:00", duration_s=2.0, status="ok",
        components=components, energy_j=sum(c.energy_j for c in components), pue=1.2,
        region=priced(intensity.lookup("US"), "test"), co2e_g=0.0, attribution="machine",
        nbcarbon_version="9.9", parent_id=parent,
    ).repriced()


CELL = record(1, (Component("cpu", "package-0", "rapl-counter", 5.4e6, 100.0),
                  Component("gpu", "gpu0", "nvml-counter", 3.24e6, 300.0),
                  Component("memory", "process tree", "memory-model", 3.6e4, 1.0)))
NESTED = record(2, (Component("cpu", "package-0", "rapl-counter", 1e6, 100.0),), parent=CELL.id)


def notebook(path: Path, records: list[Footprint]) -> Path:
    outputs = [{"output_type": "display_data", "data": {"text/plain": "x"},
                "metadata": {"nbcarbon": fp.to_dict()}} for fp in records]
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
          "cells": [{"cell_type": "code", "metadata": {}, "source": "x", "execution_count": 1,
                     "outputs": outputs}]}
    path.write_text(json.dumps(nb))
    return path


def run(capsys, *args: str) -> str:
    assert cli.main(["report", *args]) == 0
    return capsys.readouterr().out


def test_the_sentence_states_energy_methods_co2e_and_grid() -> None:
    m = methods([("a.ipynb", [NESTED, CELL])])
    assert m.cells == 1 and m.energy_j == CELL.energy_j  # the nested window is in its cell
    text = sentence(m)
    g = intensity.lookup("US").g_per_kwh
    assert text.startswith(f"Running the notebook used {energy_words(CELL.energy_j)} "
                           "(measured: RAPL, NVML; estimated: memory model), about ")
    assert f"at {g:.4g} g/kWh (US, " in text and "PUE 1.2" in text
    assert energy_words(8.676e6) == "2.41 kWh" and energy_words(36.0) == "10 mWh"


def test_latex_markdown_and_svg_agree_with_json(tmp_path: Path, capsys) -> None:
    path = notebook(tmp_path / "paper.ipynb", [NESTED, CELL])
    total = json.loads(run(capsys, str(path), "--format", "json"))["total"]
    assert total["energy_j"] == pytest.approx(CELL.energy_j)
    words = energy_words(total["energy_j"])
    latex = run(capsys, str(path), "--format", "latex")
    assert words in latex and r"\begin{tabular}" in latex and "nbcarbon 9.9" in latex
    assert "rapl-counter" not in latex and "measured: RAPL" in latex
    markdown = run(capsys, str(path), "--format", "markdown")
    assert "**Methods.** Running the notebook used" in markdown and "| component |" in markdown
    svg = run(capsys, str(path), "--format", "svg")
    root = ET.fromstring(svg)
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts[0] == "CO2e" and words in texts[1] and "<script" not in svg


def test_latex_escapes_what_tex_would_read(tmp_path: Path, capsys) -> None:
    odd = replace(CELL, nbcarbon_version="1_0 & 50% $x$ #1")
    latex = run(capsys, str(notebook(tmp_path / "odd.ipynb", [odd])), "--format", "latex")
    assert r"1\_0 \& 50\% \$x\$ \#1" in latex


def test_latex_with_compare_is_a_usage_error(tmp_path: Path, capsys) -> None:
    path = notebook(tmp_path / "c.ipynb", [CELL])
    assert cli.main(["report", str(path), "--format", "svg", "--compare", "SE"]) == 2
    assert "not available with --compare" in capsys.readouterr().err
