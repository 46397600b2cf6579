"""Settings, resolved once in the outer layer and passed down, so inner modules never read the environment.

Precedence: defaults < ``NBCARBON_*`` environment < ``%carbon`` commands < magic or CLI flags. This
module handles the first two and the validation every layer shares; a bad value is a
:class:`SettingsError` that names the variable and the allowed range.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import SettingsError

PUE_RANGE = (1.0, 3.0)
INTERVAL_RANGE_S = (0.05, 60.0)
LIVE_TIMEOUT_RANGE_S = (0.1, 30.0)
DEFAULT_LIVE_TIMEOUT_S = 5.0
_SWITCH = {"1": True, "on": True, "0": False, "off": False}
DEFAULT_POWERCAP_ROOT = Path("/sys/class/powercap")
DEFAULT_PROC_STAT = Path("/proc/stat")
#: ``share``: a cell is charged its process tree's share of machine-wide counters;
#: ``machine``: all of what the counters measured (see :mod:`nbcarbon.meters.share`).
ATTRIBUTION_MODES = ("share", "machine")
#: The largest notebook file nbcarbon reads (``NBCARBON_MAX_NOTEBOOK_MB``), far above any real
#: one (a notebook full of plots is tens of MB), so that ``/dev/zero`` or a runaway file is
#: refused with a message instead of ending in ``MemoryError`` after reading gigabytes.
DEFAULT_MAX_NOTEBOOK_MB = 1024
MAX_NOTEBOOK_MB_RANGE = (1.0, 1024.0 * 1024)


def _number(text: object, name: str, low: float, high: float) -> float:
    """Parse and range-check one number; ``name`` is what the user typed (variable or flag)."""
    try:
        if isinstance(text, bool):  # float(True) is 1.0: a flag passed where a number belongs
            raise TypeError
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SettingsError(
            f"{name} must be a number from {low:.12g} to {high:.12g}, not {text!r}"
        ) from None
    if not math.isfinite(value) or not low <= value <= high:
        # .12g: a bound such as 1048576 is written out, not as 1.04858e+06
        raise SettingsError(f"{name} must be a number from {low:.12g} to {high:.12g}, not {text!r}")
    return value


def parse_pue(text: object, name: str = "PUE") -> float:
    """A data-centre PUE: 1.0 (no overhead) up to 3.0 (the worst measured in practice)."""
    return _number(text, name, *PUE_RANGE)


def parse_interval(text: object, name: str = "interval") -> float:
    """The sampler period in seconds; below 0.05 s the sampler's own cost shows in the result."""
    return _number(text, name, *INTERVAL_RANGE_S)


def parse_switch(text: object, name: str) -> bool:
    """``on``/``1`` or ``off``/``0`` (any case); anything else names ``name`` and the allowed values."""
    key = str(text).strip().lower()
    if key not in _SWITCH:
        raise SettingsError(f"{name} must be one of on, off, 1, 0, not {text!r}")
    return _SWITCH[key]


def parse_attribution(text: object, name: str = "attribution") -> str:
    """``share`` or ``machine`` (any case); anything else names ``name`` and the allowed values."""
    key = str(text).strip().lower()
    if key not in ATTRIBUTION_MODES:
        raise SettingsError(f"{name} must be one of {', '.join(ATTRIBUTION_MODES)}, not {text!r}")
    return key


def parse_live_timeout(text: object, name: str = "live timeout") -> float:
    """Seconds to wait for a live intensity provider (pricing a cell never waits more than 2 s)."""
    return _number(text, name, *LIVE_TIMEOUT_RANGE_S)


def parse_max_notebook_mb(text: object, name: str = "NBCARBON_MAX_NOTEBOOK_MB") -> float:
    """The notebook size limit in MiB (1 MiB to 1 TiB)."""
    return _number(text, name, *MAX_NOTEBOOK_MB_RANGE)


def max_notebook_bytes(environ: Mapping[str, str] | None = None) -> int:
    """The largest notebook file to read, in bytes: ``NBCARBON_MAX_NOTEBOOK_MB`` or 1 GiB."""
    env = os.environ if environ is None else environ
    text = env.get("NBCARBON_MAX_NOTEBOOK_MB", "").strip()
    mb = parse_max_notebook_mb(text) if text else DEFAULT_MAX_NOTEBOOK_MB
    return int(mb * 1024 * 1024)


