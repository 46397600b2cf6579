"""Grid carbon intensity per region, from data bundled with the package, and where a kernel runs.

Why bundled tables and no network: a footprint must be computable offline, reproducibly, and
without sending anything anywhere. Each :class:`Region` carries its own year, source, basis
and licence, so a record always says where its number came from (SPEC section 3).

The tables live in ``nbcarbon/data/`` (``regions.csv``, ``timezones.csv``; provenance and
licences in ``DATA_LICENSE``). They are read on first use, never at import, because
``import nbcarbon`` happens in every kernel start and must stay cheap. For the same reason the
modules only some paths need (``csv`` for quoted rows, ``difflib`` for suggestions,
``unicodedata`` for non-ASCII text, ``plistlib`` for macOS preferences, ``importlib.resources``
for a package inside a zip) are imported where they are used, and a session's start, which
only needs the region of one code, reads the regions table without building its full index
(:func:`_find`).

Codes:

* countries: ISO 3166-1 alpha-2 (``SE``); alpha-3 (``SWE``) and English names are accepted;
* sub-national: ISO 3166-2 (``US-CA`` from EPA eGRID, ``IN-MH`` from Ember);
* cloud: ``provider:region`` in lower case (``aws:eu-north-1``, ``gcp:europe-west9``,
  ``azure:swedencentral``), from Cloud Carbon Footprint;
* aggregates from Ember: ``WORLD``, ``EU``, ``EUROPE``, ``ASIA``, ``AFRICA``, ``ASEAN``,
  ``G20``, ``G7``, ``OECD``, ``OCEANIA``, ``NORTH-AMERICA``, ``MIDDLE-EAST``,
  ``LATIN-AMERICA``. None of them is assigned to a country in ISO 3166-1 (``EU`` is only
  "exceptionally reserved" there), so they cannot shadow a country.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nbcarbon.errors import RegionError

__all__ = [
    "Region",
    "all_regions",
    "detect",
    "lookup",
    "search",
    "system_timezone",
    "timezone_country",
    "world",
]

WORLD_CODE = "WORLD"

#: What a valid code looks like; used in error messages so a user can correct the input.
CODE_FORMS = (
    "an ISO country code or name (SE, SWE, Sweden), a sub-national code (US-CA, IN-MH), "
    "a cloud region (aws:eu-north-1, gcp:europe-west9, azure:swedencentral) or WORLD"
)
_LIST_HINT = "`%carbon regions TEXT` (in a terminal, `nbcarbon regions TEXT`) lists regions."
_MAX_SUGGESTIONS = 5

#: Cloud environment variables, in the order they are consulted, and the provider they imply.
#: AWS sets AWS_REGION in Lambda/ECS/SageMaker; AWS_DEFAULT_REGION is the CLI's setting.
#: Azure ML and Azure Functions set REGION_NAME. On Google Cloud, GOOGLE_CLOUD_REGION is
#: the common convention, CLOUD_ML_REGION is set by Vertex AI and FUNCTION_REGION by
#: Cloud Functions (1st gen).
CLOUD_VARIABLES: tuple[tuple[str, str], ...] = (
    ("AWS_REGION", "aws"),
    ("AWS_DEFAULT_REGION", "aws"),
    ("REGION_NAME", "azure"),
    ("GOOGLE_CLOUD_REGION", "gcp"),
    ("CLOUD_ML_REGION", "gcp"),
    ("FUNCTION_REGION", "gcp"),
)

#: Ember aggregate codes (see the module docstring); needed to tell ``EU`` from a country.
AGGREGATE_CODES = frozenset(
    "EU EUROPE ASIA AFRICA ASEAN G20 G7 OECD OCEANIA".split()
    + "NORTH-AMERICA MIDDLE-EAST LATIN-AMERICA".split()
)

# Sort order of region kinds in listings: the fallback first, then what people look for most.
_KIND_ORDER = {"world": 0, "country": 1, "aggregate": 2, "subnational": 3, "cloud": 4}


@dataclass(frozen=True)
class Region:
    """One region's carbon intensity of electricity, with where the number comes from.

    ``basis`` says which emissions a number counts, because the two differ a lot for
    low-carbon grids (Sweden is 35.82 g/kWh lifecycle but only a few g/kWh direct):

    * ``"lifecycle"``: all greenhouse gases over the life cycle of the generators (fuel
      supply, construction, methane leaks), as Ember publishes; gCO2e per kWh generated.
    * ``"direct"``: only emissions at the stack when fuel is burnt (EPA eGRID, EEA);
      lower than lifecycle, near zero for hydro, nuclear and wind.
    * ``"unstated"``: the source does not say which (Ember's state-level series, and Cloud
      Carbon Footprint factors whose underlying source is not named); treat as indicative.

    ``year`` is the year the intensity describes, or ``None`` where the source omits it.
    """

    code: str
    name: str
    g_per_kwh: float
    year: int | None
    source: str
    basis: str
    license: str

    def to_dict(self, chosen_by: str) -> dict[str, object]:
        """The record's ``region`` object (SPEC section 4); ``chosen_by`` names the rule used."""
        return {
            "code": self.code,
            "name": self.name,
            "g_per_kwh": self.g_per_kwh,
            "year": self.year,
            "source": self.source,
            "basis": self.basis,
            "chosen_by": chosen_by,
        }

    @property
    def kind(self) -> str:
        """``world``, ``country``, ``aggregate``, ``subnational`` or ``cloud``, from the code."""
        return _kind(self.code)


