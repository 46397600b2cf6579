"""Tests for nbcarbon.intensity: lookup, search, detection order, time zones, bundled data."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbcarbon import intensity
from nbcarbon.errors import RegionError
from nbcarbon.intensity import Region, detect, lookup, search, system_timezone, timezone_country

SHARED_DATA = Path("/work/shared/data")  # the reference tables; only present in the dev tree


# --------------------------------------------------------------------------- lookup


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("SE", "SE"),
        ("se", "SE"),
        ("SWE", "SE"),
        ("swe", "SE"),
        ("Sweden", "SE"),
        ("  sweden  ", "SE"),
        ("SWEDEN", "SE"),
        ("Côte d'Ivoire", "CI"),
        ("cote divoire", "CI"),
        ("Cote d'Ivoire", "CI"),
        ("Türkiye", "TR"),
        ("turkiye", "TR"),
        ("Turkey", "TR"),
        ("UK", "GB"),
        ("united kingdom", "GB"),
        ("USA", "US"),
        ("US-CA", "US-CA"),
        ("us-ca", "US-CA"),
        ("California", "US-CA"),
        ("IN-MH", "IN-MH"),
        ("Maharashtra", "IN-MH"),
        ("IN-UT", "IN-UK"),  # former ISO 3166-2 code of Uttarakhand
        ("Georgia", "GE"),  # the country wins over the US state
        ("Georgia (US)", "US-GA"),
        ("US-GA", "US-GA"),
        ("aws:eu-north-1", "aws:eu-north-1"),
        ("AWS:EU-NORTH-1", "aws:eu-north-1"),
        ("gcp:europe-west9", "gcp:europe-west9"),
        ("azure:swedencentral", "azure:swedencentral"),
        ("azure:CentralUS", "azure:centralus"),
        ("WORLD", "WORLD"),
        ("world", "WORLD"),
        ("EU", "EU"),
        ("european union", "EU"),
        ("Asia", "ASIA"),
        ("north america", "NORTH-AMERICA"),
    ],
)
def test_lookup_accepts_codes_names_case_and_accents(text: str, code: str) -> None:
    assert lookup(text).code == code


@pytest.mark.parametrize(
    ("code", "g_per_kwh", "year", "basis", "license"),
    [
        ("SE", 35.82, 2024, "lifecycle", "CC-BY-4.0"),
        ("EE", 341.02, 2024, "lifecycle", "CC-BY-4.0"),
        ("WORLD", 472.99, 2024, "lifecycle", "CC-BY-4.0"),
        ("EU", 213.31, 2024, "lifecycle", "CC-BY-4.0"),
        ("US-CA", 179.06, 2023, "direct", "public domain"),
        ("IN-MH", 658.97, 2024, "unstated", "CC-BY-4.0"),
        ("aws:us-east-1", 379.069, 2020, "direct", "Apache-2.0"),
        ("aws:eu-north-1", 8.8, None, "unstated", "Apache-2.0"),
        ("gcp:europe-west9", 59.0, None, "unstated", "Apache-2.0"),
    ],
)
def test_rows_keep_value_year_basis_and_license(
    code: str, g_per_kwh: float, year: int | None, basis: str, license: str
) -> None:
    region = lookup(code)
    assert (region.g_per_kwh, region.year, region.basis, region.license) == (
        g_per_kwh,
        year,
        basis,
        license,
    )
    assert region.source


def test_sweden_estonia_ratio_is_the_lifecycle_one() -> None:
    """Lifecycle figures: about 9.5x, not the "60x" of old direct-CO2 numbers."""
    ratio = lookup("EE").g_per_kwh / lookup("SE").g_per_kwh
    assert ratio == pytest.approx(341.02 / 35.82)
    assert 9 < ratio < 10


def test_world_is_the_ember_world_average() -> None:
    assert intensity.world() == lookup("WORLD")
    assert intensity.world().g_per_kwh == 472.99
    assert intensity.world().source == "Ember Yearly Electricity Data 2024"


@pytest.mark.parametrize(
    ("typo", "expected"),
    [
        ("Swedn", "SE"),
        ("aws:eu-nort-1", "aws:eu-north-1"),
        ("gcp:europe-wst9", "gcp:europe-west9"),
        ("US-CAL", "US-CA"),
        ("estonai", "EE"),
    ],
)
def test_unknown_code_suggests_the_close_match(typo: str, expected: str) -> None:
    with pytest.raises(RegionError) as caught:
        lookup(typo)
    error = caught.value
    assert expected in error.suggestions
    assert len(error.suggestions) <= 5
    message = str(error)
    assert message.startswith(f"Unknown region {typo!r}.")
    assert "Did you mean:" in message and expected in message
    assert "`%carbon regions TEXT`" in message
    assert "\n" not in message


def test_suggestion_names_the_region() -> None:
    with pytest.raises(RegionError, match=r"SE \(Sweden\)"):
        lookup("Swedn")
    with pytest.raises(RegionError, match=r"aws:eu-north-1 \(Stockholm\)"):
        lookup("aws:eu-nort-1")


def test_nowhere_names_suggestions() -> None:
    with pytest.raises(RegionError) as caught:
        lookup("NOWHERE")
    assert 1 <= len(caught.value.suggestions) <= 5
    assert "Unknown region 'NOWHERE'. Did you mean:" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_no_close_match_says_what_a_code_looks_like() -> None:
    with pytest.raises(RegionError) as caught:
        lookup("qqqqzzzzxxxx")
    message = str(caught.value)
    assert caught.value.suggestions == ()
    assert "US-CA" in message and "aws:eu-north-1" in message and "WORLD" in message
    assert "\n" not in message


@pytest.mark.parametrize("empty", ["", "   ", "\t\n"])
def test_empty_input_has_its_own_message(empty: str) -> None:
    with pytest.raises(RegionError, match="No region given") as caught:
        lookup(empty)
    assert "\n" not in str(caught.value)


def test_message_is_one_line_for_multiline_and_long_input() -> None:
    with pytest.raises(RegionError) as caught:
        lookup("sw\nden" + "x" * 500)
    message = str(caught.value)
    assert "\n" not in message
    assert len(message) < 600


def test_region_error_is_a_lookup_error() -> None:
    with pytest.raises(LookupError):
        lookup("NOWHERE")


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_lookup_returns_a_region_or_raises_region_error(text: str) -> None:
    try:
        result = lookup(text)
    except RegionError as error:
        assert "\n" not in str(error)
        assert all(isinstance(s, str) for s in error.suggestions)
    else:
        assert isinstance(result, Region)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([r.code for r in intensity.all_regions()]))
def test_every_code_round_trips(code: str) -> None:
    assert lookup(code).code == code
    assert lookup(code.upper()).code == code


# --------------------------------------------------------------------------- Region


def test_to_dict_is_the_record_region_object() -> None:
    record = lookup("SE").to_dict("env:NBCARBON_REGION")
    assert record == {
        "code": "SE",
        "name": "Sweden",
        "g_per_kwh": 35.82,
        "year": 2024,
        "source": "Ember Yearly Electricity Data 2024",
        "basis": "lifecycle",
        "chosen_by": "env:NBCARBON_REGION",
    }


def test_region_is_frozen() -> None:
    with pytest.raises(AttributeError):
        lookup("SE").g_per_kwh = 0.0  # type: ignore[misc]


# --------------------------------------------------------------------------- search / data


def test_search_empty_lists_everything_world_first() -> None:
    everything = search("")
    assert everything == intensity.all_regions()
    assert everything[0].code == "WORLD"
    assert len(everything) > 400
    assert len({r.code for r in everything}) == len(everything)


@pytest.mark.parametrize(
    ("text", "first", "members"),
    [
        ("se", "SE", {"SN", "RS"}),
        ("sweden", "SE", {"azure:swedencentral"}),
        ("stockholm", "aws:eu-north-1", set()),
        ("aws:eu", "aws:eu-central-1", {"aws:eu-north-1", "aws:eu-west-3"}),
        ("US-", "US", {"US-AK", "US-CA", "US-WY"}),
        ("US-C", "US-CA", {"US-CO", "US-CT"}),
        ("côte", "CI", set()),
    ],
)
def test_search_finds_by_code_or_name(text: str, first: str, members: set[str]) -> None:
    codes = [r.code for r in search(text)]
    assert codes[0] == first
    assert members <= set(codes)


def test_search_without_match_is_empty() -> None:
    assert search("qqqqzzzz") == []


def test_every_row_has_provenance() -> None:
    for region in intensity.all_regions():
        assert region.source and region.name, region
        assert region.basis in {"lifecycle", "direct", "unstated"}, region
        assert region.license in {"CC-BY-4.0", "public domain", "Apache-2.0"}, region
        assert 0 <= region.g_per_kwh < 1500, region  # Ember has 0.0 for CF (2022)
        assert region.year is None or 2015 <= region.year <= 2030, region
        if region.kind == "cloud":
            assert region.code == region.code.lower()
        if region.kind == "country":
            assert region.basis == "lifecycle" and "Ember" in region.source


def test_every_us_state_uses_egrid_and_dc_is_there() -> None:
    states = [r for r in intensity.all_regions() if r.code.startswith("US-")]
    assert len(states) == 51
    assert {r.basis for r in states} == {"direct"}
    assert lookup("US-DC").name == "District of Columbia (US)"


def test_aggregate_codes_do_not_shadow_countries() -> None:
    aggregates = [r for r in intensity.all_regions() if r.kind == "aggregate"]
    assert {r.code for r in aggregates} == intensity.AGGREGATE_CODES
    countries = [r for r in intensity.all_regions() if r.kind == "country"]
    assert len(countries) == 208  # 209 bundled; the Central African Republic's row has no figure
    for region in aggregates:
        assert lookup(region.code) == region
        assert lookup(region.name) == region
        assert region.basis == "lifecycle" and region.year == 2024


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="reference tables not available")
def test_bundled_countries_match_the_reference_table() -> None:
    with (SHARED_DATA / "countries.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        if float(row["gco2_per_kwh"]) == 0.0:  # missing data: refused by name (test below)
            with pytest.raises(RegionError, match="no usable figure"):
                lookup(row["iso2"])
            continue
        region = lookup(row["iso2"])
        assert region.g_per_kwh == float(row["gco2_per_kwh"]), row["iso2"]
        assert region.year == int(row["year"]), row["iso2"]
        assert lookup(row["iso3"]) == region
        assert lookup(row["name"]) == region


def test_import_reads_no_data_and_stays_cheap() -> None:
    code = (
        "import sys, nbcarbon.intensity as i;"
        "assert i._table.cache_info().currsize == 0;"
        "assert i._timezones.cache_info().currsize == 0;"
        "heavy = {'importlib.resources', 'zoneinfo', 'tzdata'} & set(sys.modules);"
        "assert not heavy, heavy"
    )
    root = Path(__file__).resolve().parent.parent
    env = {"PYTHONPATH": str(root)}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env=env)


# --------------------------------------------------------------------------- time zones


@pytest.mark.parametrize(
    ("zone", "country"),
    [
        ("Europe/Stockholm", "SE"),  # a zone tzdata links to Europe/Berlin: must stay Sweden
        ("Europe/Copenhagen", "DK"),
        ("Asia/Kolkata", "IN"),
        ("Asia/Calcutta", "IN"),
        ("US/Pacific", "US"),
        ("America/Los_Angeles", "US"),
        ("Europe/Kiev", "UA"),
        ("Iceland", "IS"),
        ("Atlantic/Reykjavik", "IS"),
        ("europe/stockholm", "SE"),
        ("UTC", None),
        ("Etc/UTC", None),
        ("Etc/GMT+5", None),
        ("GMT", None),
        ("CET", None),
        ("Not/AZone", None),
        ("", None),
    ],
)
def test_timezone_country(zone: str, country: str | None) -> None:
    assert timezone_country(zone) == country


def _etc(tmp_path: Path, timezone: str | None = None, localtime: str | None = None) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir()
    if timezone is not None:
        (etc / "timezone").write_text(timezone, encoding="utf-8")
    if localtime is not None:
        (etc / "localtime").symlink_to(localtime)
    return etc


@pytest.mark.parametrize(
    ("environ", "timezone", "localtime", "expected"),
    [
        ({"TZ": "Europe/Stockholm"}, "Asia/Tokyo\n", None, "Europe/Stockholm"),
        ({"TZ": ":Europe/Stockholm"}, None, None, "Europe/Stockholm"),
        ({"TZ": "/usr/share/zoneinfo/Asia/Calcutta"}, None, None, "Asia/Calcutta"),
        ({"TZ": "CET-1CEST"}, "Asia/Tokyo\n", None, "Asia/Tokyo"),  # POSIX rule: not a zone
        ({}, "# comment\nAsia/Tokyo\n", "/usr/share/zoneinfo/Europe/Paris", "Asia/Tokyo"),
        ({}, "garbage\n", "/usr/share/zoneinfo/Europe/Paris", "Europe/Paris"),
        ({}, None, "/usr/share/zoneinfo/Europe/Stockholm", "Europe/Stockholm"),
        ({}, None, "../usr/share/zoneinfo/posix/America/New_York", "America/New_York"),
        ({}, None, "/var/db/timezone/zoneinfo/Asia/Kolkata", "Asia/Kolkata"),  # macOS
        ({}, None, "/usr/share/zoneinfo/Etc/UTC", "Etc/UTC"),
        ({}, None, "/somewhere/else", None),
        ({}, None, None, None),
    ],
)
def test_system_timezone(
    tmp_path: Path,
    environ: dict[str, str],
    timezone: str | None,
    localtime: str | None,
    expected: str | None,
) -> None:
    assert system_timezone(environ, _etc(tmp_path, timezone, localtime)) == expected


def test_system_timezone_follows_a_chain_of_links(tmp_path: Path) -> None:
    zoneinfo = tmp_path / "store" / "share" / "zoneinfo" / "Europe"
    zoneinfo.mkdir(parents=True)
    (zoneinfo / "Tallinn").write_bytes(b"TZif")
    (tmp_path / "etc-zoneinfo").symlink_to(tmp_path / "store" / "share" / "zoneinfo")
    etc = _etc(tmp_path, localtime=str(tmp_path / "etc-zoneinfo" / "Europe" / "Tallinn"))
    assert system_timezone({}, etc) == "Europe/Tallinn"


def test_system_timezone_with_a_copied_localtime_file_is_unknown(tmp_path: Path) -> None:
    etc = _etc(tmp_path)
    (etc / "localtime").write_bytes(b"TZif")
    assert system_timezone({}, etc) is None


# --------------------------------------------------------------------------- detect


@pytest.mark.parametrize(
    ("environ", "tz", "code", "chosen_by"),
    [
        # NBCARBON_REGION beats everything
        (
            {"NBCARBON_REGION": "EE", "AWS_REGION": "eu-north-1"},
            "Europe/Stockholm",
            "EE",
            "env:NBCARBON_REGION",
        ),
        ({"NBCARBON_REGION": "aws:eu-west-3"}, None, "aws:eu-west-3", "env:NBCARBON_REGION"),
        ({"NBCARBON_REGION": " sweden "}, None, "SE", "env:NBCARBON_REGION"),
        # an empty setting counts as unset
        ({"NBCARBON_REGION": ""}, "Europe/Stockholm", "SE", "timezone:Europe/Stockholm"),
        # cloud variables beat the time zone, in the documented order
        ({"AWS_REGION": "eu-north-1"}, "Asia/Tokyo", "aws:eu-north-1", "cloud:AWS_REGION"),
        (
            {"AWS_REGION": "eu-north-1", "AWS_DEFAULT_REGION": "us-east-1"},
            None,
            "aws:eu-north-1",
            "cloud:AWS_REGION",
        ),
        (
            {"AWS_DEFAULT_REGION": "us-east-1"},
            None,
            "aws:us-east-1",
            "cloud:AWS_DEFAULT_REGION",
        ),
        (
            {"REGION_NAME": "swedencentral"},
            None,
            "azure:swedencentral",
            "cloud:REGION_NAME",
        ),
        ({"REGION_NAME": "West Europe"}, None, "azure:westeurope", "cloud:REGION_NAME"),
        (
            {"GOOGLE_CLOUD_REGION": "europe-west9"},
            None,
            "gcp:europe-west9",
            "cloud:GOOGLE_CLOUD_REGION",
        ),
        (
            {"CLOUD_ML_REGION": "us-central1"},
            None,
            "gcp:us-central1",
            "cloud:CLOUD_ML_REGION",
        ),
        ({"FUNCTION_REGION": "asia-east1"}, None, "gcp:asia-east1", "cloud:FUNCTION_REGION"),
        # an unknown cloud region falls through to the next rule
        (
            {"AWS_REGION": "mars-north-1", "AWS_DEFAULT_REGION": "eu-west-1"},
            None,
            "aws:eu-west-1",
            "cloud:AWS_DEFAULT_REGION",
        ),
        ({"AWS_REGION": "eu-nort-1"}, "Europe/Tallinn", "EE", "timezone:Europe/Tallinn"),
        ({"AWS_REGION": "SE"}, None, "WORLD", "default:world-average"),  # not a country lookup
        # time zone, with aliases
        ({}, "Europe/Stockholm", "SE", "timezone:Europe/Stockholm"),
        ({}, "Asia/Calcutta", "IN", "timezone:Asia/Calcutta"),
        ({}, "US/Pacific", "US", "timezone:US/Pacific"),
        # UTC, Etc, unknown zones, zones of countries without data, no zone: world average
        ({}, "UTC", "WORLD", "default:world-average"),
        ({}, "Etc/GMT-2", "WORLD", "default:world-average"),
        ({}, "Antarctica/Troll", "WORLD", "default:world-average"),
        ({}, "Nowhere/Special", "WORLD", "default:world-average"),
        ({}, None, "WORLD", "default:world-average"),
    ],
)
def test_detect_precedence(
    environ: dict[str, str], tz: str | None, code: str, chosen_by: str
) -> None:
    region, why = detect(environ, tz)
    assert (region.code, why) == (code, chosen_by)


@pytest.mark.parametrize("bad", ["Swedn", "aws:eu-nort-1", "NOWHERE"])
def test_detect_rejects_a_bad_explicit_setting(bad: str) -> None:
    with pytest.raises(RegionError, match="Unknown region"):
        detect({"NBCARBON_REGION": bad, "AWS_REGION": "eu-north-1"}, "Europe/Stockholm")


def test_detect_with_a_fake_etc_tree(tmp_path: Path) -> None:
    etc = _etc(tmp_path, localtime="/usr/share/zoneinfo/Asia/Calcutta")
    environ: dict[str, str] = {}
    region, why = detect(environ, system_timezone(environ, etc))
    assert (region.code, why) == ("IN", "timezone:Asia/Calcutta")
    assert region.to_dict(why)["chosen_by"] == "timezone:Asia/Calcutta"


@pytest.mark.parametrize("typed, first", [("ZZ", ["ZA", "ZM", "ZW"]), ("QQ", ["QA"])])
def test_a_mistyped_short_code_names_the_codes_one_letter_away(typed: str, first: list[str]) -> None:
    """Too short for a similarity ratio, a two-letter code still gets its closest matches."""
    with pytest.raises(RegionError) as info:
        intensity.lookup(typed)
    assert list(info.value.suggestions[:len(first)]) == first
    assert "Did you mean: " in str(info.value)
    assert "`%carbon regions TEXT` (in a terminal, `nbcarbon regions TEXT`)" in str(info.value)


def test_a_region_whose_source_gives_0_is_refused_by_name_and_never_detected() -> None:
    """Ember's row for the Central African Republic (2022) says 0 g CO2e/kWh: missing data, as
    no lifecycle intensity is 0. Priced with it, every footprint there would read 0 mg."""
    with pytest.raises(RegionError) as info:
        lookup("CF")
    assert "CF (Central African Republic) has no usable figure" in str(info.value)
    assert "missing data" in str(info.value) and "WORLD" in str(info.value)
    assert intensity.detect({}, "Africa/Bangui") == (intensity.world(), "default:world-average")
    assert "CF" not in {r.code for r in intensity.all_regions()}
    assert "CF" not in {r.code for r in intensity.search("central african")}
    assert all(r.g_per_kwh > 0 for r in intensity.all_regions())
