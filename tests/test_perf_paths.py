"""The mechanisms behind the cheap paths: kept counter files, the sampler's two rates, the window's
fast path, the memory model's kept ``statm``, and re-pricing's direct messages.

Functional tests only: what each mechanism must still get right (stale files, wake-ups, the same
record as the slow path). How fast they are is measured by ``benchmarks/``, never asserted here.
"""

from __future__ import annotations

import os
import pickle
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from nbcarbon.errors import MeterError
from nbcarbon.footprint import SCHEMA, Component, Footprint, measure
from nbcarbon.meters.base import Anomalies, Channel, Meter
from nbcarbon.meters.memory import MemoryModelMeter, Statm
from nbcarbon.meters.probe import ProbeResult
from nbcarbon.meters.rapl import KeptFile, RaplMeter
from nbcarbon.sampler import Reading, Sampler
from nbcarbon.session import Session, _clean, new_id, utc_iso
from nbcarbon.settings import Settings
from tests.fakes.powercap import FakePowercap
from tests.fakes.procstat import quiet_stat


def wait_for(condition: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.01)


# -- kept counter files ------------------------------------------------------------------------
def test_kept_file_follows_a_file_replaced_by_rename(tmp_path: Path) -> None:
    path = tmp_path / "energy_uj"
    path.write_text("100\n")
    kept = KeptFile(path)
    assert kept.read_int() == 100
    tmp = tmp_path / "tmp"
    tmp.write_text("250\n")
    os.replace(tmp, path)  # what the fakes do on every advance: the kept file is stale now
    assert kept.read_int() == 250
    assert kept.reopened == 1
    assert kept.read_int() == 250 and kept.reopened == 1  # same value, same file: no reopen


def test_kept_file_reads_in_place_changes_without_reopening(tmp_path: Path) -> None:
    path = tmp_path / "energy_uj"
    path.write_text("100\n")
    kept = KeptFile(path)
    assert kept.read_int() == 100
    for value in (101, 5000, 7):  # sysfs changes the value in place
        with open(path, "r+") as f:
            f.write(f"{value}\n")
            f.truncate()
        assert kept.read_int() == value
    assert kept.reopened == 0


def test_kept_file_says_when_the_file_vanished_or_holds_garbage(tmp_path: Path) -> None:
    path = tmp_path / "energy_uj"
    path.write_text("100\n")
    kept = KeptFile(path)
    kept.read_int()
    path.unlink()
    with pytest.raises(FileNotFoundError):
        kept.read_int()
    path.write_text("junk\n")
    with pytest.raises(ValueError):
        kept.read_int()
    path.write_text("300\n")
    assert kept.read_int() == 300


def test_background_check_drops_a_kept_file_replaced_behind_a_hard_link(tmp_path: Path) -> None:
    """A replaced file that keeps a name elsewhere (st_nlink > 0) is caught by the upkeep."""
    path = tmp_path / "energy_uj"
    path.write_text("100\n")
    kept = KeptFile(path)
    kept.read_int()
    os.link(path, tmp_path / "other-name")
    tmp = tmp_path / "tmp"
    tmp.write_text("100\n")  # the same value in a new file: the read cannot tell
    os.replace(tmp, path)
    kept.check()
    path.write_text("400\n")  # in place in the new file
    assert kept.read_int() == 400


def test_rapl_meter_on_kept_files_counts_what_the_fake_advances(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path / "powercap")
    fake.add_package(0, 20.0, core=False, power_limit_w=60.0)
    meter = RaplMeter(fake.root / "intel-rapl:0", Channel("cpu", "package-0", "rapl-counter",
                                                          "machine"))
    e0 = meter.read()
    fake.run(0.2)
    assert meter.read() - e0 == pytest.approx(4.0, abs=1e-5)
    assert meter.read() - e0 == pytest.approx(4.0, abs=1e-5)
    meter.background()  # the inode check of the upkeep: nothing to do, nothing lost
    fake.run(0.1)
    assert meter.read() - e0 == pytest.approx(6.0, abs=1e-5)
    meter.close()
    with pytest.raises(MeterError, match="closed"):
        meter.read()


# -- the sampler's two rates -------------------------------------------------------------------
class Counting(Meter):
    def __init__(self) -> None:
        self.channel = Channel("cpu", "package-0", "rapl-counter", "machine")
        self.reads = 0
        self.upkeeps = 0

    def read(self) -> float:
        self.reads += 1
        return float(self.reads)

    def background(self) -> None:
        self.upkeeps += 1


