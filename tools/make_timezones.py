"""Regenerate ``nbcarbon/data/timezones.csv`` from the IANA tz database in the ``tzdata`` package.

Run by a developer when tzdata changes (``python tools/make_timezones.py``); the package reads
only the generated CSV, so users need neither ``tzdata`` nor a system zoneinfo directory.

Why the table is not simply "follow every link": since 2022 the tz database merges zones
that agree since 1970, so ``tzdata.zi`` contains links such as ``Europe/Stockholm ->
Europe/Berlin`` and ``Iceland -> Africa/Abidjan``. Following those blindly would put Sweden
in Germany. So:

* a zone listed in ``zone.tab`` keeps the country ``zone.tab`` gives it (one country per zone);
* any other link is followed until it reaches a ``zone.tab`` zone, and the alias row records
  that zone in ``alias_of`` (``Asia/Calcutta -> Asia/Kolkata``,
  ``US/Pacific -> America/Los_Angeles``);
* a handful of links that cross a border after the merge get their country directly
  (``_COUNTRY_OVERRIDES``), and the POSIX-rule names (``CET``, ``EST``...) that name no country
  are kept with an empty country;
* every other zone (``Etc/UTC``, ``Etc/GMT+5``...) is listed with an empty country, so the
  table also answers "is this a zone name at all?".

Columns: ``zone,iso2,alias_of`` (exactly one of iso2/alias_of is set for zones with a country).
"""

from __future__ import annotations

import csv
import sys
from importlib.resources import files
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "nbcarbon" / "data" / "timezones.csv"

# Links whose merged target lies in another country than the alias (checked by hand against
# the comments in the tz "backward" file, which tzdata.zi does not carry).
_COUNTRY_OVERRIDES = {
    "Africa/Asmera": "ER",
    "Africa/Timbuktu": "ML",
    "America/Coral_Harbour": "CA",
    "America/Virgin": "VI",
    "Atlantic/Jan_Mayen": "SJ",
    "Iceland": "IS",
    "Pacific/Ponape": "FM",
    "Pacific/Truk": "FM",
    "Pacific/Yap": "FM",
}
# Rule-style names that describe an offset, not a place.
_NO_COUNTRY = set("CET CST6CDT EET EST EST5EDT HST MET MST MST7MDT PST8PDT WET".split())


def _tab(text: str) -> dict[str, str]:
    """zone -> first country code from a zone.tab-style file."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        out[fields[2]] = fields[0].split(",")[0]
    return out


def build(zoneinfo) -> list[tuple[str, str, str]]:
    """Rows (zone, iso2, alias_of) from a zoneinfo directory (tzdata's, or a test fixture)."""
    country = _tab((zoneinfo / "zone.tab").read_text(encoding="utf-8"))
    zones: set[str] = set()
    links: dict[str, str] = {}
    for line in (zoneinfo / "tzdata.zi").read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "Z":
            zones.add(parts[1])
        elif len(parts) == 3 and parts[0] == "L":
            links[parts[2]] = parts[1]
    rows: dict[str, tuple[str, str, str]] = {}
    for name in sorted(zones | set(links) | set(country)):
        if name in _NO_COUNTRY:
            rows[name] = (name, "", "")
        elif name in _COUNTRY_OVERRIDES:
            rows[name] = (name, _COUNTRY_OVERRIDES[name], "")
        elif name in country:
            rows[name] = (name, country[name], "")
        else:
            target, hops = name, 0
            while target not in country and target in links and hops < 10:
                target, hops = links[target], hops + 1
            rows[name] = (name, "", target) if target in country else (name, "", "")
    return [rows[k] for k in sorted(rows)]


def main() -> int:
    zoneinfo = files("tzdata") / "zoneinfo"
    rows = build(zoneinfo)
    with OUT.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["zone", "iso2", "alias_of"])
        writer.writerows(rows)
    version = (zoneinfo / "tzdata.zi").read_text(encoding="utf-8").splitlines()[0]
    print(f"wrote {len(rows)} zones to {OUT} ({version.lstrip('# ')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