def _kind(code: str) -> str:
    if code == WORLD_CODE:
        return "world"
    if code in AGGREGATE_CODES:
        return "aggregate"
    if ":" in code:
        return "cloud"
    if len(code) == 2 and code.isalpha():
        return "country"
    if len(code) >= 4 and code[2] == "-" and code[:2].isalpha():
        return "subnational"
    return "aggregate"


#: ASCII characters that are not letters or digits, deleted by :func:`normalise`'s fast path.
_ASCII_DROP = {i: None for i in range(128) if not chr(i).isalnum()}


def normalise(text: str) -> str:
    """Fold text to the form codes and names are compared in.

    Accents are dropped and case folded, and everything but letters and digits removed, so
    "Côte d'Ivoire", "cote divoire" and "COTE-D'IVOIRE" all meet, as do "AWS:EU-NORTH-1" and
    "aws eu-north-1", and Azure's display form "West Europe" meets "westeurope".

    ASCII text (every code and nearly every name) takes a shortcut with the same result: NFKD
    leaves ASCII unchanged and it has no combining marks, so only case and punctuation go, and
    ``unicodedata`` is imported only for the rest.
    """
    if text.isascii():
        return text.lower().translate(_ASCII_DROP)
    import unicodedata

    decomposed = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return "".join(c for c in folded if c.isascii() and c.isalnum())


# --------------------------------------------------------------------------- data loading


def _data_text(filename: str) -> str:
    """A bundled data file's text (see :mod:`nbcarbon.datafiles`)."""
    from .datafiles import read_text

    return read_text(filename)


def _fields(line: str) -> list[str]:
    """One CSV line's fields, as ``csv.reader`` gives them. Lines without a quote (all but a
    few) are split on commas, which is what the reader does with them; ``csv`` is imported
    only for the others."""
    if '"' not in line:
        return line.split(",")
    import csv

    return next(csv.reader([line]))


def _row(header: list[str], line: str) -> dict[str, str]:
    """A line's fields by column name (the bundled tables have every field on every line)."""
    return dict(zip(header, _fields(line), strict=False))


@functools.cache
def _region_lines() -> tuple[list[str], list[Region | None]]:
    """The regions table's data lines, and a slot per line for its :class:`Region`, filled
    when first asked for (:func:`_region_at`), so the region of one code costs one line's
    parsing and the full table (:func:`_table`) shares the same objects."""
    lines = [line for line in _data_text("regions.csv").splitlines() if line]
    return lines, [None] * len(lines)