def ledger_path(text: str) -> Path:
    """``NBCARBON_LEDGER``'s path, ``~`` and ``~user`` expanded.

    A ``~user`` this machine does not know is a :class:`SettingsError` (one line naming the
    variable), not ``RuntimeError`` from deep inside ``pathlib``. The message shows neither the
    value nor any path: it can end up in a shared notebook (``%load_ext nbcarbon``).
    """
    try:
        return Path(text).expanduser()
    except RuntimeError:
        raise SettingsError(
            "NBCARBON_LEDGER starts with ~ and a user name this machine does not know (or a home "
            "directory it cannot find); set it to a full path, or to off"
        ) from None


def default_ledger_path(environ: Mapping[str, str]) -> Path:
    """The user data directory, by the XDG convention on Linux and the usual places elsewhere."""
    if os.name == "nt":
        base = Path(environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif os.uname().sysname == "Darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "nbcarbon" / "ledger.sqlite3"


@dataclass(frozen=True)
class Settings:
    """Everything a session needs to know that the user can set.

    ``ledger`` is ``None`` when off. The region is not here: it is detected from the environment
    by :func:`nbcarbon.intensity.detect`, which also reads ``NBCARBON_REGION``.

    ``live`` turns on live intensity (``NBCARBON_LIVE``), ``live_timeout_s`` bounds each request
    (``NBCARBON_LIVE_TIMEOUT``). ``attribution`` (``NBCARBON_ATTRIBUTION``) says whether a cell
    is charged its share of machine-wide counters or all of them; ``proc_stat``
    (``NBCARBON_PROC_STAT``) is where the machine's CPU time is read for that share.
    The Electricity Maps token is left out of ``repr`` so it cannot
    leak through a log line or a traceback's locals.
    """

    pue: float = 1.0
    interval_s: float = 1.0
    powercap_root: Path = DEFAULT_POWERCAP_ROOT
    ledger: Path | None = None
    live: bool = False
    live_timeout_s: float = DEFAULT_LIVE_TIMEOUT_S
    electricitymaps_token: str | None = field(default=None, repr=False)
    attribution: str = "share"
    proc_stat: Path = DEFAULT_PROC_STAT

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Read the ``NBCARBON_*`` variables; raise :class:`SettingsError` on a bad value."""
        env = os.environ if environ is None else environ
        pue = parse_pue(env["NBCARBON_PUE"], "NBCARBON_PUE") if env.get("NBCARBON_PUE") else 1.0
        interval_s = (
            parse_interval(env["NBCARBON_INTERVAL"], "NBCARBON_INTERVAL")
            if env.get("NBCARBON_INTERVAL")
            else 1.0
        )
        root_text = env.get("NBCARBON_POWERCAP_ROOT", "").strip()
        powercap_root = Path(root_text) if root_text else DEFAULT_POWERCAP_ROOT
        ledger_text = env.get("NBCARBON_LEDGER", "").strip()
        if ledger_text.lower() == "off":
            ledger = None
        elif ledger_text:
            ledger = ledger_path(ledger_text)
        else:
            try:
                ledger = default_ledger_path(env)
            except RuntimeError:  # no HOME and no password entry: Path.home() has nothing to say
                raise SettingsError("the default ledger lives in the home directory, which this "
                                    "process cannot find; set NBCARBON_LEDGER to a path, or to off"
                                    ) from None
        live_text = env.get("NBCARBON_LIVE", "").strip()
        live = parse_switch(live_text, "NBCARBON_LIVE") if live_text else False
        timeout_text = env.get("NBCARBON_LIVE_TIMEOUT", "").strip()
        live_timeout_s = (parse_live_timeout(timeout_text, "NBCARBON_LIVE_TIMEOUT") if timeout_text
                          else DEFAULT_LIVE_TIMEOUT_S)
        token = env.get("NBCARBON_ELECTRICITYMAPS_TOKEN", "").strip() or None
        mode_text = env.get("NBCARBON_ATTRIBUTION", "").strip()
        attribution = parse_attribution(mode_text, "NBCARBON_ATTRIBUTION") if mode_text else "share"
        stat_text = env.get("NBCARBON_PROC_STAT", "").strip()
        proc_stat = Path(stat_text) if stat_text else DEFAULT_PROC_STAT
        return cls(pue, interval_s, powercap_root, ledger, live, live_timeout_s, token,
                   attribution, proc_stat)

    def with_changes(self, **changes: object) -> "Settings":
        """A copy with some fields replaced (settings are immutable so threads can share them)."""
        return replace(self, **changes)  # type: ignore[arg-type]