def test_idle_sampler_sleeps_until_held_then_samples_at_its_interval() -> None:
    meter = Counting()
    s = Sampler([meter], interval_s=0.02, idle_interval_s=3600.0, idle_after_s=0.2)
    s.start()
    try:
        time.sleep(0.3)
        assert s.samples == {"full": 0, "idle": 0}  # nothing holds it: it sleeps for an hour
        s.hold()
        wait_for(lambda: s.samples["full"] >= 5)  # woken at once, then every 20 ms
        s.release()
        time.sleep(0.6)  # the tail (0.2 s) ends; the thread goes back to sleep
        full = s.samples["full"]
        time.sleep(0.3)
        assert s.samples["full"] == full and s.samples["idle"] == 0
        assert s.holds == 0
    finally:
        s.stop()
    assert not s.running


def test_idle_period_never_lets_a_counter_wrap_unseen() -> None:
    class Wrapping(Counting):
        def max_poll_interval_s(self) -> float:
            return 4.0

    s = Sampler([Wrapping()], interval_s=1.0, idle_interval_s=30.0)
    assert s.period_s() == 1.0 and s.idle_period_s() == 4.0
    assert Sampler([Counting()], interval_s=1.0).idle_period_s() == 1.0  # idle mode off
    assert Sampler([Counting()], interval_s=1.0, idle_interval_s=30.0).idle_period_s() == 30.0


def test_idle_sampler_does_its_upkeep_at_each_idle_wake() -> None:
    meter = Counting()
    s = Sampler([meter], interval_s=0.01, idle_interval_s=0.05, idle_after_s=0.0)
    s.start()
    try:
        wait_for(lambda: s.samples["idle"] >= 3 and meter.upkeeps >= 3)
    finally:
        s.stop()


def probe_with(*meters: Meter) -> Any:
    return lambda root, nvml=None: ProbeResult(list(meters))


def counting_session(tmp_path: Path, meter: Meter) -> Session:
    settings = Settings(interval_s=0.05, powercap_root=tmp_path, ledger=None,
                        proc_stat=quiet_stat(tmp_path.parent))
    return Session(settings, {"NBCARBON_REGION": "SE"}, probe_fn=probe_with(meter))


def test_windows_and_dashboards_hold_the_sampler(tmp_path: Path) -> None:
    s = counting_session(tmp_path, Counting())
    sampler = s.start()
    assert sampler.holds == 0 and sampler.idle_interval_s is not None
    outer = s.begin()
    inner = s.begin()
    assert sampler.holds == 2
    s.end(inner)
    s.end(inner)  # a second end of the same window releases nothing more
    assert sampler.holds == 1
    release = s.keep_awake()
    assert sampler.holds == 2
    s.abandon(outer)
    assert sampler.holds == 1
    release()
    release()
    assert sampler.holds == 0
    s.close()


def test_a_new_sampler_inherits_the_holds_of_shown_dashboards(tmp_path: Path) -> None:
    s = counting_session(tmp_path, Counting())
    s.start()
    release = s.keep_awake()
    s.close()
    assert s.start().holds == 1  # a fresh sampler (as after a re-probe) is held at once
    release()
    assert s.sampler is not None and s.sampler.holds == 0
    s.close()


# -- the window's fast path --------------------------------------------------------------------
CPU = Channel("cpu", "package-0", "rapl-counter", "machine")
MEM = Channel("memory", "process tree", "memory-model", "process")


def test_clean_windows_get_the_same_components_as_measure() -> None:
    tally = Anomalies()
    begin = (Reading(10.0, 1.0, None, tally), Reading(2.0, 1.0))
    end = (Reading(25.0, 3.0, None, tally), Reading(1.5, 3.0))  # a model never goes back, but
    fast, energy_j = _clean([CPU, MEM], begin, end, 2.0)
    slow = measure([CPU, MEM], begin, end, 2.0, (0, 0))
    assert fast is not None
    assert (fast.components, fast.warnings, fast.attribution) == \
        (slow.components, slow.warnings, slow.attribution)
    assert energy_j == sum(c.energy_j for c in slow.components)
    assert _clean([MEM], begin[1:], end[1:], 0.0)[0].components[0].mean_power_w == 0.0


