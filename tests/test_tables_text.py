"""Plain-text tables a notebook shows (``%carbon regions``, ``%carbon status``): no word is ever
split across lines, and a search lists the best matches first."""

from __future__ import annotations

import re

from nbcarbon import intensity
from nbcarbon.status import regions_text, wrapped_table


def test_regions_search_ranks_word_matches_before_text_inside_a_word() -> None:
    codes = [r.code for r in intensity.search("swe")]
    assert codes[0] == "SE"
    assert codes.index("azure:swedencentral") < min(i for i, c in enumerate(codes) if "west" in c)


def test_region_table_never_splits_a_word() -> None:
    text = regions_text("")
    words = {w for r in intensity.all_regions() for w in f"{r.name} {r.source}".split()}
    shown = set(re.split(r"\s+", text))
    assert words <= shown  # every word of every name and source appears whole


def test_wrapped_table_keeps_columns_and_words() -> None:
    out = wrapped_table([["a", "one two three four"], ["bb", "x"]], [2, 9]).splitlines()
    assert out == ["a   one two", "    three", "    four", "bb  x"]
