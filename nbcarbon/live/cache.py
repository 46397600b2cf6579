"""An in-memory TTL cache of provider answers, keyed by provider, zone and hour.

Cells priced in the same hour share one request; a provider that failed is not asked again
until its back-off has passed (so an unreachable service costs one timeout, not one per cell).
The clock is a parameter so tests need not sleep.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

#: How long answers stay fresh: intervals that may still change (the last two hours: measured
#: values replace forecasts) are asked for again after 5 min, older ones are kept for a day.
RECENT_TTL_S = 300.0
SETTLED_TTL_S = 86400.0
FORECAST_TTL_S = 900.0
#: Back-off after a failure (a 429's ``Retry-After`` replaces it).
FAILURE_TTL_S = 120.0
RATE_LIMITED_TTL_S = 900.0
MAX_ENTRIES = 256


@dataclass(frozen=True)
class Entry:
    value: Any
    error: BaseException | None
    stored_at: float
    expires_at: float


class TTLCache:
    """``get``/``put`` with per-entry expiry; thread-safe; evicts the oldest beyond ``max_entries``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_entries: int = MAX_ENTRIES) -> None:
        self._clock = clock
        self._max = max_entries
        self._entries: dict[Hashable, Entry] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Entry | None:
        """The live entry for ``key`` (a value or a remembered failure), or ``None``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.expires_at <= self._clock():
                del self._entries[key]
                return None
            return entry

    def put(self, key: Hashable, value: Any, ttl_s: float) -> None:
        self._store(key, Entry(value, None, self._clock(), self._clock() + ttl_s))

    def put_error(self, key: Hashable, error: BaseException, ttl_s: float) -> None:
        self._store(key, Entry(None, error, self._clock(), self._clock() + ttl_s))

    def _store(self, key: Hashable, entry: Entry) -> None:
        with self._lock:
            self._entries[key] = entry
            while len(self._entries) > self._max:
                oldest = min(self._entries, key=lambda k: self._entries[k].stored_at)
                del self._entries[oldest]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
