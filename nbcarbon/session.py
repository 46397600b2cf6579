"""The measuring engine: one set of meters and one sampler, windows in and records out.

A session knows nothing of IPython: the magics, ``track()`` and the command line all drive it
through :meth:`Session.begin` and :meth:`Session.end`. It owns the session's region and PUE and
re-prices the records it holds when either changes; outer layers subscribe to hear about new and
re-priced records (to update readouts, the dashboard, the ledger).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace

from . import intensity
from .attribution import charge, plan, splits
from .errors import NbcarbonError
from .footprint import (
    J_PER_KWH,
    SCHEMA,
    Component,
    Footprint,
    Iterations,
    Measured,
    PricedRegion,
    co2e_g,
    make_component,
    make_footprint,
    measure,
    top_level,
)
from .meters.base import Channel
from .meters.probe import ProbeResult, probe
from .sampler import IDLE_INTERVAL_S, Reading, Sampler
from .settings import Settings, parse_attribution, parse_pue

#: ``typing`` costs ~3 ms to import (a third of nbcarbon's own import time) and nothing here
#: needs it at run time: with postponed annotations it serves type checkers only, which read
#: ``TYPE_CHECKING`` by name. The same guard stands in each module ``nbcarbon.api`` imports.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any, Protocol

    class Collector(Protocol):
        """Energy measured outside this process (a Dask cluster: :mod:`nbcarbon.cluster`), per
        window.

        ``begin()`` returns a token at the window's start; ``end(token, duration_s)`` returns
        the window's extra components and warnings. Both must return within seconds; an
        exception costs the collector's share of the record (with a warning), never the record.
        """

        def begin(self) -> Any: ...

        def end(self, token: Any, duration_s: float) -> tuple[list[Component], list[str]]: ...

#: The most records a session holds (for re-pricing readouts, summaries, plots): the most recent
#: ones. Older records leave the session, not the notebook's outputs or the ledger, and the
#: session's totals stay exact for every cell measured, however long it runs.
RECORDS_KEPT = 10_000
#: How often (at most) a session whose RAPL counters were unreadable looks at them again.
REPROBE_EVERY_S = 30.0
#: Closing times of this many recent windows are kept, to tell a child that outlived its parent.
_CLOSED_KEPT = 256

RecordListener = Callable[[Footprint], None]
RepriceListener = Callable[[list[Footprint]], None]
#: Prices a record at the time it ran: ``(region, started_at_utc, ended_at_utc) -> (region, warnings)``
#: (:class:`nbcarbon.live.pricing.LivePricer`). It must not raise, and must return within seconds.
Pricer = Callable[[PricedRegion, "datetime", "datetime"], tuple[PricedRegion, list[str]]]


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
    collected: tuple[tuple[Collector, Any], ...] = ()  # (collector, its begin token)
    #: The window this one was opened inside (the innermost open one), ``None`` at top level.
    parent_id: str | None = None
    #: The share meters' snapshots at the start (``attribution: share``); ``None``: not split.
    shares: tuple[object, ...] | None = None


@dataclass(frozen=True)
class Totals:
    """Sums over the session's records (energy before PUE, CO2e as currently priced)."""

    cells: int
    duration_s: float
    energy_j: float
    co2e_g: float
    energy_by_component_j: dict[str, float]


