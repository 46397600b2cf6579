"""Every joule counted once: windows form a tree, cells that run cells, stacked cell magics.

In a real IPython InteractiveShell with the real magics; the meters are the machine's own
(models here), so these tests assert on structure, statuses and the rule that totals add only
top-level records, never on energies.
"""

from __future__ import annotations

import time

import pytest

import nbcarbon
import nbcarbon.api
from nbcarbon.footprint import top_level, tree_order


def records() -> list:
    return nbcarbon.api.default_session().records


def tops() -> list:
    return top_level(records())


def test_track_inside_a_measured_cell_is_its_child_and_counted_once(shell) -> None:
    result = shell.run_cell(
        "%%carbon --label outer\nimport nbcarbon\nwith nbcarbon.track('inner'):\n    sum(range(10**5))")
    assert result.success
    inner, outer = records()
    assert (inner.label, outer.label) == ("inner", "outer")
    assert inner.parent_id == outer.id and outer.parent_id is None
    assert tops() == [outer]
    totals = nbcarbon.api.default_session().totals()
    assert totals.cells == 1 and totals.energy_j == pytest.approx(outer.energy_j)
    assert [(d, fp.label) for d, fp in tree_order(records())] == [(0, "outer"), (1, "inner")]


def test_auto_mode_epochs_loop_is_a_grandchild_chain(shell) -> None:
    shell.run_cell("%carbon auto on")
    result = shell.run_cell("import nbcarbon\nfor e in nbcarbon.epochs(range(3), progress=None):\n"
                            "    sum(range(10**4))")
    assert result.success
    *iterations, loop, cell = records()
    assert [fp.label for fp in iterations] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all(fp.parent_id == loop.id for fp in iterations)
    assert loop.parent_id == cell.id and cell.parent_id is None
    assert cell.execution_count == result.execution_count
    assert tops() == [cell]


def test_run_cell_inside_a_measured_cell_does_not_close_the_outer_window(shell) -> None:
    result = shell.run_cell("%%carbon --label outer\nimport time\nget_ipython().run_cell('1+1')\n"
                            "time.sleep(0.3)\nraise ValueError('late')")
    assert isinstance(result.error_in_exec, ValueError)
    (outer,) = records()  # the inner cell is not measured: no %%carbon and no auto mode
    assert outer.label == "outer" and outer.status == "error"
    assert outer.duration_s >= 0.3
    assert outer.execution_count == result.execution_count


def test_run_cell_in_auto_mode_gives_the_outer_cell_its_record(shell) -> None:
    shell.run_cell("%carbon auto on")
    result = shell.run_cell("import time\nget_ipython().run_cell('1+1')\ntime.sleep(0.3)\n1/0")
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    inner, outer = records()
    assert outer.status == "error" and outer.duration_s >= 0.3
    assert outer.execution_count == result.execution_count
    assert inner.parent_id == outer.id and inner.execution_count is None
    assert tops() == [outer]


@pytest.mark.parametrize("cell", [
    "%%capture out\n%%carbon\nx = sum(range(100))",
    "%%carbon\n%%carbon\nx = sum(range(100))",
    "%%time\n%%carbon\n%%carbon\nx = sum(range(100))",
    "%%carbon --label a\n%%time\nx = sum(range(100))",
])
def test_stacked_cell_magics_give_one_top_level_record(shell, cell: str) -> None:
    result = shell.run_cell(cell)
    assert result.success and shell.user_ns["x"] == 4950
    assert len(tops()) == 1 and len(records()) == 1


def test_stacked_magics_in_auto_mode_name_the_one_window(shell) -> None:
    shell.run_cell("%carbon auto on")
    result = shell.run_cell("%%time\n%%carbon --label named\nx = 1")
    assert result.success
    (fp,) = records()
    assert fp.label == "named" and fp.execution_count == result.execution_count


def test_timeit_measures_the_cell_once_not_every_loop(shell, capsys) -> None:
    result = shell.run_cell("%%timeit -n 200 -r 3\n%%carbon\npass")
    assert result.success
    assert len(records()) == 1
    out = capsys.readouterr().out
    assert out.count("nbcarbon ·") == 1  # one readout, not one per loop
    # timeit's own figure is not inflated by compiling the body on each call (was 1.9 ms).
    per_loop = out.split(" ± ")[0].split()[-2:]
    value, unit = float(per_loop[0]), per_loop[1]
    assert unit in ("ns", "µs", "μs", "us") or (unit == "ms" and value < 1.0)


def test_a_window_left_open_by_an_earlier_cell_does_not_adopt_later_cells(shell) -> None:
    shell.run_cell("import nbcarbon\nit = iter(nbcarbon.epochs(range(3), progress=None))\nnext(it)")
    shell.run_cell("%%carbon --label later\nx = 1")
    later = records()[-1]
    assert later.label == "later" and later.parent_id is None
    shell.run_cell("for _ in it: pass")
    labels = [fp.label for fp in top_level(records())]
    assert "later" in labels and "epoch loop" in labels


def test_a_child_that_outlives_its_parent_says_so() -> None:
    from nbcarbon.meters.base import Channel, Meter
    from nbcarbon.meters.probe import ProbeResult
    from nbcarbon.session import Session
    from nbcarbon.settings import Settings

    class Clock(Meter):
        channel = Channel("cpu", "package-0", "rapl-counter", "machine")

        def read(self) -> float:
            return time.monotonic() * 10.0

    session = Session(Settings(interval_s=1.0), {"NBCARBON_REGION": "SE"},
                      probe_fn=lambda root, nvml=None: ProbeResult([Clock()]))
    try:
        parent = session.begin("parent")
        child = session.begin("child")
        parent_fp = session.end(parent)
        time.sleep(0.05)
        child_fp = session.end(child)
        assert child_fp.parent_id == parent_fp.id
        assert any("after the window it was opened in had closed" in w for w in child_fp.warnings)
        assert session.totals().cells == 1
    finally:
        session.close()


