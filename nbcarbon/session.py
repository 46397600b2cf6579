"""The measuring engine: one set of meters and one sampler, windows in and records out.

A session knows nothing of IPython: the magics, ``track()`` and the command line all drive it
through :meth:`Session.begin` and :meth:`Session.end`. It owns the session's region and PUE and
re-prices the records it holds when either changes; outer layers subscribe to hear about new and
re-priced records (to update readouts, the dashboard, the ledger).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from . import intensity
from .errors import NbcarbonError
from .footprint import Footprint, PricedRegion, measure
from .meters.probe import ProbeResult, probe
from .sampler import Reading, Sampler
from .settings import Settings, parse_pue

RecordListener = Callable[[Footprint], None]
RepriceListener = Callable[[list[Footprint]], None]


def priced(region: intensity.Region, chosen_by: str) -> PricedRegion:
    """The record's region object for a bundled region and the rule that chose it."""
    return PricedRegion(**region.to_dict(chosen_by))


@dataclass(frozen=True)
class Window:
    """An open measurement: what :meth:`Session.end` needs to close it."""

    id: str
    label: str | None
    started_at: str
    t0_s: float
    begin: tuple[Reading, ...]
    errors0: tuple[int, ...]
    region: PricedRegion | None
    pue: float | None
    source: str = "magic"


@dataclass(frozen=True)
class Totals:
    """Sums over the session's records (energy before PUE, CO2e as currently priced)."""

    cells: int
    duration_s: float
    energy_j: float
    co2e_g: float
    energy_by_component_j: dict[str, float]


