"""``%carbon plot cells|timeline`` in a real kernel with the inline backend, rendered to PNG."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from tests.conftest import kernel_env, run_cells

BUSY = "%%carbon --label {label}\ntotal = 0\nfor i in range({n}):\n    total += i"
CHECK = """import io, json
fig = _
buf = io.BytesIO()
fig.savefig(buf, format="png")
ax = fig.axes[0]
print(json.dumps({"png": len(buf.getvalue()), "x": ax.get_xlabel(), "y": ax.get_ylabel(),
                  "title": ax.get_title(), "legend": [t.get_text() for t in ax.get_legend().get_texts()],
                  "ticks": [t.get_text() for t in ax.get_xticklabels()],
                  "texts": [t.get_text() for t in ax.texts], "spans": len(ax.patches)}))"""


def _pngs(cell) -> list[bytes]:
    return [base64.b64decode(o["data"]["image/png"]) for o in cell.outputs
            if "image/png" in o.get("data", {})]


def test_plots_in_a_kernel(tmp_path: Path) -> None:
    env = kernel_env(tmp_path, NBCARBON_INTERVAL="0.2")
    nb = run_cells([
        "%load_ext nbcarbon\nimport time; time.sleep(0.6)  # the timeline starts at the 2nd sample",
        BUSY.format(label="small", n=300_000),
        "import time; time.sleep(0.5)",
        BUSY.format(label="large", n=2_000_000),
        "%carbon plot cells", CHECK,
        "%carbon plot timeline", CHECK,
        "%unload_ext nbcarbon",
    ], env)
    for index in (4, 6):  # the figure is shown once (Out), not a second time by the backend
        (png,) = _pngs(nb.cells[index])
        assert png.startswith(b"\x89PNG") and len(png) > 5_000
        assert nb.cells[index].outputs[0]["output_type"] == "execute_result"

    cells = json.loads(nb.cells[5].outputs[0]["text"])
    assert cells["png"] > 5_000
    assert cells["x"] == "cell" and cells["y"].startswith("energy (J")
    assert cells["ticks"] == ["small", "large"]
    assert any(t.startswith("cpu (estimated: CPU-time model") for t in cells["legend"])
    assert all(t.endswith("g") for t in cells["texts"]) and len(cells["texts"]) == 2  # CO2e labels
    assert "SE" in cells["title"]

    timeline = json.loads(nb.cells[7].outputs[0]["text"])
    assert timeline["png"] > 5_000
    assert timeline["x"] == "time since first sample (s)" and timeline["y"] == "power (W)"
    assert any(t.startswith("cpu (") for t in timeline["legend"])
    assert {"small", "large"} <= set(timeline["texts"])  # both cell boundaries are marked
    assert timeline["spans"] >= 2


def test_empty_session_plots_say_so() -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    from nbcarbon.plots import cells_figure, timeline_figure

    for fig in (cells_figure([]), timeline_figure([], [])):
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        assert buf.getvalue().startswith(b"\x89PNG")
        assert fig.axes[0].texts and "no " in fig.axes[0].texts[0].get_text()


def test_timeline_draws_only_where_samples_are_and_each_cell_from_its_boundaries() -> None:
    """A cell that began before the first sample is not shaded before it (no axis at -1 s), the
    first point (whose interval began earlier) draws nothing, and each cell's mean power from its
    record spans exactly the cell, not the sampling interval that straddles its end."""
    from datetime import datetime, timezone

    import matplotlib

    matplotlib.use("Agg")
    from nbcarbon.footprint import Component, Footprint, PricedRegion, co2e_g
    from nbcarbon.meters.base import Channel
    from nbcarbon.plots import timeline_figure
    from nbcarbon.sampler import TimelinePoint

    se = PricedRegion("SE", "Sweden", 35.82, 2024, "Ember", "lifecycle", "command")
    wall0 = 1_800_000_000.0  # the wall-clock time of monotonic 100.0 below

    def cell(label: str, start_mono: float, duration_s: float, energy_j: float) -> Footprint:
        started = datetime.fromtimestamp(wall0 + start_mono - 100.0, timezone.utc).isoformat()
        comps = (Component("cpu", "process", "cpu-time-model", energy_j, energy_j / duration_s),)
        return Footprint(label * 8, None, label, 1, started, duration_s, "ok", comps, energy_j, 1.0,
                         se, co2e_g(energy_j, 1.0, se.g_per_kwh), "process")

    points = [TimelinePoint(100.0 + t, (w,)) for t, w in
              ((0.0, 9.0), (1.0, 10.0), (2.0, 10.0), (3.0, 4.0), (4.0, 1.0))]
    records = [cell("a", 99.0, 2.5, 25.0), cell("b", 3.5, 0.2, 0.5)]  # a began 1 s before the timeline
    fig = timeline_figure(points, [Channel("cpu", "process", "cpu-time-model", "process")], records,
                          wall_minus_monotonic_s=wall0 - 100.0)
    ax = fig.axes[0]
    assert ax.get_xlim() == (0.0, 4.0)
    spans = [p.get_x() for p in ax.patches]
    assert spans and min(spans) >= 0.0
    (trace, ticks, mean_a) = ax.lines[:3]
    ys = list(trace.get_ydata())
    assert ys[0] != ys[0] and ys[1:] == [10.0, 10.0, 4.0, 1.0]  # NaN: the first interval is unknown
    assert list(ticks.get_xdata()) == [1.0, 2.0, 3.0, 4.0]  # where the reads happened
    assert list(mean_a.get_xdata()) == [0.0, 1.5] and list(mean_a.get_ydata()) == [10.0, 10.0]
    assert "cell mean power (its record)" in [t.get_text() for t in ax.get_legend().get_texts()]
