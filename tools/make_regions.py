"""Build nbcarbon/data/regions.csv from /work/shared/data (one row per region, provenance per row)."""

from __future__ import annotations

import csv
import re
import sys
import unicodedata
from pathlib import Path

SRC = Path("/work/shared/data")
OUT = Path("/work/main/nbcarbon/data/regions.csv")

COUNTRY_ALIASES = {
    "GB": ["UK", "Great Britain", "Britain"],
    "US": ["United States of America", "US-TOTAL"],
    "TR": ["Turkey", "Turkiye"],
    "CI": ["Côte d'Ivoire", "Ivory Coast"],
    "CZ": ["Czech Republic"],
    "KR": ["Korea, Republic of", "Republic of Korea"],
    "KP": ["Korea, Democratic People's Republic of"],
    "RU": ["Russian Federation"],
    "VN": ["Vietnam"],
    "LA": ["Laos", "Lao People's Democratic Republic"],
    "PH": ["Philippines"],
    "TZ": ["Tanzania"],
    "PS": ["Palestine"],
    "BA": ["Bosnia and Herzegovina"],
    "CD": ["Democratic Republic of the Congo", "DR Congo", "DRC"],
    "CG": ["Republic of the Congo"],
    "CK": ["Cook Islands"],
    "FK": ["Falkland Islands"],
    "SZ": ["Swaziland"],
    "CV": ["Cape Verde"],
    "MO": ["Macau"],
    "MM": ["Burma"],
    "BN": ["Brunei"],
    "SY": ["Syrian Arab Republic"],
    "IR": ["Iran, Islamic Republic of"],
    "MK": ["Macedonia"],
    "MD": ["Moldova, Republic of"],
    "RE": ["Réunion"],
    "ST": ["São Tomé and Príncipe"],
    "PR": ["US-PR"],
    "IN": ["IN-TOTAL"],
}
AGGREGATES = {  # Ember name -> (code, display name)
    "World": ("WORLD", "World"),
    "EU": ("EU", "European Union"),
    "Europe": ("EUROPE", "Europe"),
    "Asia": ("ASIA", "Asia"),
    "Africa": ("AFRICA", "Africa"),
    "ASEAN": ("ASEAN", "ASEAN"),
    "G20": ("G20", "G20"),
    "G7": ("G7", "G7"),
    "OECD": ("OECD", "OECD"),
    "Oceania": ("OCEANIA", "Oceania"),
    "North America": ("NORTH-AMERICA", "North America"),
    "Middle East": ("MIDDLE-EAST", "Middle East"),
    "Latin America and Caribbean": ("LATIN-AMERICA", "Latin America and Caribbean"),
}
AGG_ALIASES = {"WORLD": ["Global"], "LATIN-AMERICA": ["LATAM", "LAC"], "EU": ["EU27", "EU-27"]}
# ISO 3166-2:IN (2023 codes); old codes kept as aliases.
IN_CODES = {
    "Andaman and Nicobar": ("AN", []),
    "Andhra Pradesh": ("AP", []),
    "Arunachal Pradesh": ("AR", []),
    "Assam": ("AS", []),
    "Bihar": ("BR", []),
    "Chandigarh": ("CH", []),
    "Chhattisgarh": ("CG", ["IN-CT"]),
    "Dadra and Nagar Haveli and Daman and Diu": ("DH", ["IN-DN", "IN-DD"]),
    "Delhi": ("DL", []),
    "Goa": ("GA", []),
    "Gujarat": ("GJ", []),
    "Haryana": ("HR", []),
    "Himachal Pradesh": ("HP", []),
    "Jammu and Kashmir": ("JK", []),
    "Jharkhand": ("JH", []),
    "Karnataka": ("KA", []),
    "Kerala": ("KL", []),
    "Ladakh": ("LA", []),
    "Lakshadweep": ("LD", []),
    "Madhya Pradesh": ("MP", []),
    "Maharashtra": ("MH", []),
    "Manipur": ("MN", []),
    "Meghalaya": ("ML", []),
    "Mizoram": ("MZ", []),
    "Nagaland": ("NL", []),
    "Odisha": ("OD", ["IN-OR", "Orissa"]),
    "Puducherry": ("PY", ["Pondicherry"]),
    "Punjab": ("PB", []),
    "Rajasthan": ("RJ", []),
    "Sikkim": ("SK", []),
    "Tamil Nadu": ("TN", []),
    "Telangana": ("TS", ["IN-TG"]),
    "Tripura": ("TR", []),
    "Uttar Pradesh": ("UP", []),
    "Uttarakhand": ("UK", ["IN-UT", "Uttaranchal"]),
    "West Bengal": ("WB", []),
}
AWS = {
    "us-east-1": "N. Virginia",
    "us-east-2": "Ohio",
    "us-west-1": "N. California",
    "us-west-2": "Oregon",
    "us-gov-east-1": "GovCloud US-East",
    "us-gov-west-1": "GovCloud US-West",
    "af-south-1": "Cape Town",
    "ap-east-1": "Hong Kong",
    "ap-south-1": "Mumbai",
    "ap-northeast-3": "Osaka",
    "ap-northeast-2": "Seoul",
    "ap-southeast-1": "Singapore",
    "ap-southeast-2": "Sydney",
    "ap-southeast-3": "Jakarta",
    "ap-northeast-1": "Tokyo",
    "ca-central-1": "Canada Central",
    "cn-north-1": "Beijing",
    "cn-northwest-1": "Ningxia",
    "eu-central-1": "Frankfurt",
    "eu-west-1": "Ireland",
    "eu-west-2": "London",
    "eu-south-1": "Milan",
    "eu-west-3": "Paris",
    "eu-north-1": "Stockholm",
    "me-south-1": "Bahrain",
    "me-central-1": "UAE",
    "sa-east-1": "São Paulo",
}
GCP = {
    "us-central1": "Iowa",
    "us-central2": "Oklahoma",
    "us-east1": "South Carolina",
    "us-east4": "N. Virginia",
    "us-east5": "Columbus",
    "us-west1": "Oregon",
    "us-west2": "Los Angeles",
    "us-west3": "Salt Lake City",
    "us-west4": "Las Vegas",
    "us-south1": "Dallas",
    "asia-east1": "Taiwan",
    "asia-east2": "Hong Kong",
    "asia-northeast1": "Tokyo",
    "asia-northeast2": "Osaka",
    "asia-northeast3": "Seoul",
    "asia-south1": "Mumbai",
    "asia-south2": "Delhi",
    "asia-southeast1": "Singapore",
    "asia-southeast2": "Jakarta",
    "australia-southeast1": "Sydney",
    "australia-southeast2": "Melbourne",
    "europe-central2": "Warsaw",
    "europe-north1": "Finland",
    "europe-southwest1": "Madrid",
    "europe-west1": "Belgium",
    "europe-west2": "London",
    "europe-west3": "Frankfurt",
    "europe-west4": "Netherlands",
    "europe-west6": "Zurich",
    "europe-west8": "Milan",
    "europe-west9": "Paris",
    "northamerica-northeast1": "Montréal",
    "northamerica-northeast2": "Toronto",
    "southamerica-east1": "São Paulo",
    "southamerica-west1": "Santiago",
}
# CCF lists GCP multi-/dual-regions with the SUM of their member regions (asia1 = 464 + 384),
# which is not an intensity; and an "Unknown" provider average per provider. Both are left out.
SKIP_CLOUD = {("gcp", r) for r in ("asia1", "eur4", "nam4", "asia", "europe", "us")} | {
    (p, "unknown") for p in ("aws", "azure", "gcp")
}