@pytest.mark.parametrize("case", ["error", "never read", "refused", "held", "caveat"])
def test_anything_to_say_goes_through_measure(case: str) -> None:
    tally = Anomalies()
    begin, end, channel = Reading(10.0, 1.0, None, tally), Reading(20.0, 2.0, None, tally), CPU
    if case == "error":
        end = Reading(15.0, 1.5, "gone", tally)
    elif case == "never read":
        begin = Reading(None, 1.0, "denied", tally)
    elif case == "refused":
        end = Reading(20.0, 2.0, None, Anomalies(jumps=1))
    elif case == "held":
        end = Reading(20.0, 1.5, None, Anomalies(held=True))
    else:
        channel = Channel("cpu", "process tree", "cpu-time-model", "process", caveat="misses x")
    assert _clean([channel], (begin,), (end,), 1.0) == (None, 0.0)


def test_session_records_are_priced_and_identified_as_before(tmp_path: Path) -> None:
    from dataclasses import replace

    s = counting_session(tmp_path, Counting())
    w = s.begin(label="x")
    same = replace(w)  # a window built the quick way is an ordinary dataclass instance
    assert same == w and same is not w and repr(same) == repr(w)
    with pytest.raises(AttributeError):
        w.label = "y"  # type: ignore[misc]
    fp = s.end(w)
    assert uuid.UUID(hex=fp.id).version == 4
    assert fp == fp.repriced()  # co2e computed in place, as repriced() would
    assert datetime.fromisoformat(fp.started_at).tzinfo is not None
    # Built by the maker, it is the record Footprint(...) builds from the same fields: equal,
    # hashed, shown and pickled alike, with the defaults a window's record always had.
    from dataclasses import fields

    rebuilt = Footprint(**{f.name: getattr(fp, f.name) for f in fields(fp)})
    assert rebuilt == fp and hash(rebuilt) == hash(fp) and repr(rebuilt) == repr(fp)
    assert list(vars(rebuilt)) == list(vars(fp))
    assert (fp.kind, fp.schema, fp.parent_id, fp.iterations) == ("cell", SCHEMA, None, None)
    assert pickle.loads(pickle.dumps(fp)) == fp
    (component,) = fp.components
    assert component == Component(component.component, component.device, component.method,
                                  component.energy_j, component.mean_power_w, component.share)
    with pytest.raises(AttributeError):
        fp.energy_j = 0.0  # type: ignore[misc]
    s.close()