def _region_at(number: int, row: Mapping[str, str] | None = None) -> Region:
    """The region on data line ``number`` (1 is the first after the header), built once;
    ``row`` is that line's fields where the caller has parsed them already."""
    lines, built = _region_lines()
    region = built[number]
    if region is None:
        if row is None:
            row = _row(_fields(lines[0]), lines[number])
        region = Region(
            code=row["code"],
            name=row["name"],
            g_per_kwh=float(row["g_per_kwh"]),
            year=int(row["year"]) if row["year"] else None,
            source=row["source"],
            basis=row["basis"],
            license=row["license"],
        )
        built[number] = region
    return region


@functools.cache
def _codes() -> dict[str, int]:
    """Normalised code -> data line number of its region, first line wins: the first tier of
    :func:`_table`'s index, built from the codes alone (no other column is parsed)."""
    lines, _ = _region_lines()
    column = _fields(lines[0]).index("code")
    index: dict[str, int] = {}
    for number in range(1, len(lines)):
        line = lines[number]
        if column == 0 and not line.startswith('"'):
            code = line.partition(",")[0]  # what _fields gives first, without splitting the rest
        else:
            code = _fields(line)[column]
        key = normalise(code)
        if key:
            index.setdefault(key, number)
    return index


@functools.cache
def _table() -> tuple[tuple[Region, ...], dict[str, Region], dict[str, tuple[str, ...]]]:
    """All regions, the index from normalised code/name/alias to region, and search keys.

    The index is filled in tiers (codes, then names, then aliases such as ISO3 codes and
    alternative names), first claim wins. So a country keeps its name when a US state has
    the same one: "Georgia" is the country, the state is "US-GA" or "Georgia (US)".
    """
    lines, _ = _region_lines()
    header = _fields(lines[0])
    regions: list[Region] = []
    aliases: dict[str, list[str]] = {}
    for number in range(1, len(lines)):
        row = _row(header, lines[number])
        region = _region_at(number, row)
        regions.append(region)
        aliases[region.code] = [a for a in row["aliases"].split(";") if a]
    index: dict[str, Region] = {}
    for tier in ("code", "name", "alias"):
        for region in regions:
            if tier == "code":
                texts = [region.code]
            elif tier == "name":
                texts = [region.name]
            else:
                texts = aliases[region.code]
            for text in texts:
                key = normalise(text)
                if key:
                    index.setdefault(key, region)
    keys_of: dict[str, list[str]] = {region.code: [] for region in regions}
    for key, region in index.items():
        keys_of[region.code].append(key)
    ordered = tuple(sorted(regions, key=_listing_order))
    return ordered, index, {code: tuple(keys) for code, keys in keys_of.items()}


def _listing_order(region: Region) -> tuple[int, str]:
    kind = region.kind
    by_code = kind in ("cloud", "subnational")
    return (_KIND_ORDER[kind], region.code if by_code else normalise(region.name))


@functools.cache
def _timezones() -> dict[str, tuple[str, str]]:
    """Zone name -> (ISO2 or "", alias target or "") from the bundled timezones.csv.

    Fields by position rather than through a dict per row: every session reads this table
    when it starts."""
    lines = [line for line in _data_text("timezones.csv").splitlines() if line]
    if not lines:
        return {}
    header = _fields(lines[0])
    zone, iso2, alias_of = header.index("zone"), header.index("iso2"), header.index("alias_of")
    zones: dict[str, tuple[str, str]] = {}
    for line in lines[1:]:
        fields = _fields(line)
        zones[fields[zone]] = (fields[iso2], fields[alias_of])
    return zones


@functools.cache
def _timezones_folded() -> dict[str, str]:
    """Case-folded zone name -> canonical spelling, for lenient input ("europe/stockholm")."""
    return {name.casefold(): name for name in _timezones()}


# --------------------------------------------------------------------------- lookup


