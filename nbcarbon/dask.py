"""``nbcarbon.dask.attach(client)``: add a Dask cluster's energy to every measured window.

A thin public entry; the engine is :mod:`nbcarbon.cluster`. Imports are absolute, so
``import distributed`` here is the real package, never this module.
"""

from __future__ import annotations

import distributed  # noqa: F401 - fail here, with the install hint below, when it is missing

from nbcarbon.cluster import DEFAULT_TIMEOUT_S, AutoAttach, ClusterCollector, MeterPlugin, attach, auto

__all__ = ["DEFAULT_TIMEOUT_S", "AutoAttach", "ClusterCollector", "MeterPlugin", "attach", "auto"]