def test_timeline_points_are_named_tuples_with_the_fields_plots_read() -> None:
    from nbcarbon.sampler import TimelinePoint

    point = TimelinePoint(1.0, (2.0, None))
    assert (point.t_s, point.power_w) == (1.0, (2.0, None))
    with pytest.raises(AttributeError):
        point.t_s = 2.0  # type: ignore[misc]
    sampler = Sampler([Counting()], interval_s=60.0)
    first, second = sampler.sample(), sampler.sample()
    assert first.power_w == (None,) and second.power_w[0] is not None
    assert list(sampler.timeline) == [second]  # a point with no power is not drawn
    assert Sampler([], interval_s=60.0).sample().power_w == ()  # no meters: the clock's time


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_child_never_takes_the_ids_its_parent_takes_next() -> None:
    new_id()  # the pool holds ids now: a child that kept them would repeat the parent's
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        try:
            os.write(write, "".join(new_id() for _ in range(3)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        child = pipe.read().decode()
    os.waitpid(pid, 0)
    parent = "".join(new_id() for _ in range(3))
    assert len(child) == len(parent) == 96
    assert not {child[i:i + 32] for i in range(0, 96, 32)} & {parent[i:i + 32] for i in range(0, 96, 32)}


def test_ids_are_version_4_uuids_and_start_times_match_datetime() -> None:
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    for text in list(ids)[:100]:
        u = uuid.UUID(hex=text)
        assert u.version == 4 and u.variant == uuid.RFC_4122 and u.hex == text
    for t in (0.0, 1.9995, 1_700_000_000.0004999, 1_800_000_000.9999996, time.time()):
        assert utc_iso(t) == datetime.fromtimestamp(t, timezone.utc).isoformat(
            timespec="milliseconds")


# -- the memory model's kept statm -------------------------------------------------------------
def test_statm_reads_this_process_as_psutil_does() -> None:
    import psutil

    statm = Statm.open(os.getpid())
    assert statm is not None
    rss, expected = statm.rss_bytes(), psutil.Process().memory_info().rss
    assert abs(rss - expected) < 64 * 2**20  # the same figure, read a moment apart
    statm.close()
    assert Statm.open(2**22 + 12345) is None  # no such process


def test_memory_model_falls_back_to_psutil_when_statm_fails() -> None:
    meter = MemoryModelMeter(os.getpid())
    assert meter.read() >= 0
    assert meter._statm is not None
    meter._statm.close()  # its reads fail from now on: the meter asks psutil instead
    meter.read()
    assert meter._statm is None and meter.mem_bytes > 0
    meter.close()


# -- re-pricing's direct messages -------------------------------------------------------------
class FakeSession:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    def send(self, socket: Any, msg_type: str, content: dict, parent: Any = None,
             ident: Any = None) -> None:
        self.sent.append((socket, msg_type, content, parent, ident))


class FakeStream:
    def __init__(self, pending: bool) -> None:
        self._flush_pending = pending
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        self._flush_pending = False


class FakePublisher:
    def __init__(self) -> None:
        self.session = FakeSession()
        self.pub_socket = object()
        self.parent_header = {"msg_id": "cell"}
        self.topic = b"display_data"
        self._hooks: list[Any] = []


def _in_fake_kernel(monkeypatch: pytest.MonkeyPatch) -> FakePublisher:
    import IPython

    pub = FakePublisher()
    shell = type("Shell", (), {"display_pub": pub, "kernel": object()})()
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    return pub


def test_readouts_and_updates_go_straight_to_the_kernels_socket(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from nbcarbon import shown

    pub = _in_fake_kernel(monkeypatch)
    out, err = FakeStream(pending=False), FakeStream(pending=True)
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    s = counting_session(tmp_path, Counting())
    fp = s.end(s.begin())
    other = s.end(s.begin())
    registry = shown.Shown(s)
    render = lambda r: ({"text/plain": f"{r.co2e_g}"}, {"x": r.region.code})  # noqa: E731
    assert registry.show(fp, render) == fp.id
    # only the stream holding unsent output is flushed first (its text comes before the readout)
    assert (out.flushes, err.flushes) == (0, 1)
    s.set_region("PL")
    assert registry.last_sent == 1  # the other record is not shown: nothing to update
    sent = [(m, c["transient"], c["metadata"]) for _, m, c, _, _ in pub.session.sent]
    assert sent == [("display_data", {"display_id": fp.id}, {"x": "SE"}),
                    ("update_display_data", {"display_id": fp.id}, {"x": "PL"})]
    assert {(p["msg_id"], i) for _, _, _, p, i in pub.session.sent} == {("cell", b"display_data")}
    assert other.id not in registry
    # a publish hook (something capturing displays) sees every message: IPython's path then
    pub._hooks.append(lambda msg: msg)
    calls: list[Any] = []
    monkeypatch.setattr("IPython.display.update_display",
                        lambda data, **kw: calls.append(kw["display_id"]))
    s.set_region("FR")
    assert len(pub.session.sent) == 2 and calls == [fp.id]
    registry.close()
    s.close()


def test_other_outputs_are_updated_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbcarbon import shown

    pub = _in_fake_kernel(monkeypatch)
    monkeypatch.setattr("sys.stdout", FakeStream(pending=False))
    monkeypatch.setattr("sys.stderr", FakeStream(pending=False))
    shown.update_output({"text/plain": "summary"}, {"nbcarbon": {"kind": "summary"}}, "s1")
    ((_, msg_type, content, _, _),) = pub.session.sent
    assert msg_type == "update_display_data" and content["transient"] == {"display_id": "s1"}


def test_ipythons_functions_outside_a_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython

    from nbcarbon import shown

    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    assert shown._Publisher.find() is None
    shell = type("Shell", (), {"display_pub": object()})()  # a terminal's publisher
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    assert shown._Publisher.find() is None


def test_the_pacer_lets_bursts_through_and_spreads_long_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbcarbon import shown

    clock = [1000.0]
    slept: list[float] = []

    def sleep(dt: float) -> None:
        slept.append(dt)
        clock[0] += dt

    monkeypatch.setattr(shown.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(shown.time, "sleep", sleep)
    monkeypatch.setattr(shown, "MAX_MESSAGES", 10)
    pacer = shown._Pacer()
    for _ in range(10):
        pacer.wait()
    assert slept == []  # a burst up to the limit goes out at once
    pacer.wait()
    assert slept == [pytest.approx(shown.WINDOW_S)]  # the 11th waits for the 1st to leave the window
    clock[0] += shown.WINDOW_S
    for _ in range(10):
        pacer.wait()
    assert len(slept) == 1


# -- the full readout's templates ----------------------------------------------------------------

def _footprints_of_every_shape() -> list[Footprint]:
    """Records crossing what the readout's template keeps (components, shares, region line,
    warnings) with what it fills in (title, numbers), text that is markup or format syntax
    included."""
    from itertools import product

    from nbcarbon import intensity
    from nbcarbon.footprint import Share
    from nbcarbon.session import priced

    regions = [priced(intensity.lookup(code), "magic") for code in ("SE", "PL", "DE")]
    parts = [
        Component("cpu", "package-0", "rapl-counter", 12.5, 25.0),
        Component("gpu", "GPU 0 <A100> {x}", "nvml-power", 1e-9, 0.001,
                  Share("gpu-utilization", 0.25, 4e-9)),
        Component("memory", "process tree", "memory-model", 0.0, 0.0),
        Component("dram", "{0}", "rapl-counter", float("inf"), 1e12,
                  Share("cpu-time", 1.0, float("inf"))),
    ]
    other_package = Component("cpu", "package-1", "rapl-counter", 2.0, 4.0)  # a key of its own
    shapes = [(), parts[:1], [other_package], parts[1:3], parts]
    out = []
    for i, (comps, region, label, warnings, pue, status) in enumerate(product(
            shapes, regions, [None, "a<b>&'\"{x}", "{}{0}{", "x" * 200],
            [(), ("meter {failed} <b>", "a & b")], [1.0, 1.58, -0.0], ["ok", "interrupted"])):
        energy = sum(c.energy_j for c in comps)
        out.append(Footprint(
            id=f"{i:032x}", cell_id=None, label=label, execution_count=i % 3 or None,
            started_at="2026-01-01T00:00:00.000+00:00", duration_s=[0.0, 0.5, 75.0, 4000.0][i % 4],
            status=status, components=tuple(comps), energy_j=energy, pue=pue, region=region,
            co2e_g=[0.0, 2e-4, 3.5, 1.2e4][i % 4], attribution="machine", warnings=warnings,
            nbcarbon_version="0.1.0"))
    return out


def test_the_templated_full_readout_says_what_text_and_html_say_character_for_character() -> None:
    from nbcarbon import readout

    records = _footprints_of_every_shape()
    for fp in records + records:  # the second time from the templates kept
        data, metadata = readout.mimebundle(fp)
        assert data == {"text/plain": readout.text(fp), "text/html": readout.html(fp)}
        assert metadata == {readout.METADATA_KEY: fp.to_dict()}


def test_the_readout_templates_kept_are_bounded_and_start_again_when_full() -> None:
    from nbcarbon import readout

    records = _footprints_of_every_shape()
    for fp in records:
        readout.mimebundle(fp)
        assert 0 < len(readout._TEMPLATES) <= readout._TEMPLATES_KEPT
    shapes = {(readout._region_line(fp), fp.warnings,
               *[(c.component, c.device, c.method, c.share is None) for c in fp.components])
              for fp in records}
    assert len(shapes) > readout._TEMPLATES_KEPT  # so the cache was full and started again


def test_the_region_line_kept_is_made_again_for_any_other_region_or_pue_object() -> None:
    """The line is kept by identity: a PUE of -0.0 after 0.0 (equal, written differently) or a
    re-priced region (a new object) must never show the line of the one before."""
    from dataclasses import replace

    from nbcarbon import readout

    fp = _footprints_of_every_shape()[0]
    zero, minus_zero = float("0"), float("-0")
    sequence = [replace(fp, pue=zero), replace(fp, pue=minus_zero), replace(fp, pue=zero),
                replace(fp, region=replace(fp.region, chosen_by="dashboard")), fp, fp]
    lines = [readout._region_line(r) for r in sequence]
    assert lines == [readout.region_line(r.region, r.pue) for r in sequence]
    assert lines[0].endswith("PUE 0") and lines[1].endswith("PUE -0")
    assert "chosen by dashboard" in lines[3] and "chosen by dashboard" not in lines[4]
    for r in _footprints_of_every_shape():
        assert readout._region_line(r) == readout.region_line(r.region, r.pue)