def all_regions() -> list[Region]:
    """Every bundled region with a figure: WORLD, countries by name, aggregates, sub-national,
    cloud by code (:func:`has_figure`)."""
    return [r for r in _table()[0] if has_figure(r)]


def has_figure(region: Region) -> bool:
    """Whether the bundled figure can price anything. A source row of 0 g CO2e/kWh (Ember's for
    the Central African Republic, 2022) is missing data, not a clean grid: a lifecycle
    intensity is never 0, and pricing with it would make every footprint there vanish."""
    return region.g_per_kwh > 0.0


def world() -> Region:
    """The world average (Ember), the fallback when nothing better is known."""
    region = _find(WORLD_CODE)
    if region is None:
        raise KeyError(WORLD_CODE)
    return region


def _find(text: str) -> Region | None:
    """The region a code, ISO3 code, name or alias names, or None. Never raises.

    A code is looked up among the codes alone first (:func:`_codes`): codes are the index's
    first tier, so a code found there is what the full index gives, and detecting a session's
    region (a country code from the time zone, a cloud region, the world) needs no more. Any
    other text goes to the full index (:func:`_table`).
    """
    key = normalise(text)
    if not key:
        return None
    number = _codes().get(key)
    if number is not None:
        return _region_at(number)
    return _table()[1].get(key)


def _shown(text: str) -> str:
    """The user's input for a one-line message: repr() escapes newlines; long input is cut."""
    stripped = text.strip()
    if len(stripped) > 40:
        stripped = stripped[:37] + "..."
    return repr(stripped)


def suggestions(text: str, limit: int = _MAX_SUGGESTIONS) -> list[Region]:
    """Regions whose normalised code, name or alias is closest to ``text`` (difflib), best first."""
    key = normalise(text)
    if not key:
        return []
    import difflib  # only for a code that matched nothing

    index = _table()[1]
    found: list[Region] = []
    for match in difflib.get_close_matches(key, index.keys(), n=limit * 4, cutoff=0.6):
        region = index[match]
        if region not in found:
            found.append(region)
        if len(found) == limit:
            break
    if not found and len(key) <= 3:
        # A mistyped short code ("ZZ") is too short for difflib's ratio: the codes one letter
        # away are its closest, those sharing the longest start first (ZA, ZM, ZW, then AZ...).
        for code in _one_letter_away(key):
            region = _find(code)
            if region is not None and region not in found:
                found.append(region)
            if len(found) == limit:
                break
    return found


def _one_letter_away(key: str) -> list[str]:
    """The normalised codes as long as ``key`` that differ from it in one place, latest first."""
    near = []
    for code in _codes():
        if len(code) == len(key):
            differ = [i for i, (a, b) in enumerate(zip(code, key, strict=True)) if a != b]
            if len(differ) == 1:
                near.append((-differ[0], code))
    return [code for _, code in sorted(near, key=lambda pair: pair[0])]


def label(region: Region) -> str:
    """Short "code (name)" text for messages: ``SE (Sweden)``, ``aws:eu-north-1 (Stockholm)``."""
    if region.kind == "cloud":
        # Cloud names repeat the code ("AWS eu-north-1 (Stockholm)"); keep only the place.
        place = region.name.split(" ", 2)[2:]
        return f"{region.code} {place[0]}" if place else region.code
    return f"{region.code} ({region.name})"


def lookup(code: str) -> Region:
    """The region named by a code, ISO3 code or name, in any case, with or without accents.

    Raises :class:`RegionError` (one line, with up to five close matches and, when there
    are none, what a valid code looks like), because a mistyped region must not silently
    turn into some other number.
    """
    if not isinstance(code, str):
        raise RegionError(f"A region is a code in text, e.g. 'SE', not {code!r} "
                          f"({type(code).__name__}): use {CODE_FORMS}. {_LIST_HINT}")
    if not code.strip():
        raise RegionError(f"No region given: use {CODE_FORMS}. {_LIST_HINT}")
    region = _find(code)
    if region is not None:
        if not has_figure(region):
            raise RegionError(
                f"{label(region)} has no usable figure in the bundled data: {region.source} gives "
                f"{region.g_per_kwh:g} g CO2e/kWh, which is missing data (a lifecycle intensity is "
                "never 0). Use a neighbouring grid or WORLD.")
        return region
    close = suggestions(code)
    if close:
        listed = ", ".join(label(r) for r in close)
        message = f"Unknown region {_shown(code)}. Did you mean: {listed}? {_LIST_HINT}"
    else:
        message = f"Unknown region {_shown(code)}: use {CODE_FORMS}. {_LIST_HINT}"
    raise RegionError(message, tuple(r.code for r in close))


