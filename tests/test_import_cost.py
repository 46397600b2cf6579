"""What keeps ``import nbcarbon.api`` and a session's start cheap, and that the cheap paths give
what the full ones gave.

Why: the performance issue's targets (import at most 15 ms, a cold start at most 20 ms) depend on
modules that only rare paths need staying unimported: ``plistlib`` (macOS preferences), ``difflib``
(suggestions for a mistyped region), ``unicodedata`` (non-ASCII region names), ``csv`` (quoted
rows), ``importlib.resources`` (a package inside a zip) and ``pynvml`` (a machine with no NVIDIA
driver). Functional tests only: the import must not load them, the region table read for one
code must hold the same regions as the full one, and the driver check must only ever skip NVML
where NVML could not have started. How fast any of it is stays with ``benchmarks/``.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from nbcarbon import intensity
from nbcarbon.meters import nvml
from tests.fakes.nvml import FakeGpu, FakeNvml

ROOT = Path(__file__).resolve().parents[1]

#: Needed only on rare paths; importing any of them at import time or for a session's region
#: would put milliseconds back on every kernel start.
RARE = ("plistlib", "difflib", "unicodedata", "csv", "importlib.resources", "pynvml", "psutil")


def _fresh(code: str) -> object:
    """Run ``code`` in a fresh interpreter (``sys.modules`` is per process); its last line of
    output, parsed as JSON."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "NBCARBON_LEDGER": "off"}, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_package_alone_imports_no_typing() -> None:
    code = ("import json, sys\nbefore = set(sys.modules)\nimport nbcarbon\n"
            "print(json.dumps(sorted(m for m in set(sys.modules) - before if m in "
            "('typing', 'pathlib', 'dataclasses'))))")
    assert _fresh(code) == []


def test_importing_the_api_imports_no_typing() -> None:
    """``typing`` (~3 ms) serves type checkers only: the records' named tuples come from
    ``collections`` and every ``typing`` name sits under ``TYPE_CHECKING``."""
    code = ("import json, sys\nimport nbcarbon.api\n"
            "print(json.dumps('typing' in sys.modules))")
    assert _fresh(code) is False


def test_the_named_tuples_without_typing_are_what_typing_made() -> None:
    """Field names, defaults, immutability and pickling, as ``typing.NamedTuple`` gave them."""
    import pickle

    from nbcarbon.meters.base import NO_ANOMALIES
    from nbcarbon.meters.share import CpuUse, Split
    from nbcarbon.sampler import Reading

    r = Reading(1.5, 2.0)
    assert (r.total_j, r.t_s, r.error, r.anomalies) == (1.5, 2.0, None, NO_ANOMALIES)
    assert Reading._fields == ("total_j", "t_s", "error", "anomalies")
    assert repr(Split(0.5, "cpu-time")) == "Split(fraction=0.5, basis='cpu-time', why=None, idle=False)"
    assert CpuUse(1.0, 2.0)._replace(ours_s=3.0) == CpuUse(3.0, 2.0)
    assert type(pickle.loads(pickle.dumps(r))) is Reading
    with pytest.raises(AttributeError):
        r.t_s = 3.0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        r.other = 1  # type: ignore[attr-defined]  # no __dict__: as small as a tuple


def test_importing_the_api_loads_no_rare_module() -> None:
    code = (f"import json, sys\nimport nbcarbon.api\n"
            f"print(json.dumps(sorted(m for m in {RARE!r} if m in sys.modules)))")
    assert _fresh(code) == []


@pytest.mark.parametrize("environ", [
    {"TZ": "Europe/Stockholm"},  # a time zone's country
    {"TZ": "Etc/UTC"},  # no country: the world average
    {"AWS_REGION": "eu-north-1"},  # a cloud region
    {"NBCARBON_REGION": "se"},  # a code, in any case
])
def test_detecting_a_region_reads_no_full_index(environ: dict[str, str]) -> None:
    code = ("import json, sys\nfrom nbcarbon import intensity as i\n"
            f"env = {environ!r}\n"
            "region, rule = i.detect(env, i.system_timezone(env))\n"
            "print(json.dumps([region.code, rule, i._table.cache_info().currsize,"
            f" sorted(m for m in {RARE!r} if m in sys.modules)]))")
    code_, rule, full_tables, loaded = _fresh(code)
    expected = intensity.detect(environ, intensity.system_timezone(environ))
    assert [code_, rule] == [expected[0].code, expected[1]]
    assert full_tables == 0
    assert loaded == []


def test_regions_found_by_code_are_the_full_tables_objects() -> None:
    """The code index and the full table share one object per row, whichever is built first."""
    code = ("import json\nfrom nbcarbon import intensity as i\n"
            "codes = [line.partition(',')[0] for line in i._region_lines()[0][1:]]\n"
            "found = [i._find(c) for c in codes]\n"
            "assert i._table.cache_info().currsize == 0\n"
            "full = {r.code: r for r in i._table()[0]}\n"
            "print(json.dumps(all(f is full[f.code] for f in found) and len(found) == len(full)))")
    assert _fresh(code) is True
    for region in intensity.all_regions():
        assert intensity.lookup(region.code) is region


def test_line_fields_are_what_the_csv_reader_gives() -> None:
    for name in ("regions.csv", "timezones.csv"):
        text = intensity._data_text(name)
        lines = [line for line in text.splitlines() if line]
        assert [intensity._fields(line) for line in lines] == list(csv.reader(lines))
    assert intensity._fields('a,"b, c",,"d ""e"""') == ["a", "b, c", "", 'd "e"']


