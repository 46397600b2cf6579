"""One small exception tree, so callers can catch nbcarbon's own failures and nothing else.

Each error also subclasses the matching built-in (as nbclient does), so code that already
catches ``ValueError`` or ``LookupError`` keeps working.
"""

from __future__ import annotations


class NbcarbonError(Exception):
    """Base of every error nbcarbon raises on purpose."""


class SettingsError(NbcarbonError, ValueError):
    """A setting (environment variable, magic flag, CLI option) has a value outside its range."""


class RegionError(NbcarbonError, LookupError):
    """A region code that nbcarbon has no intensity for; the message names the closest matches."""

    def __init__(self, message: str, suggestions: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.suggestions = suggestions

    def __str__(self) -> str:  # LookupError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class MeterError(NbcarbonError, OSError):
    """A meter could not read its hardware now. The sampler counts these; it never raises them on."""


class RecordError(NbcarbonError, ValueError):
    """A footprint record (from a saved notebook) that does not follow the schema."""