def search(text: str = "") -> list[Region]:
    """Regions whose code, name or an alias contains ``text`` (normalised); ``""`` gives all.

    Exact matches come first, then those starting with the text, then those with a word of
    their code or name starting with it, then the rest (text inside a word), each group in
    listing order: ``search("se")`` starts with Sweden rather than Senegal, and ``search("swe")``
    lists ``azure:swedencentral`` before the ``us-west`` regions (``uswest`` only contains it).
    """
    if not text.strip():
        return all_regions()
    key = normalise(text)
    if not key:
        return []
    import re

    regions, _, keys_of = _table()
    ranked: list[tuple[int, int, Region]] = []
    for position, region in enumerate(regions):
        keys = keys_of[region.code]
        if key in keys:
            rank = 0
        elif any(k.startswith(key) for k in keys):
            rank = 1
        elif any(key in k for k in keys):
            words = re.split(r"[^0-9a-z]+", f"{region.code} {region.name}".casefold())
            rank = 2 if any(normalise(w).startswith(key) for w in words if w) else 3
        else:
            continue
        ranked.append((rank, position, region))
    return [region for _, _, region in sorted(ranked, key=lambda item: item[:2])
            if has_figure(region)]


# --------------------------------------------------------------------------- detection


def detect(environ: Mapping[str, str], timezone_name: str | None) -> tuple[Region, str]:
    """Pick the region for this kernel and say which rule chose it (the record's ``chosen_by``).

    Order (SPEC section 3; the magic's ``--region`` and ``%carbon region`` are applied by the
    caller before this):

    1. ``NBCARBON_REGION`` -> ``"env:NBCARBON_REGION"``. An invalid value raises
       :class:`RegionError`: the user asked for something explicit, so guessing would hide
       their typo. An empty value counts as unset.
    2. Cloud variables (:data:`CLOUD_VARIABLES`) -> ``"cloud:AWS_REGION"`` etc. A region the
       tables do not know falls through, since the variable was not set for nbcarbon.
    3. The time zone's country -> ``"timezone:Europe/Stockholm"``.
    4. :func:`world` -> ``"default:world-average"``.

    ``environ`` is a parameter (not ``os.environ``) so callers and tests decide what is seen.
    """
    explicit = environ.get("NBCARBON_REGION", "")
    if explicit.strip():
        try:
            return lookup(explicit), "env:NBCARBON_REGION"
        except RegionError as exc:  # say where the bad value came from: it is not on screen
            raise RegionError(f"NBCARBON_REGION: {exc}", exc.suggestions) from None
    for variable, provider in CLOUD_VARIABLES:
        value = environ.get(variable, "").strip()
        if not value:
            continue
        region = _find(f"{provider}:{value}")
        if region is not None and region.code.startswith(provider + ":"):
            return region, f"cloud:{variable}"
    if timezone_name:
        country = timezone_country(timezone_name)
        region = _find(country) if country else None
        if region is not None and region.kind == "country" and has_figure(region):
            return region, f"timezone:{timezone_name}"
    return world(), "default:world-average"


