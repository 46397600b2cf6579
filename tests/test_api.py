"""track() in plain scripts, read_notebook, settings, and the import cost of the package."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import nbcarbon
from nbcarbon import api
from nbcarbon.api import Tracker
from nbcarbon.errors import SettingsError
from nbcarbon.footprint import Footprint
from nbcarbon.notebook import NotebookError, load_records
from nbcarbon.session import Session
from nbcarbon.settings import Settings
from tests.fakes.counter import CounterMeter, counted_session

SCRIPT = """
import json, sys, time
import nbcarbon
with nbcarbon.track("block", region="PL") as t:
    t0 = time.process_time()
    while time.process_time() - t0 < 0.3:
        pass
try:
    with nbcarbon.track("bad") as bad:
        raise ValueError("x")
except ValueError:
    pass
print(json.dumps([t.footprint.to_dict(), bad.footprint.status, "IPython" in sys.modules]))
"""


def test_track_in_a_plain_script_without_ipython(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "NBCARBON_LEDGER": "off", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         env=env, check=True, cwd=Path(__file__).parents[1])
    record, bad_status, ipython_loaded = json.loads(out.stdout)
    assert record["label"] == "block" and record["region"]["code"] == "PL"
    assert record["region"]["chosen_by"] == "magic"
    cpu = [c for c in record["components"] if c["component"] == "cpu"][0]
    assert cpu["method"] == "cpu-time-model" and cpu["energy_j"] > 0
    assert bad_status == "error"
    assert ipython_loaded is False


def test_import_is_light() -> None:
    code = ("import sys, nbcarbon, nbcarbon.sampler, nbcarbon.footprint, nbcarbon.intensity;"
            "print(sorted(m for m in ('IPython','psutil','pynvml','matplotlib','ipywidgets',"
            "'nbclient') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("name", "value"), [
    ("NBCARBON_PUE", "0"), ("NBCARBON_PUE", "-1"), ("NBCARBON_PUE", "nan"),
    ("NBCARBON_PUE", "inf"), ("NBCARBON_PUE", "abc"), ("NBCARBON_PUE", "3.5"),
    ("NBCARBON_INTERVAL", "0.01"), ("NBCARBON_INTERVAL", "61"), ("NBCARBON_INTERVAL", "x"),
])
def test_bad_settings_name_the_variable_and_range(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name) as info:
        Settings.from_environ({name: value})
    assert "from" in str(info.value) and "to" in str(info.value)


def test_settings_defaults_and_ledger_off() -> None:
    s = Settings.from_environ({"NBCARBON_LEDGER": "off", "NBCARBON_PUE": "1.2",
                               "NBCARBON_INTERVAL": "0.5"})
    assert (s.pue, s.interval_s, s.ledger) == (1.2, 0.5, None)


def test_read_notebook_rejects_what_is_not_a_notebook(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    with pytest.raises(NotebookError, match="not valid JSON"):
        nbcarbon.read_notebook(bad)
    foreign = tmp_path / "foreign.ipynb"
    foreign.write_text(json.dumps({"hello": 1}))
    with pytest.raises(NotebookError, match="'cells'"):
        nbcarbon.read_notebook(foreign)


def test_records_are_collected_and_problems_listed(tmp_path: Path) -> None:
    from tests.test_footprint import make

    good = make().to_dict()
    future = dict(good, id="b" * 32, schema=99)
    nb = {"cells": [
        {"cell_type": "code", "outputs": [{"output_type": "display_data", "data": {},
                                           "metadata": {"nbcarbon": good}}]},
        {"cell_type": "code", "outputs": [{"output_type": "display_data", "data": {},
                                           "metadata": {"nbcarbon": future}}]},
        {"cell_type": "markdown", "source": "x"},
    ]}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    found = load_records(path)
    assert [r.id for r in found.records] == ["a" * 32]
    assert len(found.problems) == 1 and "newer" in found.problems[0]


def test_a_bad_pue_given_to_track_names_the_parameter_as_written_there() -> None:
    import nbcarbon
    from nbcarbon.errors import SettingsError

    with pytest.raises(SettingsError, match=r"^pue must be a number from 1 to 3"):
        with nbcarbon.track("x", pue=7, display=False):
            pass


# -- one tracker entered many times, decorators, labels ------------------------------------------
@pytest.fixture
def counted() -> Iterator[tuple[Session, CounterMeter]]:
    meter = CounterMeter()
    s = counted_session(meter)
    yield s, meter
    s.close()


def test_one_tracker_entered_again_inside_itself_makes_two_windows(counted) -> None:
    session, meter = counted
    t = Tracker(session, "fetch", None, None, display=False)
    with t:
        meter.total_j += 1.0
        with t:
            meter.total_j += 2.0
        inner = t.footprint
    outer = t.footprint
    assert inner is not None and outer is not None and inner.id != outer.id
    assert inner.parent_id == outer.id and inner.energy_j == 2.0 and outer.energy_j == 3.0
    assert session.open_ids() == frozenset()
    assert [fp.energy_j for fp in session.top_records()] == [3.0]


def test_one_tracker_used_by_two_threads_at_once_leaves_no_window_open(counted) -> None:
    # Before: the second __enter__ replaced the first window, both exits closed the second one,
    # and the first stayed open for good: the parent of every later window, out of every total.
    session, meter = counted
    t = Tracker(session, "fetch", None, None, display=False)
    both_in = threading.Barrier(2)
    done: list[Footprint] = []

    def work() -> None:
        with t:
            both_in.wait(timeout=30)
            meter.total_j += 1.0
            both_in.wait(timeout=30)
        done.append(t.footprint)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert session.open_ids() == frozenset()
    assert len({fp.id for fp in session.records}) == len(session.records) == 2
    with Tracker(session, "after", None, None, display=False) as later:
        meter.total_j += 5.0
    assert later.footprint is not None and later.footprint.parent_id is None


def test_track_decorates_functions_and_coroutines(counted, monkeypatch) -> None:
    session, meter = counted
    monkeypatch.setattr(api, "default_session", lambda: session)

    @nbcarbon.track("step", display=False)
    def step(x: int) -> int:
        meter.total_j += x
        return x * 2

    @nbcarbon.track
    def named() -> None:
        meter.total_j += 1.0

    @nbcarbon.track(display=False)
    async def fetch() -> str:
        meter.total_j += 4.0
        return "ok"

    assert step(3) == 6 and step.__name__ == "step"
    named()
    assert asyncio.run(fetch()) == "ok"
    labels = [(fp.label, fp.energy_j) for fp in session.records]
    assert labels == [("step", 3.0), (named.__qualname__, 1.0), (fetch.__qualname__, 4.0)]


def test_track_refuses_generator_functions_and_labels_that_are_not_text(counted, monkeypatch) -> None:
    session, _ = counted
    monkeypatch.setattr(api, "default_session", lambda: session)

    def batches():
        yield 1

    with pytest.raises(TypeError, match="generator function.*nbcarbon.epochs"):
        nbcarbon.track("b")(batches)
    with pytest.raises(TypeError,
                       match=r"label must be a string, e\.g\. track\(f'fold \{k\}'\), not 3 \(int\)"):
        nbcarbon.track(3)
    with pytest.raises(TypeError, match="label must be a string"):
        session.begin(3)  # type: ignore[arg-type]
    assert session.records == [] and session.open_ids() == frozenset()


TEARDOWN_SCRIPT = """
import nbcarbon
batches = iter(nbcarbon.epochs(range(100), label="batch", progress=None))
print("model built from batch", next(batches))

