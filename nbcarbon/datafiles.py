"""The package's bundled data files (``nbcarbon/data``), read without ``importlib.resources``.

Why a module of its own: the region table and the CPU power table are read at a kernel's start,
and importing ``importlib.resources`` (with ``tempfile``, ``shutil``, ``zipfile``...) costs more
than reading both tables. The package's directory is read directly when it is on disk (a plain
or editable install: one ``open``); only a package run from a zip falls back to the library.
"""

from __future__ import annotations

import os


def read_text(filename: str) -> str:
    """The text of ``nbcarbon/data/<filename>``."""
    here = globals().get("__file__")  # None or missing under some embedding loaders
    if here:
        try:
            with open(os.path.join(os.path.dirname(here), "data", filename), encoding="utf-8") as f:
                return f.read()
        except OSError:
            pass
    from importlib.resources import files

    package = __name__.rpartition(".")[0] or "nbcarbon"
    return (files(package) / "data" / filename).read_text(encoding="utf-8")