@dataclass
class _Forgotten:
    """Running sums of the records that left the session, enough to price them exactly again.

    CO2e is linear in energy, so a few sums per pinning (``--region``, ``--pue``) follow the same
    re-pricing as the records the session holds: a region change prices the unpinned ones in the
    new region (:meth:`region_changed`), a PUE change applies to those whose PUE is not pinned.
    """

    cells: int = 0
    duration_s: float = 0.0
    energy_j: float = 0.0
    free_j: float = 0.0  # neither pinned: sum of energy_j ...
    free_j_g: float = 0.0  # ... and of energy_j * its region's g_per_kwh (times the session's PUE)
    region_pinned_j_g: float = 0.0  # sum of energy_j * own g_per_kwh (times the session's PUE)
    pue_pinned_j_pue: float = 0.0  # sum of energy_j * own PUE ...
    pue_pinned_j_pue_g: float = 0.0  # ... and times its region's g_per_kwh
    fixed_co2e_g: float = 0.0  # pinned both ways
    by_component_j: dict[str, float] = field(default_factory=dict)

    def add(self, fp: Footprint, region_pinned: bool, pue_pinned: bool) -> None:
        self.cells += 1
        self.duration_s += fp.duration_s
        self.energy_j += fp.energy_j
        g = fp.region.g_per_kwh
        if region_pinned and pue_pinned:
            self.fixed_co2e_g += fp.co2e_g
        elif region_pinned:
            self.region_pinned_j_g += fp.energy_j * g
        elif pue_pinned:
            self.pue_pinned_j_pue += fp.energy_j * fp.pue
            self.pue_pinned_j_pue_g += fp.energy_j * fp.pue * g
        else:
            self.free_j += fp.energy_j
            self.free_j_g += fp.energy_j * g
        for name, energy_j in fp.energy_by_component().items():
            self.by_component_j[name] = self.by_component_j.get(name, 0.0) + energy_j

    def region_changed(self, g_per_kwh: float) -> None:
        self.free_j_g = self.free_j * g_per_kwh
        self.pue_pinned_j_pue_g = self.pue_pinned_j_pue * g_per_kwh

    def co2e_g(self, pue: float) -> float:
        return ((self.free_j_g + self.region_pinned_j_g) * pue + self.pue_pinned_j_pue_g) / J_PER_KWH \
            + self.fixed_co2e_g