class Session:
    """Meters, sampler, pricing and the records of one kernel (or one script)."""

    def __init__(
        self,
        settings: Settings | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        nvml: object | None = None,
        timezone_name: str | None = None,
        probe_fn: Callable[..., ProbeResult] = probe,
    ) -> None:
        self.settings = settings or Settings()
        env = dict(environ or {})
        tz = timezone_name if timezone_name is not None else intensity.system_timezone(env)
        region, chosen_by = intensity.detect(env, tz)  # raises RegionError on a bad NBCARBON_REGION
        self._region = priced(region, chosen_by)
        self._pue = self.settings.pue
        self._nvml = nvml
        self._probe_fn = probe_fn
        self._probe: ProbeResult | None = None
        self.sampler: Sampler | None = None
        self.records: list[Footprint] = []
        self._pinned_region: set[str] = set()
        self._pinned_pue: set[str] = set()
        self._sources: dict[str, str] = {}  # record id -> what opened its window (for the ledger)
        self._record_listeners: list[RecordListener] = []
        self._reprice_listeners: list[RepriceListener] = []
        self._notices: list[str] = []
        self._announced: set[int] = set()
        self._lock = threading.RLock()
        self._version = _version()

    # -- meters ------------------------------------------------------------------------------
    def start(self) -> Sampler:
        """Probe the hardware and start the sampler, once; later calls return the same sampler."""
        with self._lock:
            if self.sampler is None:
                self._probe = self._probe_fn(
                    self.settings.powercap_root, nvml=self._nvml
                )
                self.sampler = Sampler(self._probe.meters, self.settings.interval_s)
            if not self.sampler.running:
                self.sampler.start()
            return self.sampler

    @property
    def probe_result(self) -> ProbeResult:
        self.start()
        assert self._probe is not None
        return self._probe

    def close(self) -> None:
        """Stop the sampler thread and release the meters; the records stay readable."""
        with self._lock:
            if self.sampler is not None:
                self.sampler.close()
                self.sampler = None

    # -- windows -----------------------------------------------------------------------------
    def begin(
        self, label: str | None = None, region: str | None = None, pue: float | None = None,
        source: str = "magic",
    ) -> Window:
        """Open a window. Validates ``region``/``pue`` first, so a bad value starts nothing.

        ``source`` says what opened it ("magic", "auto", "track"); the ledger keeps it.
        """
        pinned_region = priced(intensity.lookup(region), "magic") if region else None
        pinned_pue = parse_pue(pue, "--pue") if pue is not None else None
        sampler = self.sampler if self.sampler is not None and self.sampler.running else self.start()
        errors0 = sampler.error_counts()
        readings = sampler.read_all()
        return Window(
            id=uuid.uuid4().hex,
            label=label,
            started_at=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            t0_s=time.monotonic(),
            begin=readings,
            errors0=errors0,
            region=pinned_region,
            pue=pinned_pue,
            source=source,
        )

    def end(
        self,
        window: Window,
        status: str = "ok",
        execution_count: int | None = None,
        cell_id: str | None = None,
    ) -> Footprint:
        """Close a window: read the meters again and build, keep and announce its record."""
        sampler = self.sampler
        if sampler is None:
            raise NbcarbonError("the session was closed while a window was open")
        readings = sampler.read_all()
        duration_s = max(0.0, time.monotonic() - window.t0_s)
        errors1 = sampler.error_counts()
        during = tuple(b - a for a, b in zip(window.errors0, errors1, strict=True))
        channels = [m.channel for m in sampler.meters]
        measured = measure(channels, window.begin, readings, duration_s, during)
        self._note_failures(during, readings)
        with self._lock:
            region = window.region or self._region
            pue = self._pue if window.pue is None else window.pue
            energy_j = sum(c.energy_j for c in measured.components)
            fp = Footprint(
                id=window.id,
                cell_id=cell_id,
                label=window.label,
                execution_count=execution_count,
                started_at=window.started_at,
                duration_s=duration_s,
                status=status,
                components=tuple(measured.components),
                energy_j=energy_j,
                pue=pue,
                region=region,
                co2e_g=0.0,
                attribution=measured.attribution,
                warnings=tuple(measured.warnings),
                nbcarbon_version=self._version,
            ).repriced()
            self.records.append(fp)
            self._sources[fp.id] = window.source
            if window.region is not None:
                self._pinned_region.add(fp.id)
            if window.pue is not None:
                self._pinned_pue.add(fp.id)
            listeners = list(self._record_listeners)
        for listener in listeners:
            listener(fp)
        return fp

    def _note_failures(self, during: tuple[int, ...], readings: tuple[Reading, ...]) -> None:
        """Queue one notice per meter the first time it fails, so the user hears of it once."""
        assert self.sampler is not None
        for i, meter in enumerate(self.sampler.meters):
            failed = during[i] > 0 or readings[i].error is not None
            if failed and i not in self._announced:
                self._announced.add(i)
                ch = meter.channel
                why = readings[i].error or self.sampler.last_errors()[i] or "read failed"
                self._notices.append(
                    f"nbcarbon: {ch.component} {ch.device} ({ch.method}) could not be read: {why}. "
                    "Footprints say what is missing; measuring goes on."
                )
            elif not failed and i in self._announced:
                self._announced.discard(i)

    def add_notice(self, message: str) -> None:
        """Queue a message from a background part (the ledger writer) for the outer layer to show."""
        with self._lock:
            self._notices.append(message)

    def source_of(self, record_id: str) -> str | None:
        """What opened the window of one of this session's records ("magic", "auto", "track")."""
        return self._sources.get(record_id)

    def take_notices(self) -> list[str]:
        """Messages for the user that the outer layer shows once (stderr, warnings)."""
        with self._lock:
            notices, self._notices = self._notices, []
        return notices

    # -- pricing -----------------------------------------------------------------------------
    @property
    def region(self) -> PricedRegion:
        return self._region

    @property
    def pue(self) -> float:
        return self._pue

    def set_region(self, code: str, chosen_by: str = "command") -> list[Footprint]:
        """Price the session (and every record not pinned by ``--region``) in another region.

        The code is looked up before anything changes, so a bad code loses nothing.
        """
        region = priced(intensity.lookup(code), chosen_by)
        with self._lock:
            self._region = region
            return self._reprice()

    def set_pue(self, pue: object, name: str = "PUE") -> list[Footprint]:
        value = parse_pue(pue, name)
        with self._lock:
            self._pue = value
            return self._reprice()

    def _reprice(self) -> list[Footprint]:
        changed = []
        for i, fp in enumerate(self.records):
            new = fp.repriced(
                None if fp.id in self._pinned_region else self._region,
                None if fp.id in self._pinned_pue else self._pue,
            )
            if new != fp:
                self.records[i] = new
                changed.append(new)
        listeners = list(self._reprice_listeners)
        for listener in listeners:
            listener(changed)
        return changed

    # -- listeners, totals -------------------------------------------------------------------
    def on_record(self, listener: RecordListener) -> Callable[[], None]:
        """Call ``listener`` with each new record; returns a function that unsubscribes."""
        self._record_listeners.append(listener)
        return lambda: self._record_listeners.remove(listener)

    def on_reprice(self, listener: RepriceListener) -> Callable[[], None]:
        """Call ``listener`` with the records whose price changed; returns an unsubscriber."""
        self._reprice_listeners.append(listener)
        return lambda: self._reprice_listeners.remove(listener)

    def totals(self) -> Totals:
        with self._lock:
            records = list(self.records)
        by_component: dict[str, float] = {}
        for fp in records:
            for name, e in fp.energy_by_component().items():
                by_component[name] = by_component.get(name, 0.0) + e
        return Totals(
            cells=len(records),
            duration_s=sum(fp.duration_s for fp in records),
            energy_j=sum(fp.energy_j for fp in records),
            co2e_g=sum(fp.co2e_g for fp in records),
            energy_by_component_j=by_component,
        )

    def reset(self) -> None:
        """Forget the session's records (saved notebooks and the ledger keep theirs)."""
        with self._lock:
            self.records.clear()
            self._sources.clear()
            self._pinned_region.clear()
            self._pinned_pue.clear()


def _version() -> str:
    from . import __version__

    return __version__