def gen():
    with nbcarbon.track("held"):
        yield 1
held = gen()
next(held)
"""


def test_windows_closed_by_the_interpreters_teardown_neither_hang_nor_print(tmp_path: Path) -> None:
    # Before: the first record of the process came at teardown (the suspended loop and generator
    # closed then), the ledger thread could not start, and Python 3.11 waited for it for ever;
    # the readout's import printed "Exception ignored ... sys.meta_path is None". Those records
    # cannot be written then (no import works): they are dropped.
    ledger = tmp_path / "ledger.sqlite"
    env = {"PATH": "/usr/bin:/bin", "NBCARBON_LEDGER": str(ledger), "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", TEARDOWN_SCRIPT], capture_output=True, text=True,
                         env=env, timeout=120, cwd=Path(__file__).parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout == "model built from batch 0\n"
    assert out.stderr == ""


FORK_SCRIPT = """
import json, os, sys, time
import nbcarbon
from nbcarbon.api import default_session

def burn(s):
    t0 = time.process_time()
    while time.process_time() - t0 < s:
        pass

with nbcarbon.track("parent", display=False) as parent:
    burn(0.3)  # the parent's CPU time before the fork: not the child's
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        with nbcarbon.track("child", display=False) as child:
            burn(0.4)
        meter = default_session().sampler.meters[0]
        fp = child.footprint
        cpu = [c for c in fp.components if c.component == "cpu"][0]
        os.write(w, json.dumps([cpu.energy_j / meter.watts_per_core, fp.parent_id]).encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    cpu_s, parent_id = json.loads(os.read(r, 1000))
print(json.dumps([cpu_s, parent_id, parent.footprint.id]))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_measures_its_own_cpu_time_nested_in_the_parents_window(tmp_path: Path) -> None:
    # Before: the child kept the parent's CPU-time meter: its first window read 0 J (the
    # parent's CPU seconds were its starting point) and its tree held itself.
    env = {"PATH": "/usr/bin:/bin", "NBCARBON_LEDGER": "off", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True,
                         env=env, timeout=120, check=True, cwd=Path(__file__).parents[1])
    cpu_s, parent_id, parents_window = json.loads(out.stdout)
    assert 0.35 <= cpu_s <= 0.8  # the child's 0.4 s, not 0 and not the parent's too
    assert parent_id == parents_window  # nested in the window the parent had open: counted once


def test_how_a_tracked_block_ended_is_its_status(counted) -> None:
    session, _ = counted

    def ended(exc: BaseException | None) -> str:
        t = Tracker(session, "b", None, None, display=False)
        try:
            with t:
                if exc is not None:
                    raise exc
        except BaseException:  # noqa: BLE001 - each one passes through unchanged
            pass
        assert t.footprint is not None
        return t.footprint.status

    assert ended(None) == "ok"
    assert ended(SystemExit(0)) == "ok" and ended(SystemExit()) == "ok"
    assert ended(SystemExit(3)) == "error" and ended(ValueError()) == "error"
    assert ended(KeyboardInterrupt()) == "interrupted" and ended(GeneratorExit()) == "interrupted"
    assert ended(asyncio.CancelledError()) == "interrupted"
