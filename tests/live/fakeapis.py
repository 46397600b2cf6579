"""Dynamic provider answers for any requested span (the session prices cells at the real time)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from nbcarbon.live.base import parse_utc
from tests.live.server import Reply


def ukgrid_constant(value: float, actual: bool = True) -> Any:
    """``/intensity/{from}/{to}`` and ``/{from}/fw48h`` answering ``value`` every half hour."""

    def answer(path: str, query: dict[str, str]) -> Reply:
        parts = path.strip("/").split("/")
        start = parse_utc(parts[1])
        end = start + timedelta(hours=48) if parts[2] == "fw48h" else parse_utc(parts[2])
        start = start.replace(minute=0 if start.minute < 30 else 30)
        rows = []
        t = start
        while t < end:
            rows.append({"from": _z(t), "to": _z(t + timedelta(minutes=30)),
                         "intensity": {"forecast": value, "actual": value if actual else None,
                                       "index": "low"}})
            t += timedelta(minutes=30)
        return Reply({"data": rows})

    return answer


def ukgrid_series(start: datetime, values: list[float]) -> Reply:
    """A fixed forecast of half-hourly ``values`` from ``start`` (whatever span is asked)."""
    rows = [{"from": _z(start + timedelta(minutes=30 * i)), "to": _z(start + timedelta(minutes=30 * (i + 1))),
             "intensity": {"forecast": v, "actual": None, "index": "moderate"}} for i, v in enumerate(values)]
    return Reply({"data": rows})


def _z(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%MZ")
