"""The record: pure arithmetic, re-pricing and schema validation (table-driven)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nbcarbon.errors import RecordError
from nbcarbon.footprint import Component, Footprint, PricedRegion, co2e_g, measure
from nbcarbon.meters.base import Channel
from nbcarbon.sampler import Reading

SE = PricedRegion("SE", "Sweden", 35.82, 2024, "Ember", "lifecycle", "command")
PL = PricedRegion("PL", "Poland", 662.0, 2024, "Ember", "lifecycle", "command")


def make(energy_j: float = 36.0, pue: float = 1.0, region: PricedRegion = SE) -> Footprint:
    comps = (Component("cpu", "package-0", "rapl-counter", energy_j, energy_j / 2),)
    return Footprint("a" * 32, None, "x", 3, "2026-01-01T00:00:00+00:00", 2.0, "ok", comps,
                     energy_j, pue, region, co2e_g(energy_j, pue, region.g_per_kwh), "machine")


@pytest.mark.parametrize(("energy_j", "pue", "g_per_kwh", "expected_g"), [
    (3.6e6, 1.0, 100.0, 100.0),
    (3.6e6, 1.5, 100.0, 150.0),
    (1.8e6, 1.2, 35.82, 0.5 * 1.2 * 35.82),
    (0.0, 2.0, 500.0, 0.0),
])
def test_co2e(energy_j, pue, g_per_kwh, expected_g) -> None:
    assert co2e_g(energy_j, pue, g_per_kwh) == pytest.approx(expected_g)


def test_repricing_keeps_energy_and_scales_by_intensity() -> None:
    fp = make()
    other = fp.repriced(PL, 1.4)
    assert other.energy_j == fp.energy_j and other.components == fp.components
    assert other.co2e_g / fp.co2e_g == pytest.approx(662.0 / 35.82 * 1.4)


def test_round_trip_through_dict() -> None:
    fp = make()
    assert Footprint.from_dict(fp.to_dict()) == fp


@pytest.mark.parametrize(("change", "message"), [
    ({"schema": 2}, "newer than this nbcarbon"),
    ({"schema": "1"}, "integer 'schema'"),
    ({"kind": "summary"}, "kind must be 'cell'"),
    ({"status": "weird"}, "status must be one of"),
    ({"energy_j": -1}, "finite number >= 0"),
    ({"energy_j": float("nan")}, "finite number >= 0"),
    ({"energy_j": "12"}, "must be"),
    ({"components": [{"component": "tpu"}]}, "component"),
    ({"region": None}, "region"),
    ({"warnings": [1]}, "warnings"),
])
def test_invalid_records_say_what_is_wrong(change, message) -> None:
    d = make().to_dict() | change
    with pytest.raises(RecordError, match=message):
        Footprint.from_dict(d)


def test_missing_field_is_named() -> None:
    d = make().to_dict()
    del d["duration_s"]
    with pytest.raises(RecordError, match="duration_s"):
        Footprint.from_dict(d)


def test_extra_fields_are_ignored() -> None:
    d = make().to_dict() | {"from_the_future": 1}
    assert Footprint.from_dict(d) == make()


@given(st.dictionaries(st.text(max_size=12), st.one_of(
    st.none(), st.integers(), st.floats(), st.text(max_size=8), st.lists(st.integers(), max_size=3))))
def test_from_dict_never_fails_otherwise(d) -> None:
    try:
        Footprint.from_dict(d)
    except RecordError:
        pass


CPU = Channel("cpu", "package-0", "rapl-counter", "machine")
MEM = Channel("memory", "process tree", "memory-model", "process")


@pytest.mark.parametrize(("begin", "end", "energies", "n_warnings"), [
    ([Reading(10.0, 0.0), Reading(1.0, 0.0)], [Reading(30.0, 2.0), Reading(2.0, 2.0)], [20.0, 1.0], 0),
    # end read failed: energy up to the last good reading, with a warning
    ([Reading(10.0, 0.0), Reading(1.0, 0.0)], [Reading(15.0, 1.0, "lost"), Reading(2.0, 2.0)],
     [5.0, 1.0], 1),
    # never read: left out, not counted as zero
    ([Reading(None, 0.0, "denied"), Reading(1.0, 0.0)], [Reading(None, 2.0, "denied"),
                                                         Reading(2.0, 2.0)], [1.0], 1),
])
def test_measure(begin, end, energies, n_warnings) -> None:
    out = measure([CPU, MEM], begin, end, 2.0)
    assert [c.energy_j for c in out.components] == energies
    assert len(out.warnings) == n_warnings
    assert all(math.isclose(c.mean_power_w, c.energy_j / 2.0) for c in out.components)


def test_attribution_is_machine_when_a_counter_is_machine_wide() -> None:
    r = [Reading(0.0, 0.0), Reading(0.0, 0.0)]
    assert measure([CPU, MEM], r, r, 1.0).attribution == "machine"
    assert measure([MEM], r[:1], r[:1], 1.0).attribution == "process"


def test_iteration_statuses_with_unicode_digits_are_a_record_error() -> None:
    """"²".isdigit() is true but int("²") fails: a hand-edited file must get the one-line error."""
    from nbcarbon.errors import RecordError
    from nbcarbon.footprint import Iterations

    with pytest.raises(RecordError, match="statuses"):
        Iterations.from_dict({"duration_s": [1.0], "energy_j": [2.0], "statuses": {"²": "error"}})


@pytest.mark.parametrize(("change", "says"), [
    ({"pue": 0.0}, "PUE 0 is outside 1 to 3"),
    ({"pue": 10.0}, "PUE 10 is outside 1 to 3"),
    ({"energy_j": 500.0}, "energy (500 J) is not the sum of its components (36 J)"),
])
def test_a_notebook_record_whose_numbers_cannot_be_nbcarbons_is_skipped(change, says) -> None:
    from nbcarbon.notebook import collect

    good = make().to_dict()
    bad = {**make().to_dict(), "id": "f" * 32, **change}
    nb = {"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "display_data", "data": {}, "metadata": {"nbcarbon": r}}]} for r in (good, bad)]}
    found = collect(nb, "nb.ipynb")
    assert [fp.id for fp in found.records] == [good["id"]]
    assert len(found.problems) == 1 and says in found.problems[0] and "cell 1" in found.problems[0]


def test_a_cell_whose_outputs_are_not_a_list_is_said() -> None:
    from nbcarbon.notebook import collect

    nb = {"cells": [{"cell_type": "code", "outputs": {"0": {"metadata": {"nbcarbon": make().to_dict()}}}}]}
    found = collect(nb, "nb.ipynb")
    assert found.records == [] and found.problems == [
        "nb.ipynb: cell 0: its 'outputs' is not a list (a damaged notebook); any record there is not read"]


def test_a_channel_unread_when_the_window_opened_is_not_measured_nor_charged_the_outage() -> None:
    # Before: the begin read failed, the last good total (seconds or hours older) stood in, and
    # the window was charged everything since: 120 J for a 10 J cell after a 6 s outage.
    ch = Channel("cpu", "package-0", "rapl-counter", "machine")
    begin = [Reading(100.0, 4.0, "EIO")]  # last good total, read at t=4 s; the window opens at t=10
    end = [Reading(220.0, 10.5)]
    out = measure([ch], begin, end, 0.5)
    assert out.components == []
    assert out.warnings == ["cpu package-0 (rapl-counter) not measured: it could not be read when "
                            "the window opened (EIO), and its last good reading is older than the window"]


def test_a_channel_with_no_good_read_in_the_window_is_not_a_measured_zero() -> None:
    ch = Channel("cpu", "package-0", "rapl-counter", "machine")
    out = measure([ch], [Reading(100.0, 10.0)], [Reading(100.0, 10.0, "EIO")], 1.0)
    assert out.components == []
    assert out.warnings == ["cpu package-0 (rapl-counter) not measured: no reading succeeded after "
                            "the window opened (EIO)"]