def test_a_short_window_between_idle_samples_is_on_the_timeline() -> None:
    """The thread samples every 30 s between cells; a cell's own boundary reads draw it anyway."""
    from nbcarbon.meters.base import Channel, Meter
    from nbcarbon.meters.probe import ProbeResult
    from nbcarbon.session import Session
    from nbcarbon.settings import Settings

    class Counter(Meter):
        channel = Channel("cpu", "package-0", "rapl-counter", "machine")
        total_j = 0.0

        def read(self) -> float:
            return self.total_j

    meter = Counter()
    session = Session(Settings(interval_s=60.0), {"NBCARBON_REGION": "SE"},
                      probe_fn=lambda root, nvml=None: ProbeResult([meter]))
    try:
        session.start()
        before = len(session.sampler.timeline)
        window = session.begin("short")
        time.sleep(0.05)
        meter.total_j += 5.0
        fp = session.end(window)
        points = list(session.sampler.timeline)[before:]
        assert points and points[-1].power_w[0] == pytest.approx(fp.energy_j / fp.duration_s, rel=0.2)
    finally:
        session.close()


@pytest.mark.parametrize("counted", [False, True], ids=["before-the-hold-counts", "after"])
def test_ctrl_c_while_a_window_opens_leaves_no_window_open(shell, capsys, counted: bool) -> None:
    """A KeyboardInterrupt that lands inside ``Session.begin`` after the window is registered
    (here: as the sampler is held, before or after the hold counts) must not leave it open: it
    would be the parent of every later window and keep them out of every total, and the sampler
    at its full rate. The cell is not measured, the next one is."""
    session = nbcarbon.api.default_session()
    shell.run_cell("%%carbon --label warm\npass")
    sampler = session.sampler
    holds = sampler.holds
    real_hold = sampler.hold
    interrupts = []

    def hold() -> None:
        if counted:
            real_hold()
        if not interrupts:
            interrupts.append(1)
            raise KeyboardInterrupt
        if not counted:
            real_hold()

    sampler.hold = hold
    try:
        result = shell.run_cell("%%carbon --label interrupted\nx = 1")
    finally:
        del sampler.hold
    assert interrupts and result.success  # the cell itself ran
    assert "not measured (interrupted while starting" in capsys.readouterr().err
    assert session.open_ids() == frozenset() and sampler.holds == holds
    shell.run_cell("%%carbon --label after\nimport nbcarbon\nwith nbcarbon.track('inner'):\n    pass")
    inner, after = records()[-2:]
    assert inner.parent_id == after.id and after.parent_id is None
    assert [fp.label for fp in tops()] == ["warm", "after"]
    assert session.totals().cells == 2


def test_a_nested_blocks_compact_readout_names_it_and_says_it_is_in_its_parent(shell, capsys) -> None:
    """Two ``track()`` blocks in one cell each show a compact line: named by their labels, and
    saying that the cell's readout already includes them (so nobody adds them again)."""
    from nbcarbon import readout

    shell.run_cell("%%carbon --label outer\nimport nbcarbon\nwith nbcarbon.track('load'):\n    pass\n"
                   "with nbcarbon.track('fit'):\n    pass")
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("nbcarbon")]
    assert lines[0].startswith("nbcarbon · load: ") and lines[1].startswith("nbcarbon · fit: ")
    assert all(" · nested: in its parent's total · SE · " in line for line in lines[:2])
    load, fit, outer = records()
    assert readout.one_line(outer).startswith("nbcarbon · outer: ")
    assert "nested" not in readout.one_line(outer)


def test_a_cell_that_did_not_finish_has_its_readout_ruled_in_the_warning_colour(shell) -> None:
    from nbcarbon import readout

    shell.run_cell("%%carbon --label ok\nx = 1")
    shell.run_cell("%%carbon --label bad\n1 / 0")
    ok, bad = records()
    assert bad.status == "error"
    for compact in (False, True):
        assert "#3a7d44" in readout.mimebundle(ok, compact)[0]["text/html"][:300]
        html = readout.mimebundle(bad, compact)[0]["text/html"]
        assert "border-left:3px solid #b35900" in html and "#3a7d44" not in html
        assert html == readout.html(bad, compact)


def test_a_nested_window_priced_apart_from_its_parent_says_where_its_energy_counts(shell) -> None:
    """``track(region='PL')`` inside a cell priced for SE shows its PL price on its own line,
    but totals count its joules once, in the cell, at the cell's price: the record says so. A
    nested window priced as its parent is, says nothing."""
    shell.run_cell("%%carbon --label P\nimport nbcarbon\n"
                   "with nbcarbon.track('pl', region='PL'):\n    pass\n"
                   "with nbcarbon.track('same', region='SE'):\n    pass\n"
                   "with nbcarbon.track('plain'):\n    pass")
    pl, same, plain, parent = records()
    assert pl.region.code == "PL" and parent.region.code == "SE"
    assert pl.warnings == ("priced for PL · PUE 1 as asked; its energy is counted once, in the "
                           "total of the window it is in, at that window's price",)
    assert same.warnings == () and plain.warnings == () and parent.warnings == ()
    assert [fp.label for fp in tops()] == ["P"]