class Session:
    """Meters, sampler, pricing and the records of one kernel (or one script).

    ``records`` holds the last :data:`RECORDS_KEPT` records; :meth:`totals` covers them all.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        nvml: object | None = None,
        timezone_name: str | None = None,
        probe_fn: Callable[..., ProbeResult] | None = None,
    ) -> None:
        self.settings = settings or Settings()
        env = dict(environ or {})
        tz = timezone_name if timezone_name is not None else intensity.system_timezone(env)
        region, chosen_by = intensity.detect(env, tz)  # raises RegionError on a bad NBCARBON_REGION
        self._region = priced(region, chosen_by)
        self._pue = self.settings.pue
        #: ``share`` or ``machine`` (:meth:`set_attribution`): how machine-wide energy is charged.
        self.attribution = self.settings.attribution
        self.attribution_chosen_by = ("NBCARBON_ATTRIBUTION" if env.get("NBCARBON_ATTRIBUTION", "").strip()
                                      else "default")
        self._nvml = nvml
        self._probe_fn = probe_fn or self._probe_hardware
        self._probe: ProbeResult | None = None
        self.sampler: Sampler | None = None
        self.records: list[Footprint] = []
        #: Records set aside by :meth:`reset`: out of every total, but their readouts are still
        #: in the notebook, so they are re-priced with the rest (the most recent RECORDS_KEPT).
        self.retired: list[Footprint] = []
        self._pinned_region: set[str] = set()
        self._pinned_pue: set[str] = set()
        self._sources: dict[str, str] = {}  # record id -> what opened its window (for the ledger)
        self._forgotten = _Forgotten()  # records beyond RECORDS_KEPT, still in the totals
        self._record_listeners: list[RecordListener] = []
        self._failed_listeners: set[tuple[str, str, str]] = set()  # listener failures said once
        self._reprice_listeners: list[RepriceListener] = []
        self._notices: list[str] = []
        self._announced: set[int] = set()
        self._lock = threading.RLock()
        self._collectors: list[Collector] = []
        #: Open windows in the order they were opened: the innermost is the last one.
        self._open: dict[str, Window] = {}
        #: The window this process's top-level windows are nested in when it is not one of this
        #: session's: set in a forked child to the window its parent had open at the fork (the
        #: parent's process tree, the child included, is measured there; see ``api.py``).
        self.outer_parent_id: str | None = None
        self._closed_at: dict[str, float] = {}  # recent window id -> monotonic end time
        #: (sampler, which share meter splits each of its channels): see attribution.plan
        self._plan: tuple[object, tuple[int | None, ...]] = (None, ())
        self._next_reprobe = 0.0
        self.reprobe_every_s = REPROBE_EVERY_S
        self._reprobe_wanted = False  # RAPL counters were found unreadable: look again later
        self._unread: tuple[str, ...] = ()  # warnings naming zones found but unreadable
        #: How often the sampler wakes between windows (``None``: always at the full rate).
        self.idle_interval_s: float | None = IDLE_INTERVAL_S
        self._watchers = 0  # keep_awake() holds (a dashboard shown), kept across re-probes
        self._held: set[str] = set()  # ids of ``records`` (a parent is looked up on every forget)
        self._version = _version()
        #: ``None`` unless live intensity is on (``NBCARBON_LIVE=1``, ``%carbon live on``): then each
        #: record is priced by it in :meth:`end`, and ``chosen_by`` says ``live:<provider>``.
        self.pricer: Pricer | None = None
        if self.settings.live:
            from .live import make_pricer  # only when asked for: no network code otherwise

            self.pricer = make_pricer(self.settings, self.add_notice)

    # -- meters ------------------------------------------------------------------------------
    def _probe_hardware(self, powercap_root: Any, nvml: object | None = None) -> ProbeResult:
        return probe(powercap_root, nvml=nvml, proc_stat=self.settings.proc_stat)

    def set_attribution(self, mode: str) -> str:
        """Charge later windows their share of machine-wide energy (``share``) or all of it
        (``machine``); records already made keep theirs. Returns the mode."""
        self.attribution = parse_attribution(mode)
        self.attribution_chosen_by = "%carbon attribution"
        return self.attribution

    def start(self) -> Sampler:
        """Probe the hardware and start the sampler, once; later calls return the same sampler."""
        with self._lock:
            if self.sampler is None:
                self._probe = self._probe_fn(
                    self.settings.powercap_root, nvml=self._nvml
                )
                self.sampler = self._new_sampler(self._probe)
            if not self.sampler.running:
                self.sampler.start()
            return self.sampler

    def _new_sampler(self, found: ProbeResult) -> Sampler:
        """A sampler on ``found``'s meters, holding the full rate for what asks for it now."""
        self._reprobe_wanted = any(n.startswith("RAPL") for n in found.notes)
        # Zones found but not readable when probed (EIO, an empty file: not permission, which
        # the model's method already says): every record names what it is missing, not only
        # %carbon status, until a re-probe reads them.
        self._unread = tuple(f"{n}; its energy is not in this record (looked at again every "
                             f"{self.reprobe_every_s:g} s)"
                             for n in found.notes if n.startswith("RAPL zone "))
        sampler = Sampler(found.meters, self.settings.interval_s,
                          idle_interval_s=self.idle_interval_s, shares=found.shares)
        for _ in range(len(self._open) + self._watchers):
            sampler.hold()
        return sampler

    def keep_awake(self) -> Callable[[], None]:
        """Keep the sampler at its full rate (the dashboard's live power) until the returned
        function is called; idempotent release. Survives a re-probe's new sampler."""
        with self._lock:
            self._watchers += 1
            sampler = self.sampler
        if sampler is not None:
            sampler.hold()
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                self._watchers -= 1
                sampler = self.sampler
            if sampler is not None:
                sampler.release()

        return release

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
    def add_collector(self, collector: Collector) -> Callable[[], None]:
        """Add ``collector``'s energy to every later window; returns a function that removes it."""
        self._collectors.append(collector)
        return lambda: self._collectors.remove(collector) if collector in self._collectors else None

    def _collect_begin(self) -> tuple[tuple[Collector, Any], ...]:
        tokens = []
        for collector in list(self._collectors):
            try:
                tokens.append((collector, collector.begin()))
            except Exception as exc:  # noqa: BLE001 - a collector's failure must not stop the cell
                tokens.append((collector, exc))
        return tuple(tokens)

    def _collect_end(self, window: Window, duration_s: float, measured: Measured) -> None:
        for collector, token in window.collected:
            name = type(collector).__name__
            try:
                if isinstance(token, Exception):
                    raise token
                components, warnings = collector.end(token, duration_s)
            except Exception as exc:  # noqa: BLE001 - a collector's failure must not lose the record
                measured.warnings.append(f"{name} not measured: {type(exc).__name__}: {exc}"[:300])
                continue
            measured.components.extend(components)
            measured.warnings.extend(warnings)

    def begin(
        self, label: str | None = None, region: str | None = None, pue: float | None = None,
        source: str = "magic", top: bool = False,
    ) -> Window:
        """Open a window. Validates ``region``/``pue`` first, so a bad value starts nothing.

        ``source`` says what opened it ("magic", "auto", "track", "loop"); the ledger keeps it.
        A window opened while another is open is that one's child (its record's ``parent_id``),
        so totals count it once; ``top=True`` (a notebook cell run by the kernel) is always top
        level, even if a window of an earlier cell was left open.
        """
        if label is not None and not isinstance(label, str):
            raise TypeError(f"a window's label must be a string, e.g. 'fold 3', not {label!r} "
                            f"({type(label).__name__})")
        pinned_region = priced(intensity.lookup(region), "magic") if region else None
        pinned_pue = parse_pue(pue, "pue") if pue is not None else None
        if self._reprobe_wanted and not self._open:
            self._maybe_reprobe()
        sampler = self.sampler
        if sampler is None or not sampler.running:
            sampler = self.start()
        readings, errors0 = sampler.read_all_counted()
        shares = sampler.read_shares() if sampler.machine_wide and self.attribution == "share" else None
        sampler.note(readings)  # the timeline has every window's boundaries, however idle
        collected = self._collect_begin() if self._collectors else ()
        started_at = utc_iso(time.time())
        t0_s = time.monotonic()
        window: Window | None = None
        try:
            with self._lock:
                parent_id = (None if top else next(reversed(self._open)) if self._open
                             else self.outer_parent_id)
                window = _window(new_id(), label, started_at, t0_s, readings, errors0,
                                 pinned_region, pinned_pue, source, collected, parent_id, shares)
                self._open[window.id] = window
                sampler.hold()
            return window
        except BaseException:
            # Ctrl-C lands between any two steps: a window registered but never handed back
            # would stay open for good, the parent of every later window and out of every total,
            # with the sampler held at its full rate. The caller gets the interrupt, not a window;
            # the sampler's holds are set to what they must be (as _new_sampler counts them), since
            # the interrupt may have come before or after the hold counted.
            if window is not None:
                with self._lock:
                    self._open.pop(window.id, None)
                    sampler.set_holds(len(self._open) + self._watchers)
            raise

    def adopt(self, window: Window, label: str | None = None, region: str | None = None,
              pue: float | None = None) -> Window:
        """The open ``window`` with a label and pinned pricing given after it was opened.

        ``%%carbon --label x`` nested in ``%%time`` in auto mode: the cell is already measured
        by auto mode; its options name and price that one window instead of opening a second.
        """
        changes: dict[str, Any] = {}
        if label is not None:
            changes["label"] = label
        if region:
            changes["region"] = priced(intensity.lookup(region), "magic")
        if pue is not None:
            changes["pue"] = parse_pue(pue, "pue")
        if not changes:
            return window
        new = replace(window, **changes)
        with self._lock:
            if window.id in self._open:
                self._open[window.id] = new
        return new

    def abandon(self, window: Window) -> None:
        """Forget an open window that will never be closed (its cell could not be measured)."""
        with self._lock:
            if self._open.pop(window.id, None) is not None and self.sampler is not None:
                self.sampler.release()

    def open_ids(self) -> frozenset[str]:
        """Ids of the windows open now (their records are still to come)."""
        with self._lock:
            return frozenset(self._open)

    def top_records(self) -> list[Footprint]:
        """The session's records that totals add up (:func:`nbcarbon.footprint.top_level`)."""
        with self._lock:
            records, open_ids = list(self.records), frozenset(self._open)
        return top_level(records, open_ids)

    def _maybe_reprobe(self) -> None:
        """Look again at RAPL counters that were unreadable, and switch to them once readable.

        Between windows only (a window's begin readings index the meters it began with). The
        check is one scan of the powercap tree, at most every :data:`REPROBE_EVERY_S`.
        """
        found = self._probe
        if found is None or not self._reprobe_wanted:
            return
        now = time.monotonic()
        if now < self._next_reprobe:
            return
        self._next_reprobe = now + self.reprobe_every_s
        from .meters.rapl import find_zones

        have = {m.channel for m in found.meters if m.channel.method == "rapl-counter"}
        try:
            zones, _ = find_zones(self.settings.powercap_root)
        except Exception:  # noqa: BLE001 - a failed look changes nothing
            return
        if not any(z.channel not in have for z in zones):
            return
        with self._lock:
            if self._open:
                return
            old = self.sampler
            self._probe = self._probe_fn(self.settings.powercap_root, nvml=self._nvml)
            self.sampler = self._new_sampler(self._probe)
            self.sampler.start()
            self._announced.clear()
        if old is not None:
            old.close()
        self.add_notice("nbcarbon: RAPL counters are readable now; measuring "
                        + ", ".join(f"{m.channel.component} {m.channel.device}"
                                    for m in self._probe.meters
                                    if m.channel.method == "rapl-counter")
                        + " with them from this cell on.")

    def end(
        self,
        window: Window,
        status: str = "ok",
        execution_count: int | None = None,
        cell_id: str | None = None,
        *,
        iterations: Iterations | None = None,
        warnings: tuple[str, ...] = (),
    ) -> Footprint:
        """Close a window: read the meters again and build, keep and announce its record.

        ``iterations`` (a loop's series) and ``warnings`` are added to the record as given.
        """
        with self._lock:
            opened = self._open.pop(window.id, None)
            sampler = self.sampler
            if opened is not None:
                window = opened  # the adopted form, if options came later
                if sampler is not None:
                    sampler.release()
        if sampler is None:
            raise NbcarbonError("the session was closed while a window was open")
        readings, errors1 = sampler.read_all_counted()
        shares1 = sampler.read_shares() if window.shares is not None else None
        t1_s = time.monotonic()
        sampler.note(readings)
        duration_s = max(0.0, t1_s - window.t0_s)
        errors0 = window.errors0
        channels = [m.channel for m in sampler.meters]  # read each time: a meter may add a caveat
        measured = None
        if errors0 == errors1:
            during = (0,) * len(errors1)
            measured, energy_j = _clean(channels, window.begin, readings, duration_s)
        else:
            during = tuple(b - a for a, b in zip(errors0, errors1, strict=True))
        if measured is None:
            measured = measure(channels, window.begin, readings, duration_s, during)
            energy_j = -1.0  # summed below, with any collector's components
            self._note_failures(during, readings)
        elif self._announced:  # a meter that failed before reads again: it may be announced again
            self._note_failures(during, readings)
        if shares1 is not None and window.shares is not None:
            if self._plan[0] is not sampler:
                self._plan = (sampler, plan(channels, sampler.shares))
            charge(measured, channels, self._plan[1],
                   splits(sampler.shares, window.shares, shares1, duration_s), duration_s)
            energy_j = -1.0
        if window.collected:
            self._collect_end(window, duration_s, measured)
            energy_j = -1.0
        if self.pricer is None:
            live_region, live_warnings = None, []
        else:
            live_region, live_warnings = self._price_live(window, duration_s)
        extra = list(warnings)
        if self._unread:
            extra.extend(self._unread)
        with self._lock:
            parent_end = self._closed_at.get(window.parent_id) if window.parent_id else None
            if parent_end is not None and t1_s > parent_end + 0.001:
                extra.append(f"went on {t1_s - parent_end:.2f} s after the window it was opened in "
                             "had closed; that part is in neither record's total")
            self._closed_at[window.id] = t1_s
            if len(self._closed_at) > _CLOSED_KEPT:
                del self._closed_at[next(iter(self._closed_at))]
            region = live_region or window.region or self._region
            pue = self._pue if window.pue is None else window.pue
            if window.parent_id is not None and (window.region is not None or window.pue is not None):
                extra.extend(_priced_apart(window, region, pue, self._open.get(window.parent_id),
                                           self._region, self._pue))
            if energy_j < 0.0:
                energy_j = sum(c.energy_j for c in measured.components)
            # Priced here, as Footprint.repriced() would (one construction, not two). Built by
            # the maker (every field named, none defaulted), not the frozen __init__: a third of
            # the bare window's bookkeeping was its 19 ``object.__setattr__`` calls. Same object.
            fp = make_footprint(
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
                co2e_g=co2e_g(energy_j, pue, region.g_per_kwh),
                attribution=measured.attribution,
                warnings=(tuple(measured.warnings) + tuple(live_warnings) + tuple(extra)
                          if measured.warnings or live_warnings or extra else ()),
                nbcarbon_version=self._version,
                kind="cell",
                schema=SCHEMA,
                parent_id=window.parent_id,
                iterations=iterations,
            )
            self.records.append(fp)
            self._held.add(fp.id)
            self._sources[fp.id] = window.source
            if window.region is not None:
                self._pinned_region.add(fp.id)
            if window.pue is not None:
                self._pinned_pue.add(fp.id)
            excess = len(self.records) - RECORDS_KEPT
            if excess > 0:
                self._forget(excess)
            listeners = list(self._record_listeners) if self._record_listeners else ()
        if listeners:
            _tell(listeners, fp, self.add_notice, "a new record", self._failed_listeners)
        return fp

    def _forget(self, n: int) -> None:
        """Move the ``n`` oldest records out of the session and into the running totals.

        Only top-level records enter the totals; a nested one leaves before its parent (it closed
        first), which will carry its energy.
        """
        for old in self.records[:n]:
            nested = old.parent_id is not None and (old.parent_id in self._held
                                                    or old.parent_id in self._open)
            if not nested:
                self._forgotten.add(old, old.id in self._pinned_region, old.id in self._pinned_pue)
            self._sources.pop(old.id, None)
            self._held.discard(old.id)
            self._pinned_region.discard(old.id)
            self._pinned_pue.discard(old.id)
        del self.records[:n]

    def _price_live(self, window: Window, duration_s: float) -> tuple[PricedRegion | None, list[str]]:
        """The region priced by :attr:`pricer` over the window's own interval (``None`` when off)."""
        pricer = self.pricer
        if pricer is None:
            return None, []
        from datetime import datetime, timedelta  # only with live intensity on

        started = datetime.fromisoformat(window.started_at)
        region, warnings = pricer(window.region or self._region, started,
                                  started + timedelta(seconds=duration_s))
        return region, list(warnings)

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

        The code is looked up before anything changes, so a bad code loses nothing. Records are
        re-priced from their stored energy with the new region's bundled annual figure, also those
        priced with live data (re-asking a provider for every old record would block); cells run
        after this are priced live again when live data is on.
        """
        region = priced(intensity.lookup(code), chosen_by)
        with self._lock:
            self._region = region
            return self._reprice()

    def set_pue(self, pue: object, name: str = "PUE") -> list[Footprint]:
        value = parse_pue(pue, name)
        with self._lock:
            self._pue = value
            return self._reprice(region_too=False)

    def _reprice(self, region_too: bool = True) -> list[Footprint]:
        """Re-price the unpinned records; ``region_too=False`` (a PUE change) keeps each record's
        own region, so a cell priced with live data keeps its intensity."""
        changed = []
        if region_too:
            self._forgotten.region_changed(self._region.g_per_kwh)
        for records in (self.retired, self.records):
            for i, fp in enumerate(records):
                new = fp.repriced(
                    None if fp.id in self._pinned_region or not region_too else self._region,
                    None if fp.id in self._pinned_pue else self._pue,
                )
                if new != fp:
                    records[i] = new
                    changed.append(new)
        _tell(list(self._reprice_listeners), changed, self.add_notice, "re-pricing",
              self._failed_listeners)
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
        """Sums over the session's top-level records, including those no longer in ``records``.

        Nested windows (``parent_id``) are detail of their parent and never added again.
        """
        with self._lock:
            records = top_level(self.records, frozenset(self._open))
            old = self._forgotten
            by_component: dict[str, float] = dict(old.by_component_j)
            old_co2e_g = old.co2e_g(self._pue)
        for fp in records:
            for name, e in fp.energy_by_component().items():
                by_component[name] = by_component.get(name, 0.0) + e
        return Totals(
            cells=old.cells + len(records),
            duration_s=old.duration_s + sum(fp.duration_s for fp in records),
            energy_j=old.energy_j + sum(fp.energy_j for fp in records),
            co2e_g=old_co2e_g + sum(fp.co2e_g for fp in records),
            energy_by_component_j=by_component,
        )

    def reset(self) -> None:
        """Start the session's totals afresh (saved notebooks and the ledger keep their records).

        The records leave every total but are kept aside (:attr:`retired`): their readouts are
        still in the notebook, and a region or PUE change must reach them too, or the notebook
        would hold cells priced for two grids. Their pins and sources stay with them.
        """
        with self._lock:
            self.retired.extend(self.records)
            self.records.clear()
            self._held.clear()
            self._forgotten = _Forgotten()
            excess = len(self.retired) - RECORDS_KEPT
            if excess > 0:
                for old in self.retired[:excess]:
                    self._sources.pop(old.id, None)
                    self._pinned_region.discard(old.id)
                    self._pinned_pue.discard(old.id)
                del self.retired[:excess]


def _priced_apart(window: Window, region: PricedRegion, pue: float, parent: Window | None,
                  session_region: PricedRegion, session_pue: float) -> list[str]:
    """The warning of a nested window pinned (``track(region=, pue=)``) to other pricing than
    the window it is in: its own line shows its price, but its joules are counted once, in the
    enclosing window's total, at that window's price; the record says so rather than let the
    two figures be added or compared as if they agreed."""
    if parent is None:
        return []
    parent_region = parent.region or session_region
    parent_pue = session_pue if parent.pue is None else parent.pue
    if region.code == parent_region.code and pue == parent_pue:
        return []
    # Named without the enclosing window's pricing, which a later re-price may change.
    return [f"priced for {region.code} · PUE {pue:g} as asked; its energy is counted once, in the "
            "total of the window it is in, at that window's price"]


def _tell(listeners: Sequence[Callable[[Any], None]], value: Any, notify: Callable[[str], None],
          doing: str, said: set[tuple[str, str, str]]) -> None:
    """Call each listener with ``value``; one that fails costs a notice, not the others' turn.

    Why: the readouts, summaries, ledger and dashboard each listen; a bug in one (a widget
    refusing a value) must not leave the readouts unpriced or the record unkept. Each listener's
    kind of failure is said once (``said``), not under every cell. A Ctrl-C still stops them all.
    """
    for listener in listeners:
        try:
            listener(value)
        except Exception as exc:  # noqa: BLE001 - said once, the rest still run
            name = getattr(listener, "__qualname__", type(listener).__name__)
            key = (name, doing, type(exc).__name__)
            if key in said:
                continue
            said.add(key)
            detail = (str(exc).splitlines() or [""])[0][:200]
            notify(f"nbcarbon: {name} failed on {doing} ({type(exc).__name__}"
                   f"{': ' + detail if detail else ''}); everything else was updated.")


def _version() -> str:
    from . import __version__

    return __version__


def _clean(channels: list[Channel], begin: tuple[Reading, ...], end: tuple[Reading, ...],
           duration_s: float) -> tuple[Measured | None, float]:
    """The window's components and their energy when there is nothing to say about its
    readings, else ``(None, 0)``.

    Most windows are clean: every reading at both ends good, no reading refused in between (the
    tally is the same object), no standing caveat, no failed background read (checked by the
    caller). Then :func:`~nbcarbon.footprint.measure` would add no warning, and this builds the
    same components with less work on the cell's path; anything else goes through ``measure``.
    ``tests/test_perf_paths.py`` checks that both agree.
    """
    components = []
    machine = False
    total_j = 0.0
    for ch, b, e in zip(channels, begin, end, strict=True):
        if (e.error is not None or b.error is not None or e.total_j is None or b.total_j is None
                or ch.caveat or e.anomalies is not b.anomalies or e.anomalies.held):
            return None, 0.0
        energy_j = e.total_j - b.total_j
        if energy_j < 0.0:
            energy_j = 0.0
        total_j += energy_j
        components.append(make_component(ch.component, ch.device, ch.method, energy_j,
                                          energy_j / duration_s if duration_s > 0 else 0.0, None))
        if ch.attribution == "machine":
            machine = True
    return Measured(components, [], "machine" if machine else "process"), total_j


_WINDOW_FIELDS = tuple(f.name for f in fields(Window))


def _window(*values: Any) -> Window:
    """``Window(*values)`` without the frozen dataclass's per-field ``object.__setattr__``
    (half its cost; every window's start makes one). Same object: fields, equality, repr and
    ``dataclasses.replace`` all work as on one built by ``Window(...)``."""
    window = object.__new__(Window)
    window.__dict__.update(zip(_WINDOW_FIELDS, values, strict=True))
    return window


def new_id() -> str:
    """A random (version 4) UUID in hex, as ``uuid.uuid4().hex`` gives it.

    Why not ``uuid``: importing it costs ~2 ms (it imports ``platform``) and each id ~3 us, on
    every window. Why not one ``os.urandom`` call per id: that call lets go of the interpreter
    lock for its system call, and in a kernel the IOPub thread, busy with the cell's first
    messages, takes it then; taking it back cost a measured cell 0.02-0.09 ms (three A/B runs
    in one kernel, 200 to 800 cells each). So ids are made :data:`_IDS_PER_DRAW` at a time from
    one call, and a cell takes one from the pool. The pool is emptied in a forked child (its ids
    are the parent's too), and ``deque.popleft`` hands each id to one thread only.
    """
    try:
        return _ids.popleft()
    except IndexError:
        _draw_ids()
        return new_id()


#: Ids made per ``os.urandom`` call (16 random bytes each).
_IDS_PER_DRAW = 64
_ids: deque[str] = deque()
_UUID_CLEAR = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)  # version and variant bits
_UUID_SET = (0x4 << 76) | (0x2 << 62)


def _draw_ids() -> None:
    """Put :data:`_IDS_PER_DRAW` fresh random ids into the pool."""
    data = os.urandom(16 * _IDS_PER_DRAW)
    _ids.extend(f"{(int.from_bytes(data[i:i + 16], 'big') & _UUID_CLEAR) | _UUID_SET:032x}"
                for i in range(0, len(data), 16))


if hasattr(os, "register_at_fork"):  # a forked child must not repeat its parent's next ids
    os.register_at_fork(after_in_child=_ids.clear)

_second: tuple[int, str] = (-1, "")  # the last whole UTC second formatted, and its text


def utc_iso(t: float) -> str:
    """``t`` (seconds since the epoch) as ``datetime.isoformat(timespec="milliseconds")`` writes
    an aware UTC time, e.g. ``2026-11-23T20:14:10.123+00:00``.

    Why by hand: every window records its start this way, and ``datetime.now().isoformat()``
    costs ~2 us (and importing ``datetime`` ~1 ms); the text of the current second is cached.
    """
    global _second
    whole = int(t)
    us = round((t - whole) * 1e6)  # as datetime.fromtimestamp rounds
    if us >= 1_000_000:
        whole, us = whole + 1, 0
    cached = _second
    if cached[0] != whole:
        cached = _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{cached[1]}.{us // 1000:03d}+00:00"
