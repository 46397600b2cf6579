"""Opt-in live grid intensity and forecasts, never required: the bundled annual figure stays the fall-back.

* :mod:`.base` the provider interface, :class:`IntensityInterval`, :class:`LiveError`, bounded HTTP;
* :mod:`.ukgrid`, :mod:`.energidataservice`, :mod:`.electricitymaps` one file per service;
* :mod:`.cache` answers per provider, zone and hour; :mod:`.service` which provider serves a region;
* :mod:`.pricing` a cell priced over its own interval (the session's ``pricer``);
* :mod:`.forecast` the greenest start for a job (pure); :mod:`.chart` its figure;
* :mod:`.commands` what ``%carbon live``, ``%carbon forecast``, ``status`` and the API call.

Imported only when live data is on or a forecast is asked for; nothing here touches the network
at import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..settings import Settings
from .base import IntensityInterval, LiveError, Provider
from .forecast import GreenWindow, greenest_window
from .pricing import LivePricer
from .service import LiveService, default_providers

__all__ = ["GreenWindow", "IntensityInterval", "LiveError", "LivePricer", "LiveService", "Provider",
           "greenest_window", "make_pricer", "make_service"]


def make_service(settings: Settings, base_urls: Mapping[str, str] | None = None) -> LiveService:
    """The providers the settings allow (Electricity Maps only with a token), behind one cache."""
    return LiveService(default_providers(settings.electricitymaps_token, settings.live_timeout_s, base_urls))


def make_pricer(settings: Settings, notify: Callable[[str], None],
                base_urls: Mapping[str, str] | None = None) -> LivePricer:
    """The session's ``pricer`` for live data; ``notify`` is :meth:`Session.add_notice`."""
    return LivePricer(make_service(settings, base_urls), notify, settings.live_timeout_s)
