"""Region detection on macOS: the /etc/localtime link System Settings maintains, the
zoneinfo.default tree some versions resolve it to, and the global preferences as a fall-back."""

from __future__ import annotations

import plistlib
from pathlib import Path

import pytest

from nbcarbon.intensity import macos_timezone, system_timezone

#: What ``defaults read /Library/Preferences/.GlobalPreferences
#: com.apple.TimeZonePref.Last_Selected_City`` shows: coordinates, zone, country, names.
CITY = ["59.33258", "18.0649", 0, "Europe/Stockholm", "SE", "Stockholm", "Sweden", "Stockholm",
        "Sweden", "DEPRECATED IN 10.6"]


def _prefs(path: Path, value: object, fmt: plistlib.PlistFormat = plistlib.FMT_BINARY) -> Path:
    path.write_bytes(plistlib.dumps({"AppleLocale": "sv_SE", "com.apple.TimeZonePref.Last_Selected_City":
                                     value}, fmt=fmt))
    return path


def test_the_link_macos_keeps_names_the_zone(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "localtime").symlink_to("/var/db/timezone/zoneinfo/America/Los_Angeles")
    assert system_timezone({}, etc, tmp_path / "none.plist") == "America/Los_Angeles"


def test_a_link_into_zoneinfo_default_names_the_zone(tmp_path: Path) -> None:
    tree = tmp_path / "usr" / "share" / "zoneinfo.default" / "Europe"
    tree.mkdir(parents=True)
    (tree / "Paris").write_bytes(b"TZif2")
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "localtime").symlink_to(tree / "Paris")
    assert system_timezone({}, etc, tmp_path / "none.plist") == "Europe/Paris"


@pytest.mark.parametrize("fmt", [plistlib.FMT_BINARY, plistlib.FMT_XML])
def test_preferences_stand_in_for_a_missing_link(tmp_path: Path, fmt: plistlib.PlistFormat) -> None:
    prefs = _prefs(tmp_path / "g.plist", CITY, fmt)
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "localtime").write_bytes(b"TZif2")  # a copy, not a link: it names nothing
    assert system_timezone({}, etc, prefs) == "Europe/Stockholm"
    assert system_timezone({"TZ": "Asia/Tokyo"}, etc, prefs) == "Asia/Tokyo"  # TZ still first


def test_the_link_wins_over_preferences(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "localtime").symlink_to("/var/db/timezone/zoneinfo/Europe/Warsaw")
    assert system_timezone({}, etc, _prefs(tmp_path / "g.plist", CITY)) == "Europe/Warsaw"


@pytest.mark.parametrize("content", [b"", b"not a plist", b"bplist00\xff\xff"])
def test_unreadable_preferences_give_no_zone(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "g.plist"
    path.write_bytes(content)
    assert macos_timezone(path) is None
    assert macos_timezone(tmp_path / "missing.plist") is None


@pytest.mark.parametrize("value", ["Europe/Stockholm", ["SE", "Stockholm"], ["Nowhere/Atlantis"], {}])
def test_preferences_without_a_zone_give_none(tmp_path: Path, value: object) -> None:
    assert macos_timezone(_prefs(tmp_path / "g.plist", value)) is None