def test_data_is_read_through_importlib_resources_where_not_on_disk(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from nbcarbon import datafiles

    on_disk = intensity._data_text("timezones.csv")
    monkeypatch.setattr(datafiles, "__file__", str(tmp_path / "missing" / "datafiles.py"))
    assert intensity._data_text("timezones.csv") == on_disk
    assert datafiles.read_text("cpu_power.csv").startswith("match,")


def test_ascii_shortcut_of_normalise_matches_the_unicode_path() -> None:
    import unicodedata

    def slow(text: str) -> str:
        decomposed = unicodedata.normalize("NFKD", text)
        folded = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
        return "".join(c for c in folded if c.isascii() and c.isalnum())

    samples = ["".join(map(chr, range(128))), "AWS:EU-NORTH-1", "West Europe", "Côte d'Ivoire",
               "US-CA", "Georgia (US)", " \t\n", ""]
    for text in samples + [chr(i) for i in range(128)]:
        assert intensity.normalise(text) == slow(text), repr(text)


# -- the NVIDIA driver check -------------------------------------------------------------------
def _exists(*present: str) -> Callable[[str], bool]:
    """A stand-in for ``os.path.exists`` where only ``present`` exists."""
    return lambda path: path in present


def _pci(tmp_path: Path, *ids: str) -> str:
    """A ``/proc/bus/pci/devices`` listing devices with these vendor+device ids."""
    path = tmp_path / "pci_devices"
    path.write_text("".join(f"{n:04x}\t{i}\t0\t0\n" for n, i in enumerate(ids)))
    return str(path)


def test_no_driver_only_on_linux_with_no_sign_of_one(tmp_path: Path) -> None:
    no_nvidia = _pci(tmp_path, "80860d57", "1af41045")
    assert nvml.no_nvidia_driver("linux", {}, _exists(), no_nvidia) is True
    for sign in nvml.LINUX_DRIVER_SIGNS:
        assert nvml.no_nvidia_driver("linux", {}, _exists(sign), no_nvidia) is False, sign
    for platform in ("win32", "cygwin", "freebsd14", "darwin"):
        assert nvml.no_nvidia_driver(platform, {}, _exists(), no_nvidia) is False, platform


def test_an_nvidia_device_without_its_driver_loaded_is_still_tried(tmp_path: Path) -> None:
    """nvidia-modprobe may load the module when NVML starts: the device alone sends it there."""
    assert nvml.no_nvidia_driver("linux", {}, _exists(), _pci(tmp_path, "1af41045", "10DE20b0")) is False


def test_sysfs_stands_in_for_procfs_and_an_unreadable_bus_means_try(tmp_path: Path) -> None:
    missing = str(tmp_path / "no_proc_list")
    sys_pci = tmp_path / "devices"
    for name, vendor in (("0000:00:00.0", "0x8086"), ("0000:00:01.0", "0x1af4")):
        (sys_pci / name).mkdir(parents=True)
        (sys_pci / name / "vendor").write_text(vendor + "\n")
    assert nvml.no_nvidia_driver("linux", {}, _exists(), missing, str(sys_pci)) is True
    (sys_pci / "0000:3b:00.0").mkdir()
    (sys_pci / "0000:3b:00.0" / "vendor").write_text("0x10de\n")
    assert nvml.no_nvidia_driver("linux", {}, _exists(), missing, str(sys_pci)) is False
    assert nvml.no_nvidia_driver("linux", {}, _exists(), missing, str(tmp_path / "none")) is False


def test_a_library_on_ld_library_path_is_still_tried(tmp_path: Path) -> None:
    env = {"LD_LIBRARY_PATH": "/opt/a::/opt/mock-nvml"}
    no_nvidia = _pci(tmp_path, "1af41045")
    library = _exists("/opt/mock-nvml/libnvidia-ml.so.1")
    assert nvml.no_nvidia_driver("linux", env, library, no_nvidia) is False
    assert nvml.no_nvidia_driver("linux", env, _exists("/opt/a/libcuda.so.1"), no_nvidia) is True


def test_no_driver_gives_the_driver_note_without_importing_pynvml() -> None:
    code = ("import json, sys\nfrom nbcarbon.meters import nvml\n"
            "nvml.no_nvidia_driver = lambda: True\n"
            "print(json.dumps([nvml.open_gpus(), 'pynvml' in sys.modules]))")
    assert _fresh(code) == [[[], [nvml.NO_DRIVER_NOTE]], False]


@pytest.mark.parametrize("driver", [True, False])
def test_missing_pynvml_gives_the_library_note_either_way(
        monkeypatch: pytest.MonkeyPatch, driver: bool) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    monkeypatch.setattr(nvml, "no_nvidia_driver", lambda: not driver)
    assert nvml.open_gpus() == ([], [nvml.NO_LIBRARY_NOTE])


def test_a_module_passed_in_is_used_whatever_the_check_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nvml, "no_nvidia_driver", lambda: True)
    fake = FakeNvml([FakeGpu(power=50.0)])
    meters, notes = nvml.open_gpus(fake)
    assert [m.channel.method for m in meters] == ["nvml-counter"] and notes == []
    assert fake.init_calls == 1
    for meter in meters:
        meter.close()
