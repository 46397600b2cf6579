"""The session end to end with hardware faked at its boundary: RAPL tree and NVML object."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nbcarbon.errors import RegionError
from nbcarbon.session import Session
from nbcarbon.settings import Settings
from tests.fakes.nvml import FakeGpu, FakeNvml
from tests.fakes.powercap import FakePowercap, sampler_reads
from tests.fakes.procstat import quiet_stat


def session(root: Path, nvml: FakeNvml | None, interval_s: float = 0.05) -> Session:
    settings = Settings(interval_s=interval_s, powercap_root=root, ledger=None,
                        proc_stat=quiet_stat(root))
    return Session(settings, {"NBCARBON_REGION": "SE"}, nvml=nvml or FakeNvml(gpus=[]))


def by_component(fp) -> dict:
    return {(c.component, c.device): c for c in fp.components}


def test_counters_and_gpu_paths_within_two_percent(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path)
    fake.add_package(0, 30.0, range_uj=5_000_000, dram=4.0, power_limit_w=60.0)
    nvml = FakeNvml([FakeGpu(power=120.0, has_counter=True),
                     FakeGpu(name=b"Tesla P100", power=80.0, has_counter=False)])
    s = session(tmp_path, nvml)
    fake.observers.append(sampler_reads(s))  # the 5 J counter is read between any two wraps
    w = s.begin("both")
    fake.run(1.0)  # the RAPL counters advance exactly 1 s of their power inside the window
    fp = s.end(w)
    s.close()
    comps = by_component(fp)
    assert comps[("gpu", "gpu0")].method == "nvml-counter"
    assert comps[("gpu", "gpu1")].method == "nvml-power"
    assert comps[("cpu", "package-0")].energy_j == pytest.approx(30.0, abs=1e-4)
    assert comps[("dram", "package-0")].energy_j == pytest.approx(4.0, abs=1e-4)
    # The fake NVML answers from the clock when it is called: exact over the window's own time.
    for key, power_w in [(("gpu", "gpu0"), 120.0), (("gpu", "gpu1"), 80.0)]:
        assert comps[key].energy_j == pytest.approx(power_w * fp.duration_s, rel=0.02), key
    # Share mode (the default) on a machine nobody else uses: every machine-wide component is
    # the window's whole, said as a share of 100 %.
    assert fp.attribution == "share" and fp.warnings == ()
    assert all(c.share is not None and c.share.fraction == 1.0 for c in fp.components)
    assert fp.energy_j == pytest.approx(sum(c.energy_j for c in fp.components))


def test_gpu_lost_mid_window_keeps_what_was_measured_and_says_so(tmp_path: Path) -> None:
    nvml = FakeNvml([FakeGpu(power=100.0, lost_after_s=0.5)])
    s = session(tmp_path, nvml)
    w = s.begin()
    time.sleep(1.0)
    fp = s.end(w)
    notices = s.take_notices()
    w2 = s.begin()
    fp2 = s.end(w2)
    s.close()
    gpu = by_component(fp)[("gpu", "gpu0")]
    # Energy up to the last good background reading (0.45-0.5 s at 100 W), not zero, not 1 s.
    assert 35.0 <= gpu.energy_j <= 55.0
    assert any("gpu0" in warning and "partly measured" in warning for warning in fp.warnings)
    assert len(notices) == 1 and "gpu0" in notices[0]
    # The next window still measures the CPU model and says the GPU is missing.
    assert ("cpu", "process tree") in by_component(fp2)
    assert any("gpu0" in warning for warning in fp2.warnings)
    assert s.take_notices() == []  # one warning, not one per cell


def test_bad_region_changes_nothing(tmp_path: Path) -> None:
    s = session(tmp_path, None)
    w = s.begin()
    fp = s.end(w)
    with pytest.raises(RegionError, match="Did you mean"):
        s.set_region("Swedn")
    assert s.records == [fp] and s.region.code == "SE"
    s.close()


def test_a_failing_listener_costs_a_notice_not_the_other_listeners_turn(tmp_path: Path) -> None:
    """The readouts, summaries, ledger and dashboard each listen to records and re-pricing; one
    that raises (a widget refusing a value) must not keep the others from their update."""
    s = Session(Settings(ledger=None), {"NBCARBON_REGION": "SE"})
    got: list[object] = []

    def broken(_: object) -> None:
        raise ValueError("refused\nsecond line")

    for subscribe in (s.on_record, s.on_reprice):
        subscribe(broken)
        subscribe(got.append)
    try:
        fp = s.end(s.begin("one"))
        changed = s.set_region("PL")
        again = s.end(s.begin("two"))  # the same failure again: said once
    finally:
        s.close()
    assert got == [fp, changed, again] and changed[0].region.code == "PL"
    assert s.records == [*changed, again]
    notices = s.take_notices()
    assert len(notices) == 2 and all("ValueError: refused)" in n for n in notices), notices
    assert "on a new record" in notices[0] and "on re-pricing" in notices[1]


def test_a_zone_unreadable_at_start_is_named_in_every_record_until_it_reads(tmp_path: Path) -> None:
    # Before: a package whose counter held no number at probe time (EIO, an empty file) vanished
    # from the records without a word: half the CPU missing from every cell, said only in status.
    fake = FakePowercap(tmp_path)
    fake.add_package(0, 10.0)
    fake.add_package(1, 10.0)
    fake.garbage("intel-rapl:1")
    s = session(tmp_path, None)
    s.reprobe_every_s = 0.0
    fp = s.end(s.begin())
    assert [c.device for c in fp.components if c.component == "cpu"] == ["package-0"]
    assert any(w.startswith("RAPL zone intel-rapl:1 (package-1) could not be read: the counter "
                            "file holds no number; its energy is not in this record") for w in fp.warnings)
    fake.restore("intel-rapl:1")
    fp = s.end(s.begin())  # read again between windows, and measured from here on
    s.close()
    assert sorted(c.device for c in fp.components if c.component == "cpu") == ["package-0", "package-1"]
    assert not any("could not be read" in w for w in fp.warnings)
