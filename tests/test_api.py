"""track() in plain scripts, read_notebook, settings, and the import cost of the package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import nbcarbon
from nbcarbon.errors import SettingsError
from nbcarbon.notebook import NotebookError, load_records
from nbcarbon.settings import Settings

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