def _zone_name(candidate: str) -> str | None:
    """The canonical spelling of a tz database name, accepting the forms systems use.

    TZ may be ``:Europe/Stockholm`` (POSIX leading colon) or a path ending in
    ``zoneinfo/Europe/Stockholm``; ``posix/`` and ``right/`` sub-trees name the same zones.
    A POSIX rule such as ``CET-1CEST`` is not a zone name and gives None.
    """
    name = candidate.strip().lstrip(":")
    if "zoneinfo" in name:  # a path: the regex (and `re`'s compile of it) only then
        import re

        # the last zoneinfo/ or zoneinfo.default/ (macOS) in a path
        tree = re.search(_ZONEINFO_DIR, name)
        if tree:
            name = name[tree.end():]
    for prefix in ("posix/", "right/"):
        name = name.removeprefix(prefix)
    if not name:
        return None
    zones = _timezones()
    if name in zones:
        return name
    return _timezones_folded().get(name.casefold())


#: Where macOS keeps the zone last chosen in System Settings > Date & Time (readable by anyone).
MACOS_PREFERENCES = Path("/Library/Preferences/.GlobalPreferences.plist")
_MACOS_CITY_KEY = "com.apple.TimeZonePref.Last_Selected_City"
_ZONEINFO_DIR = r".*zoneinfo[^/]*/"  # compiled (and cached) by `re` on first use


def system_timezone(environ: Mapping[str, str], etc: Path = Path("/etc"),
                    macos_preferences: Path = MACOS_PREFERENCES) -> str | None:
    """The system's IANA time zone name, or None if it cannot be told.

    Tries ``TZ`` (if it names a zone), then ``etc/timezone`` (Debian, Ubuntu), then the
    target of the ``etc/localtime`` symlink (most other Linux, and macOS, whose System Settings
    point it at ``/var/db/timezone/zoneinfo/<zone>``), then the zone macOS's preferences last
    recorded (:func:`macos_timezone`) for a Mac whose link is missing or a copy. A pure function
    of its arguments, so tests pass a fake environment and temporary paths.
    """
    tz = environ.get("TZ")
    if tz:
        name = _zone_name(tz)
        if name:
            return name
    try:
        lines = (etc / "timezone").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        lines = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            name = _zone_name(line)
            if name:
                return name
            break
    localtime = etc / "localtime"
    for resolve in (False, True):
        try:
            target = str(localtime.resolve(strict=True) if resolve else localtime.readlink())
        except (OSError, RuntimeError, ValueError):
            continue
        if "zoneinfo" in target:
            name = _zone_name(target)
            if name:
                return name
    return macos_timezone(macos_preferences)


def macos_timezone(preferences: Path = MACOS_PREFERENCES) -> str | None:
    """The zone in macOS's global preferences (``Last_Selected_City``), or None.

    The entry is a list describing the city chosen in Date & Time (coordinates, zone, country
    code, names); the zone is whichever item names one, so its position does not matter. The
    file is a binary or XML property list that every user may read: no ``systemsetup``, no sudo.
    """
    try:
        with open(preferences, "rb") as f:
            import plistlib  # only where the file exists, a Mac: with datetime and expat, ms to import

            prefs = plistlib.load(f)
    except Exception:  # noqa: BLE001 - missing, unreadable or not a plist: the zone is unknown
        return None
    city = prefs.get(_MACOS_CITY_KEY) if isinstance(prefs, dict) else None
    if not isinstance(city, list):
        return None
    for item in city:
        if isinstance(item, str) and "/" in item:
            name = _zone_name(item)
            if name:
                return name
    return None


def timezone_country(tz_name: str) -> str | None:
    """ISO 3166-1 alpha-2 country of a tz database zone, or None (UTC, Etc/*, unknown names).

    Backward names resolve through their link (``Asia/Calcutta`` -> ``Asia/Kolkata`` -> IN,
    ``US/Pacific`` -> ``America/Los_Angeles`` -> US); see ``tools/make_timezones.py`` for why
    links are not followed blindly.
    """
    name = _zone_name(tz_name) if tz_name else None
    zones = _timezones()
    for _ in range(10):  # alias chains are short; the bound only guards against a bad table
        if name is None or name not in zones:
            return None
        country, alias_of = zones[name]
        if country:
            return country
        name = alias_of or None
    return None
