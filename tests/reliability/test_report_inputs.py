"""Saved notebooks given to ``nbcarbon report``: whatever the file holds, a clear message, the
valid records reported, nothing executed; the record and notebook readers are fuzzed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbcarbon.cli import main
from nbcarbon.errors import RecordError
from nbcarbon.footprint import SCHEMA, Footprint
from nbcarbon.notebook import NotebookError, collect, load_json, load_records
from tests.reliability.conftest import remember

ROOT = Path(__file__).resolve().parents[2]


def record(**changes) -> dict:
    r = {"schema": 1, "kind": "cell", "id": "a" * 32, "cell_id": None, "label": "fit",
         "execution_count": 3, "started_at": "2024-05-01T10:00:00.000+00:00", "duration_s": 2.0,
         "status": "ok",
         "components": [{"component": "cpu", "device": "package-0", "method": "rapl-counter",
                         "energy_j": 100.0, "mean_power_w": 50.0}],
         "energy_j": 100.0, "pue": 1.0,
         "region": {"code": "SE", "name": "Sweden", "g_per_kwh": 35.82, "year": 2024,
                    "source": "Ember", "basis": "lifecycle", "chosen_by": "magic"},
         "co2e_g": 0.000995, "attribution": "machine", "warnings": [], "nbcarbon_version": "0.1.0"}
    r.update(changes)
    return r


def notebook(*records: object, code: str = "1") -> dict:
    outputs = [{"output_type": "display_data", "data": {"text/plain": "x"},
                "metadata": {"nbcarbon": r}} for r in records]
    return {"cells": [{"cell_type": "code", "source": code, "outputs": outputs, "metadata": {},
                       "execution_count": 1}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def report(path: Path, capsys, *extra: str) -> tuple[int, str, str]:
    code = main(["report", str(path), "--format", "json", *extra])
    out, err = capsys.readouterr()
    remember("report output", out)
    return code, out, err


@pytest.mark.parametrize(("content", "says"), [
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not a notebook: the file is not valid JSON"),
    (b"", "not a notebook: the file is not valid JSON"),
    (b"\xff\xfe{}", "not a notebook"),
    (b"[1, 2, 3]", "not a notebook: JSON without a 'cells' list"),
    (b'{"cells": 3}', "not a notebook: JSON without a 'cells' list"),
    (b'"just a string"', "not a notebook: JSON without a 'cells' list"),
    (b"[" * 100_000 + b"]" * 100_000, "not a notebook"),
    (b'{"cells": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "not a notebook"),
    # A notebook, with no records: a huge number elsewhere spoils nothing (test_special_files.py).
    (b'{"cells": [], "x": 1' + b"9" * 5000 + b"}", "no readable nbcarbon records"),
])
def test_files_that_are_not_notebooks(tmp_path: Path, capsys, content: bytes, says: str) -> None:
    path = tmp_path / "bad.ipynb"
    path.write_bytes(content)
    code, out, err = report(path, capsys)
    assert code == 1 and says in err and "Traceback" not in err
    assert len(err) < 1000
    assert json.loads(out)["cells"] == []


def test_missing_file_and_directory(tmp_path: Path, capsys) -> None:
    for path in (tmp_path / "missing.ipynb", tmp_path):
        code, _, err = report(path, capsys)
        assert code == 1 and "cannot read" in err


@pytest.mark.parametrize(("bad", "says"), [
    (record(schema=SCHEMA + 1), "newer than this nbcarbon understands"),
    (record(schema="1"), "no integer 'schema'"),
    ({k: v for k, v in record().items() if k != "energy_j"}, "missing the field 'energy_j'"),
    (record(energy_j="100"), "'energy_j' must be a number"),
    (record(energy_j=-1.0), "'energy_j' must be a finite number >= 0"),
    (record(energy_j=10 ** 400), "'energy_j' must be a finite number >= 0"),
    (record(energy_j=True), "'energy_j' must be a"),
    (record(components="cpu"), "'components' must be list"),
    (record(components=[{"component": "tpu"}]), "component 0"),
    (record(status="x" * 100_000), "record status must be one of"),
    (record(kind=[[[["deep"]]]] * 10_000), "record kind must be 'cell'"),
    (record(warnings=[1]), "'warnings' must be a list of strings"),
    (record(region={"code": "SE"}), "record is missing the field"),
    ("a string", "must be a JSON object"),
])
def test_bad_records_are_named_and_the_good_ones_reported(tmp_path: Path, capsys, bad, says) -> None:
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(notebook(record(id="b" * 32), bad, record(extra_field={"x": 1}))))
    code, out, err = report(path, capsys)
    assert code == 1 and says in err and "Traceback" not in err
    assert len(err) < 1000, err[:2000]  # a 100 kB bad value is not echoed back
    assert len(json.loads(out)["cells"]) == 2  # the valid record and the one with an extra field


def test_report_never_executes_anything(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    code = f"open({str(marker)!r}, 'w').write('ran')"
    nb = notebook(record(), code=code)
    nb["cells"][0]["outputs"].append({"output_type": "display_data", "metadata": {},
                                      "data": {"text/html": f"<script>{code}</script>"}})
    nb["metadata"]["kernelspec"] = {"name": "python3", "language": "python"}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    probe = textwrap.dedent(f"""
        import sys
        from nbcarbon.cli import main
        code = main(["report", {str(path)!r}])
        loaded = [m for m in ("nbclient", "jupyter_client", "ipykernel", "IPython") if m in sys.modules]
        print("LOADED", loaded)
        sys.exit(code)
    """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout
    assert not marker.exists()


def test_a_100_mb_notebook_is_reported_in_bounded_time_and_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.ipynb"
    nb = notebook(record())
    blob = "iVBORw0KGgo" * (100 * 1024 * 1024 // 11)  # a 100 MB base64 image, as plots make
    nb["cells"].append({"cell_type": "code", "source": "plot()", "metadata": {}, "execution_count": 2,
                        "outputs": [{"output_type": "display_data", "metadata": {},
                                     "data": {"image/png": blob}}]})
    path.write_text(json.dumps(nb))
    del blob, nb
    assert path.stat().st_size > 100e6
    probe = textwrap.dedent(f"""
        import resource, sys, time
        from nbcarbon.cli import main
        t = time.perf_counter()
        code = main(["report", {str(path)!r}, "--format", "json"])
        print("STATS", time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              file=sys.stderr)
        sys.exit(code)
    """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["cells"]) == 1
    seconds, maxrss_kb = done.stderr.split("STATS")[1].split()
    assert float(seconds) < 20
    assert int(maxrss_kb) < 700 * 1024  # the file's bytes and text once each, and a little more


# -- fuzzing ------------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10 ** 500), max_value=10 ** 500)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children,
                                                                      max_size=4),
    max_leaves=20,
)
FIELDS = list(record()) + ["region.code", "region.g_per_kwh", "components.0.energy_j",
                           "components.0.method"]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _set(d: dict, dotted: str, value: object) -> dict:
    d = json.loads(json.dumps(d))
    *path, last = dotted.split(".")
    target = d
    for part in path:
        target = target[int(part)] if isinstance(target, list) else target[part]
    target[last if not isinstance(target, list) else int(last)] = value
    return d


@FUZZ
@given(JSON)
def test_record_reader_on_any_json_raises_only_record_error(value) -> None:
    try:
        Footprint.from_dict(value)
    except RecordError as exc:
        assert len(str(exc)) < 500 and "\n" not in str(exc)


@FUZZ
@given(st.sampled_from(FIELDS), JSON)
def test_record_reader_on_a_record_with_one_field_replaced(field, value) -> None:
    try:
        fp = Footprint.from_dict(_set(record(), field, value))
    except RecordError as exc:
        assert len(str(exc)) < 500 and "\n" not in str(exc)
    else:
        assert fp.energy_j >= 0 and fp.status in ("ok", "error", "interrupted")


RECORDS = st.one_of(JSON, st.just(record()),
                    st.builds(lambda f, v: _set(record(), f, v), st.sampled_from(FIELDS), JSON))
OUTPUTS = st.one_of(JSON, st.fixed_dictionaries(
    {"metadata": st.one_of(JSON, st.fixed_dictionaries({"nbcarbon": RECORDS}))}))
CELLS = st.one_of(JSON, st.fixed_dictionaries({"outputs": st.one_of(JSON, st.lists(OUTPUTS, max_size=3))}))
NOTEBOOKS = st.one_of(JSON, st.fixed_dictionaries({"cells": st.lists(CELLS, max_size=3)}))


@FUZZ
@given(NOTEBOOKS)
def test_notebook_reader_on_any_json(nb) -> None:
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return
    found = collect(nb, "fuzz.ipynb")
    assert all(isinstance(p, str) and len(p) < 600 for p in found.problems)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_notebook_file_reader_on_any_bytes(tmp_path_factory, content: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "nb.ipynb"
    path.write_bytes(content)
    try:
        load_records(path)
    except NotebookError as exc:
        assert "\n" not in str(exc)
    try:
        load_json(path)
    except NotebookError:
        pass