EMBER = "Ember Yearly Electricity Data"


def key(s: str) -> str:
    s = unicodedata.normalize("NFKD", s)
    s = "".join(c for c in s if not unicodedata.combining(c)).casefold()
    return re.sub(r"[^0-9a-z]", "", s)


def read(name):
    with (SRC / name).open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def main() -> int:
    rows = []  # code,name,g_per_kwh,year,source,basis,license,aliases

    def add(code, name, g, year, source, basis, lic, aliases=()):
        rows.append([code, name, g, year, source, basis, lic, ";".join(aliases)])

    for r in read("aggregates.csv"):
        code, name = AGGREGATES[r["name"]]
        assert "Ember" in r["source"]
        add(
            code,
            name,
            r["gco2_per_kwh"],
            r["year"],
            f"{EMBER} {r['year']}",
            "lifecycle",
            "CC-BY-4.0",
            AGG_ALIASES.get(code, [])
            + ([r["name"]] if r["name"] != name and r["name"] != code else []),
        )
    for r in read("countries.csv"):
        assert "lifecycle" in r["source"] and "Ember" in r["source"]
        add(
            r["iso2"],
            r["name"],
            r["gco2_per_kwh"],
            r["year"],
            f"{EMBER} {r['year']}",
            "lifecycle",
            "CC-BY-4.0",
            [r["iso3"]] + COUNTRY_ALIASES.get(r["iso2"], []),
        )
    seen_us = set()
    for r in read("subnational.csv"):
        if r["country_iso2"] == "US":
            if "eGRID" not in r["source"]:
                continue  # Ember US state rows: basis unstated; eGRID (direct) chosen for every state
            assert r["basis"].startswith("direct")
            name = r["region_name"].replace(" Of ", " of ")
            seen_us.add(r["region_code"])
            add(
                f"US-{r['region_code']}",
                f"{name} (US)",
                r["gco2_per_kwh"],
                r["year"],
                "EPA eGRID2023 (state CO2e output rate)",
                "direct",
                "public domain",
                [name],
            )
        else:
            if r["region_name"] == "India Total":
                continue  # the national Ember row (IN) is used instead
            code, aliases = IN_CODES[r["region_name"]]
            assert "unstated" in r["basis"]
            add(
                f"IN-{code}",
                f"{r['region_name']} (IN)",
                r["gco2_per_kwh"],
                r["year"],
                f"Ember India state data {r['year']}",
                "unstated",
                "CC-BY-4.0",
                [r["region_name"], *aliases],
            )
    assert len(seen_us) == 51, len(seen_us)
    for r in read("ccf_cloud_regions.csv"):
        p, reg = r["provider"], r["region"].lower()
        if (p, reg) in SKIP_CLOUD:
            continue
        note = r["note"]
        if "eGRID2020" in note:
            source, basis, year = f"Cloud Carbon Footprint ({note})", "direct", "2020"
        elif "EEA" in note:
            source, basis, year = f"Cloud Carbon Footprint ({note})", "direct", ""
        elif "Google" in note:
            source, basis, year = (
                (
                    "Cloud Carbon Footprint (Google-published location-based grid factor, "
                    "carbon-free-energy share not applied)"
                ),
                "unstated",
                "",
            )
        else:
            assert note == "", note
            source, basis, year = (
                "Cloud Carbon Footprint (underlying source not named)",
                "unstated",
                "",
            )
        label = {"aws": "AWS", "gcp": "GCP", "azure": "Azure"}[p]
        where = (AWS if p == "aws" else GCP if p == "gcp" else {}).get(reg)
        name = f"{label} {reg}" + (f" ({where})" if where else "")
        add(f"{p}:{reg}", name, r["gco2e_per_kwh"], year, source, basis, "Apache-2.0")

    # collision check over normalised codes / names / aliases
    owner: dict[str, str] = {}
    for tier in (0, 1, 2):
        for row in rows:
            names = (
                [row[0]]
                if tier == 0
                else [row[1]]
                if tier == 1
                else [a for a in row[7].split(";") if a]
            )
            for n in names:
                k = key(n)
                if k in owner and owner[k] != row[0]:
                    print(
                        f"collision tier {tier}: {n!r} of {row[0]} already {owner[k]}",
                        file=sys.stderr,
                    )
                owner.setdefault(k, row[0])
    codes = [r[0] for r in rows]
    assert len(codes) == len(set(codes))
    with OUT.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["code", "name", "g_per_kwh", "year", "source", "basis", "license", "aliases"])
        w.writerows(rows)
    print(f"wrote {len(rows)} regions to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
