"""A RAPL-like counter meter whose total the test sets: each window's energy is exactly what the
test adds between its boundaries, with no clock, file or thread involved."""

from __future__ import annotations

from nbcarbon.meters.base import Channel, Meter
from nbcarbon.meters.probe import ProbeResult
from nbcarbon.session import Session
from nbcarbon.settings import Settings


class CounterMeter(Meter):
    channel = Channel("cpu", "package-0", "rapl-counter", "machine")

    def __init__(self) -> None:
        self.total_j = 0.0

    def read(self) -> float:
        return self.total_j


def counted_session(meter: CounterMeter, region: str = "SE") -> Session:
    """A session whose only meter is ``meter``, priced for ``region``."""
    return Session(Settings(interval_s=0.05), {"NBCARBON_REGION": region},
                   probe_fn=lambda root, nvml=None: ProbeResult([meter]))
