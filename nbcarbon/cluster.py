"""The energy a Dask cluster spends inside a measured window, added to the notebook's record.

Why: a cell that calls ``client.compute(...)`` spends most of its energy in the workers, which the
notebook's own meters never see. :class:`MeterPlugin` runs nbcarbon's meters (the same
:func:`~nbcarbon.meters.probe.probe` and :class:`~nbcarbon.sampler.Sampler`) in every worker process,
present and future, and answers one small request: the cumulative joules of each channel now.
At a window's boundaries :class:`ClusterCollector` asks the scheduler to fan that request out to
every worker, all under one timeout, so a dead or stuck worker costs its own reading and never the
cell; :func:`combine` turns the two snapshots into components named after the workers. The
scheduler is called directly when it runs in the notebook's process (a ``LocalCluster``), and
otherwise through a comm op nbcarbon adds to it (:func:`_install`): no pickled function, no log
line on the scheduler at each boundary.

Counting each host once: machine-wide counters (RAPL, NVML) read the same hardware from every
worker of a host, so each worker also reports a host key, a salted SHA-256 of the kernel's boot
id (shared by every container on a machine; the machine id and host name where there is none) and
of the real path of its powercap root. The salt is random per collector and the hash is computed
on the worker, so the key tells workers apart and reveals nothing else. Machine-wide channels are
taken from one worker per host key; process models (CPU time, memory) are counted per worker.
A worker on the notebook's own host adds nothing the notebook already counts: not its host's
counters, and not its process models when it runs in the notebook's process tree (a LocalCluster).
A thread worker inside the notebook's own process (``LocalCluster(processes=False)``) runs no
meters at all: the notebook's meters already count every thread of that process.

GPUs are counted once per board, by a salted hash of their NVML UUID (or, without one, of the
machine and PCI bus id), never by index: two pods or Slurm jobs on one node that each see their
own GPU as ``gpu0`` are two GPUs, and two workers that share one GPU count it once.

Requires ``distributed`` on the client, the scheduler and the workers, and nbcarbon importable on
all three (the scheduler runs the fan-out, the workers the meters).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import socket
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distributed import Scheduler, WorkerPlugin
from distributed.core import Status

from .attribution import FRACTION_DIGITS
from .footprint import Component, Share
from .meters.share import Split, split_snapshots

if TYPE_CHECKING:
    from distributed import Client

    from .meters.base import Channel
    from .session import Session

#: The worker plugin's name (registering again under it replaces the old one on every worker).
PLUGIN_NAME = "nbcarbon-meters"
#: The worker handler (comm op) that answers with the current counters.
HANDLER = "nbcarbon_counters"
#: The scheduler handler (comm op) that asks every worker (:func:`_ask_workers`) and answers with
#: their rows; added to the scheduler by :func:`_install`.
SCHEDULER_HANDLER = "nbcarbon_collect"
#: How long one worker may take to answer at a boundary before it is reported missing.
DEFAULT_TIMEOUT_S = 2.0
#: Extra time the whole collection may take beyond the per-worker timeout (scheduler round trip).
_GRACE_S = 1.0
#: Compact JSON, with one encoder made once (``json.dumps`` with separators makes one per call).
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


# -- host identity -----------------------------------------------------------------------------
def _first_line(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.readline().strip()
    except OSError:
        return ""


def _machine() -> str:
    """The running kernel's boot id (shared by every container of one machine), or the machine
    id and host name where there is none. Never leaves the process unhashed."""
    machine = _first_line("/proc/sys/kernel/random/boot_id")
    if not machine:
        machine = _first_line("/etc/machine-id") + "|" + socket.gethostname()
    return machine


_TOKEN: tuple[int, str] | None = None


def process_token() -> str:
    """A random name for this process (a forked child gets its own): equal for a worker and the
    notebook exactly when the worker is a thread of the notebook's process."""
    global _TOKEN
    pid = os.getpid()
    if _TOKEN is None or _TOKEN[0] != pid:
        _TOKEN = (pid, uuid.uuid4().hex)
    return _TOKEN[1]


def device_identity(meter: Any, machine: str | None = None) -> str | None:
    """What names the hardware behind a machine-wide meter wherever it is read, or ``None``.

    A GPU's UUID is unique to the board; its PCI bus id only within one machine, so it is
    qualified by ``machine`` (default: this one's boot id). RAPL packages have neither: they
    are told apart by the host key. The text never leaves the process unhashed
    (:func:`device_key`).
    """
    uuid_text = getattr(meter, "uuid", None)
    if isinstance(uuid_text, str) and uuid_text:
        return f"uuid:{uuid_text}"
    bus_id = getattr(meter, "pci_bus_id", None)
    if isinstance(bus_id, str) and bus_id:
        return f"pci:{_machine() if machine is None else machine}/{bus_id}"
    return None


def device_key(salt: str, identity: str | None) -> str | None:
    """The salted hash of a :func:`device_identity` that workers send instead of the identity."""
    if identity is None:
        return None
    return hashlib.sha256(f"{salt}\0device\0{identity}".encode()).hexdigest()[:32]


def host_key(salt: str, powercap_root: Path | None) -> str:
    """A salted hash naming the counters a process reads: equal for two processes exactly when they
    share the kernel (hence its RAPL and NVML counters) and the powercap root.

    The boot id is shared by every container of one machine and differs between machines; where it
    is missing (not Linux) the machine id and host name stand in. Only the hash leaves the process.
    ``powercap_root=None`` names the kernel alone (whose process ids two processes share).
    """
    machine = _machine()
    root = "" if powercap_root is None else os.path.realpath(powercap_root)
    return hashlib.sha256(f"{salt}\0{machine}\0{root}".encode()).hexdigest()[:32]


# -- worker side -------------------------------------------------------------------------------
class MeterPlugin(WorkerPlugin):
    """Runs nbcarbon's meters in a worker process and answers :data:`HANDLER` requests.

    The powercap root and sampler period come from the worker's own ``NBCARBON_POWERCAP_ROOT``
    and ``NBCARBON_INTERVAL`` (the worker is the outer layer of its process). :meth:`setup` never
    raises: a worker whose meters cannot start says why in each answer.

    ``origin`` is the :func:`process_token` of the process that registered the plugin (the
    notebook): a worker running as threads of that very process starts no meters, since the
    notebook's own already count the whole process. ``nvml`` is the NVML module the meters use
    (``None``: ``pynvml``); tests hand over a fake.
    """

    name = PLUGIN_NAME

    def __init__(self, use_gpu: bool = True, *, origin: str | None = None, nvml: Any = None) -> None:
        self.use_gpu = use_gpu
        self.origin = origin
        self.nvml = nvml
        self._sampler: Any = None
        self._state: dict[str, Any] = {}
        # salt -> (host key, kernel key, channels with device keys, the answer's fixed part as
        # JSON): hashed and encoded once per collector, not at every boundary (each host key
        # also reads the boot id).
        self._keyed: dict[str, tuple[str | None, str, list[list[Any]], str]] = {}

    def setup(self, worker: Any) -> None:
        from .meters.probe import probe
        from .sampler import Sampler
        from .settings import Settings

        started_s = time.monotonic()
        in_origin = self.origin is not None and self.origin == process_token()
        state: dict[str, Any] = {
            "instance": uuid.uuid4().hex, "pid": os.getpid(), "started_s": started_s,
            "root": None, "channels": [], "identities": [], "notes": [], "error": None,
            "named_by_host": socket.gethostname().lower() in str(worker.name).lower(),
            "in_origin": in_origin,
        }
        if not in_origin:
            try:
                settings = Settings.from_environ(os.environ)
                result = probe(settings.powercap_root, nvml=self.nvml, pid=os.getpid(), use_gpu=self.use_gpu,
                               proc_stat=settings.proc_stat)
                sampler = Sampler(result.meters, settings.interval_s, shares=result.shares)
                sampler.start()
            except Exception as exc:  # noqa: BLE001 - a worker without meters must still answer why
                state["error"] = f"meters could not start: {type(exc).__name__}: {exc}"[:300]
            else:
                self._sampler = sampler
                state["root"] = settings.powercap_root
                state["notes"] = list(result.notes)
                state["channels"] = [
                    [m.channel.component, m.channel.device, m.channel.method, m.channel.attribution]
                    for m in sampler.meters
                ]
                # Raw identities stay here; each answer sends them hashed with that request's salt.
                state["identities"] = [device_identity(m) if m.channel.attribution == "machine" else None
                                       for m in sampler.meters]
                # Which machine-wide channels each share meter splits (by index), and by what:
                # the notebook splits this worker's part of its host the way a kernel's is split.
                state["shares"] = [[share.basis, [i for i, m in enumerate(sampler.meters)
                                                  if share.covers(m.channel)]]
                                   for share in sampler.shares]
        self._state = state
        self._keyed = {}
        worker.handlers[HANDLER] = self.answer

    def teardown(self, worker: Any) -> None:
        if worker.handlers.get(HANDLER) == self.answer:
            del worker.handlers[HANDLER]
        sampler, self._sampler = self._sampler, None
        if sampler is not None:
            sampler.close()

    def _keys(self, salt: str) -> tuple[str | None, str, list[list[Any]], str]:
        """The salted keys of this worker's host, kernel and devices, and the part of each answer
        that does not change between boundaries as JSON members (``,"instance":...}``), cached
        per salt."""
        found = self._keyed.get(salt)
        if found is None:
            state = self._state
            root = state.get("root")
            identities = state.get("identities", [])
            channels = [[*c, device_key(salt, identities[i] if i < len(identities) else None)]
                        for i, c in enumerate(state.get("channels", []))]
            host, kernel = host_key(salt, root) if root is not None else None, host_key(salt, None)
            fixed = _ENCODE({
                "instance": state.get("instance"), "pid": state.get("pid"), "host": host,
                "kernel": kernel, "in_origin": state.get("in_origin", False), "channels": channels,
                "shares": state.get("shares", []), "error": state.get("error"),
                "named_by_host": state.get("named_by_host", False),
            })
            found = (host, kernel, channels, "," + fixed[1:])
            if len(self._keyed) >= 16:  # collectors come and go; a few salts are live at once
                del self._keyed[next(iter(self._keyed))]
            self._keyed[salt] = found
        return found

    def answer(self, salt: str = "") -> str:
        """:meth:`counters` as the handler sends it: one JSON string.

        Why a string: distributed walks every message it sends and receives, key by key, looking
        for objects to serialize; with 32 workers that walk of a nested answer cost more (about
        5 ms a boundary on 2 cores) than reading the meters. A string crosses the scheduler as
        one opaque value; :func:`parse_answers` decodes it (and still takes a dict, as older
        workers answer). Only the readings are encoded at each boundary; the rest of the object
        (names, keys, channels) is encoded once per salt (:meth:`_keys`).
        """
        totals, uses = self._read_now()
        now = _ENCODE({"age_s": time.monotonic() - self._state.get("started_s", time.monotonic()),
                       "process": process_token(), "totals": totals, "uses": uses})
        return now[:-1] + self._keys(salt)[3]

    def _read_now(self) -> tuple[list[list[Any]], list[Any]]:
        """Every meter's ``[total_j, error]`` and every share meter's use, read now."""
        sampler = self._sampler
        if sampler is None:
            return [], []
        return ([[r.total_j, r.error] for r in sampler.read_all()],
                [list(u) if isinstance(u, tuple) else str(u) for u in sampler.read_shares()])

    def counters(self, salt: str = "") -> dict[str, Any]:
        """The answer to one boundary request: every channel's cumulative joules now."""
        state = self._state
        totals, uses = self._read_now()
        host, kernel, channels, _ = self._keys(salt)
        return {
            "instance": state.get("instance"), "pid": state.get("pid"),
            "age_s": time.monotonic() - state.get("started_s", time.monotonic()),
            "host": host, "kernel": kernel, "process": process_token(),
            "in_origin": state.get("in_origin", False),
            "channels": channels, "totals": totals,
            "shares": state.get("shares", []), "uses": uses,
            "error": state.get("error"),
            "named_by_host": state.get("named_by_host", False),
        }


# -- scheduler side ----------------------------------------------------------------------------
def _plain(name: Any) -> Any:
    """A worker's name as a comm message carries it (msgpack): text and numbers as they are,
    anything else as its text (all :func:`display_name` looks at)."""
    return name if name is None or isinstance(name, (str, int, float)) else str(name)


def _outcome(call: "asyncio.Future[Any]", timeout_s: float, op: str) -> tuple[Any, str | None]:
    """``(answer, None)`` or ``(None, why)`` for one worker's finished request."""
    if call.cancelled():
        return None, f"no answer within {timeout_s:g} s"
    exc = call.exception()
    if exc is None:
        return call.result(), None
    if isinstance(exc, asyncio.TimeoutError):
        return None, f"no answer within {timeout_s:g} s"
    text = str(exc).split("\n")[0][:160]
    if op in text or isinstance(exc, KeyError):
        text = "no nbcarbon meters (the plugin is not set up on it)"
    return None, f"{type(exc).__name__}: {text}".rstrip(": ")


async def _ask_workers(scheduler: Any, salt: str, timeout_s: float, op: str = HANDLER) -> list[list[Any]]:
    """Runs on the scheduler's event loop: asks every worker for its counters at once, all under
    one deadline ``timeout_s`` away, and returns ``[address, name, answer or None, why or None]``
    per worker the scheduler knows.

    One request per worker over the scheduler's pooled comms (kept open between boundaries), each
    a task of its own; a worker that has not answered by the deadline is cancelled (its comm is
    closed, as :func:`asyncio.wait_for` would) and costs its own reading only. One deadline for
    all, not one :func:`asyncio.wait_for` each: the same bound, without a second task and a timer
    per worker (with 32 workers, about 0.3 ms of the scheduler's time at every boundary).
    """
    workers = [(ws.address, ws.name) for ws in scheduler.workers.values()]
    if not workers:
        return []
    pool = scheduler.rpc

    async def ask(address: str) -> Any:
        return await getattr(pool(address), op)(salt=salt)

    calls = [asyncio.ensure_future(ask(address)) for address, _ in workers]
    try:
        await asyncio.wait(calls, timeout=timeout_s)
    finally:  # at the deadline, and when this collection is itself cancelled
        late = [call for call in calls if not call.done()]
        for call in late:
            call.cancel()
    if late:
        await asyncio.wait(late)  # their comms closed before the answer is sent back
    return [[address, _plain(name), *_outcome(call, timeout_s, op)]
            for (address, name), call in zip(workers, calls, strict=True)]


async def _fan_out(salt: str, timeout_s: float, dask_scheduler: Any = None) -> list[list[Any]]:
    """:func:`_ask_workers` through ``client.run_on_scheduler``: the route of a scheduler that
    cannot take :data:`SCHEDULER_HANDLER` (and of older nbcarbon clients)."""
    return await _ask_workers(dask_scheduler, salt, timeout_s)


def _install(dask_scheduler: Any = None) -> bool:
    """Runs on the scheduler (through ``run_on_scheduler``, once per scheduler): adds the comm
    op :data:`SCHEDULER_HANDLER`, so that a boundary is one plain request to the scheduler.

    Why not ``run_on_scheduler`` at every boundary: each call pickles the function and its
    arguments on the client and unpickles them on the scheduler, inspects the function's
    signature, logs an event and an INFO line on the scheduler ("Run out-of-band function") and
    pickles the answer: about 0.4 ms of the scheduler's and the client's time per boundary, and
    two log lines per cell in a remote scheduler's log.
    """
    scheduler = dask_scheduler

    async def collect(comm: Any = None, salt: str = "",
                      timeout_s: float = DEFAULT_TIMEOUT_S) -> list[list[Any]]:
        # ``comm`` first: distributed passes the comm to a handler whose first argument is so named.
        return await _ask_workers(scheduler, str(salt), float(timeout_s))

    scheduler.handlers[SCHEDULER_HANDLER] = collect
    return True


def _scheduler_here(client: Any) -> Any:
    """The client's scheduler when it runs in this process on the event loop running now (a
    ``LocalCluster``, and the cluster managers that keep the scheduler in the notebook, such as
    dask-jobqueue's): it is then asked without a comm. ``None`` otherwise."""
    scheduler = getattr(getattr(client, "cluster", None), "scheduler", None)
    if scheduler is None or not isinstance(scheduler, Scheduler):
        return None
    try:
        if scheduler.status != Status.running or scheduler.address != client.scheduler.address:
            return None
        if scheduler.loop.asyncio_loop is not asyncio.get_running_loop():
            return None
    except Exception:  # noqa: BLE001 - anything unexpected: ask it through a comm
        return None
    return scheduler


# -- notebook side -----------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerReading:
    """One worker's answer at one boundary."""

    address: str
    name: str
    instance: str
    pid: int
    host: str | None
    kernel: str | None
    age_s: float
    #: (component, device, method, attribution[, device key]): the key (a salted hash of the
    #: board's identity, :func:`device_key`) names a GPU across workers; absent or None for
    #: channels without one (RAPL, models) and from workers of older nbcarbon versions.
    channels: tuple[tuple[Any, ...], ...]
    totals: tuple[tuple[float | None, str | None], ...]
    error: str | None = None
    #: The worker's process (:func:`process_token`), and whether it is threads of the process
    #: that registered the plugin (and so runs no meters).
    process: str | None = None
    in_origin: bool = False
    #: ``(basis, channel indexes)`` per share meter of the worker, and each one's cumulative use
    #: now (a list of numbers, or the read's failure message); empty from older workers.
    shares: tuple[tuple[str, tuple[int, ...]], ...] = ()
    uses: tuple[Any, ...] = ()


@dataclass
class Snapshot:
    """Every worker's counters at one boundary, and why the others could not be read."""

    readings: dict[str, WorkerReading] = field(default_factory=dict)  # by address
    failed: dict[str, tuple[str, str]] = field(default_factory=dict)  # address -> (name, why)
    collect_s: float = 0.0


def display_name(name: Any, address: str, named_by_host: bool, index: int) -> str:
    """The worker's Dask name as a device label; ``worker-N`` for integer names (LocalCluster) and
    where the name would reveal an address or a host name."""
    text = str(name)
    if isinstance(name, int) or text.isdigit():
        return f"worker-{text}"
    if named_by_host or text == address or "://" in text or not text:
        return f"worker-{index}"
    return text


def parse_answers(rows: Iterable[Sequence[Any]], names: dict[str, str], collect_s: float) -> Snapshot:
    """The fan-out's rows as a :class:`Snapshot`; ``names`` keeps display names stable per address."""
    snap = Snapshot(collect_s=collect_s)
    for address, name, answer, why in rows:
        if isinstance(answer, str):  # MeterPlugin.answer: JSON (a dict from older workers)
            try:
                answer = json.loads(answer)
            except ValueError:
                answer, why = None, "an answer that is not JSON"
            if answer is not None and not isinstance(answer, dict):
                answer, why = None, "an answer that is not a JSON object"
        named_by_host = bool(answer and answer.get("named_by_host"))
        label = names.get(address) or display_name(name, address, named_by_host, len(names))
        names[address] = label
        if answer is None:
            snap.failed[address] = (label, why or "no answer")
            continue
        snap.readings[address] = WorkerReading(
            address=address, name=label, instance=str(answer.get("instance")),
            pid=int(answer.get("pid") or 0), host=answer.get("host"), kernel=answer.get("kernel"),
            age_s=float(answer.get("age_s") or 0.0),
            channels=tuple(tuple(c) for c in answer.get("channels", [])),
            totals=tuple((t[0], t[1]) for t in answer.get("totals", [])),
            error=answer.get("error"), process=answer.get("process"),
            in_origin=bool(answer.get("in_origin")),
            shares=_shares_of(answer.get("shares")), uses=tuple(answer.get("uses") or ()),
        )
    return snap


def _shares_of(value: Any) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """A worker's share meters from its answer; anything malformed is no share (charged whole)."""
    out = []
    try:
        for basis, indexes in value or ():
            out.append((str(basis), tuple(int(i) for i in indexes)))
    except (TypeError, ValueError):
        return ()
    return tuple(out)


def _worker_split(e: WorkerReading, b: WorkerReading | None, index: int,
                  duration_s: float) -> tuple[Split | None, bool]:
    """The worker's share of its host's channel ``index`` over the window, and whether the channel
    is split at all (a share meter covers it). ``None`` with ``True``: covered, not worked out."""
    for k, (basis, indexes) in enumerate(e.shares):
        if index not in indexes:
            continue
        begin = b.uses[k] if b is not None and k < len(b.uses) else None
        end = e.uses[k] if k < len(e.uses) else None
        if b is None:
            return Split(None, basis, "its meters started during the window"), True
        if isinstance(begin, str) or isinstance(end, str) or begin is None or end is None:
            return Split(None, basis, str(end if isinstance(end, str) else begin or "no reading")), True
        try:
            return split_snapshots(basis, begin, end, duration_s), True
        except (TypeError, ValueError) as exc:
            return Split(None, basis, f"an answer that cannot be split ({type(exc).__name__})"), True
    return None, False


@dataclass(frozen=True)
class Local:
    """What the notebook's own session already counts, so the cluster adds none of it twice."""

    host: str | None = None
    kernel: str | None = None
    machine_channels: frozenset[tuple[str, str, str]] = frozenset()
    process_channels: frozenset[tuple[str, str]] = frozenset()  # (component, method)
    pids: frozenset[int] = frozenset()  # the notebook's process tree
    process: str | None = None  # the notebook's process_token()
    devices: frozenset[str] = frozenset()  # device keys of the boards the notebook measures
    #: machine channels of the notebook with no identity (compared by host and name, as RAPL)
    unidentified: frozenset[tuple[str, str, str]] = frozenset()
    #: the notebook's followed processes (the CPU-time model's tree), detached ones included
    tree: Any = field(default=None, compare=False, hash=False)
    #: the notebook session's attribution mode: ``share`` splits workers' machine-wide channels
    attribution: str = "machine"


def combine(
    begin: Snapshot, end: Snapshot, duration_s: float, local: Local = Local()
) -> tuple[list[Component], list[str]]:
    """Components (``dask:<worker>/<device>``) and warnings for one window from two snapshots.

    A worker read at both ends counts its deltas; one whose meters started during the window (it
    joined, or was restarted) counts from zero; one missing at the end is named in a warning.
    Machine-wide channels are taken once per host key, preferring a worker read at both ends.
    """
    warnings: list[str] = []
    # Thread workers of the notebook's own process: its meters count all of that process.
    begin, end = _without_own_process(begin, local), _without_own_process(end, local)
    # (worker, begin totals or None when its meters started in the window)
    usable: list[tuple[WorkerReading, tuple[tuple[float | None, str | None], ...] | None]] = []
    slack_s = end.collect_s + begin.collect_s + 0.1
    for address, e in sorted(end.readings.items(), key=lambda kv: kv[1].name):
        if e.in_origin:
            warnings.append(f"dask worker {e.name} not measured: it runs as threads inside the process "
                            "of another client (the one that attached the cluster first)")
            continue
        if e.error is not None:
            warnings.append(f"dask worker {e.name} not measured: {e.error}")
            continue
        b = begin.readings.get(address)
        if b is not None and b.instance == e.instance and b.error is None:
            usable.append((e, b.totals))
        elif e.age_s <= duration_s + slack_s:
            usable.append((e, None))
            warnings.append(f"dask worker {e.name} joined during the window: counted from its start")
        else:
            why = begin.failed.get(address, ("", "not read"))[1]
            warnings.append(f"dask worker {e.name} not measured: not read at the window's start ({why})")
    ended = {e.instance for e in end.readings.values()}
    answered_hosts = {e.host for e, _ in usable}
    for address, b in sorted(begin.readings.items(), key=lambda kv: kv[1].name):
        if b.error is not None or b.instance in ended or b.in_origin:
            continue
        why = end.failed.get(address, ("", "left the cluster"))[1]
        tail = (" (its host's machine-wide counters are counted through another worker)"
                if b.host in answered_hosts else "")
        warnings.append(f"dask worker {b.name} missing at the window's end ({why}); "
                        f"its energy in this window is not counted{tail}")
    for address, (name, why) in sorted(end.failed.items(), key=lambda kv: kv[1][0]):
        if address not in begin.readings:
            warnings.append(f"dask worker {name} not measured: {why}")

    components: list[Component] = []
    taken: set[tuple[str | None, str, str, str]] = set()
    # Workers' shares of one host channel or board, added up once all are seen (_pooled_shares).
    pooled: dict[tuple[Any, ...], list[tuple[str, str, str, float, Split]]] = {}
    # Full-window workers first, so a host's counters come from one read at both ends.
    for e, b_totals in sorted(usable, key=lambda u: (u[1] is None, u[0].name)):
        for i, channel in enumerate(e.channels):
            component, device, method, attribution = channel[:4]
            identity = channel[4] if len(channel) > 4 else None
            split = None
            if attribution == "machine" and local.attribution == "share":
                b_reading = begin.readings.get(e.address) if b_totals is not None else None
                split, covered = _worker_split(e, b_reading, i, duration_s)
                if covered and (split is None or split.fraction is None):
                    why = split.why if split is not None else "no reading"
                    warnings.append(f"{component} dask:{e.name}/{device} ({method}): its share could "
                                    f"not be worked out ({why}); its host's energy is charged whole")
                    split = None
            if attribution == "machine":
                same_host = e.host is not None and e.host == local.host
                if identity is not None:
                    # A board by its identity: two pods' "gpu0" on one node are two GPUs.
                    key: tuple[Any, ...] = ("device", identity)
                    notebook_has = identity in local.devices or (
                        same_host and (component, device, method) in local.unidentified)
                else:
                    key = (e.host, component, device, method)
                    notebook_has = same_host and (component, device, method) in local.machine_channels
                if split is not None:
                    # Each worker's own share of its host, added per worker (shares of one
                    # machine are disjoint); a worker inside the notebook's process tree is
                    # already in the notebook's own share, where the notebook measures it too.
                    if notebook_has and ((e.kernel == local.kernel and e.pid in local.pids)
                                         or split.idle):
                        continue  # in the notebook's share, or idle power the notebook charges
                else:
                    if key in taken:
                        continue
                    taken.add(key)
                    if notebook_has:
                        continue
            elif e.kernel == local.kernel and e.pid in local.pids and \
                    (component, method) in local.process_channels:
                continue
            end_j, end_err = e.totals[i] if i < len(e.totals) else (None, "no reading")
            begin_j = 0.0 if b_totals is None else b_totals[i][0] if i < len(b_totals) else None
            label = f"dask:{e.name}/{device}"
            if end_j is None or begin_j is None:
                warnings.append(f"{component} {label} ({method}) not measured: {end_err or 'no reading'}")
                continue
            if end_err is not None:
                warnings.append(f"{component} {label} ({method}) partly measured: {end_err}")
            energy_j = max(0.0, end_j - begin_j)
            if split is not None and split.fraction is not None:
                pooled.setdefault(key, []).append((component, label, method, energy_j, split))
                continue
            power_w = energy_j / duration_s if duration_s > 0 else 0.0
            components.append(Component(component, label, method, energy_j, power_w))
    components.extend(_pooled_shares(pooled, duration_s))
    return components, warnings


def _pooled_shares(pooled: dict[tuple[Any, ...], list[tuple[str, str, str, float, Split]]],
                   duration_s: float) -> list[Component]:
    """One component per host channel (or GPU board): its energy, read by the first worker, times
    the workers' shares added up, at most the whole.

    Why pooled: shares of one machine are disjoint only when each sees the others; two workers on
    an idle machine, or on a GPU nobody holds, are each "alone" and would each be charged it all.
    """
    out = []
    for entries in pooled.values():
        component, label, method, energy_j, first = entries[0]
        fraction = round(min(1.0, sum(max(0.0, split.fraction or 0.0) for *_, split in entries)),
                         FRACTION_DIGITS)
        charged_j = energy_j * fraction
        out.append(Component(component, label, method, charged_j,
                             charged_j / duration_s if duration_s > 0 else 0.0,
                             Share(first.basis, fraction, energy_j)))
    return out


def _without_own_process(snap: Snapshot, local: Local) -> Snapshot:
    if local.process is None or not any(r.process == local.process for r in snap.readings.values()):
        return snap
    return replace(snap, readings={a: r for a, r in snap.readings.items() if r.process != local.process})


class ClusterCollector:
    """Adds a Dask cluster's energy to every window of a session (see :meth:`Session.add_collector`).

    ``begin()`` returns a snapshot of every worker's counters; ``end(token, duration_s)`` returns
    the components and warnings of the window. Each boundary waits at most ``timeout_s`` for a
    worker (plus a second for the scheduler) and never raises.
    """

    def __init__(self, client: "Client", *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 local: Local | None = None, salt: str | None = None) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self.salt = salt or secrets.token_hex(16)
        self.local = local or Local()
        self._names: dict[str, str] = {}  # address -> display name, stable for the session
        self._seen: dict[str, str] = {}  # the workers of the last good collection
        # Worker instances (meters set up once per worker process) found in / outside the
        # notebook's process tree: a worker is looked up in the tree once, not at every window.
        self._in_tree: set[str] = set()
        self._not_in_tree: set[str] = set()
        self._remove: Any = None
        self.session: Session | None = None
        self.last_collect_s: float | None = None
        # How a remote scheduler is asked (_rows): None (not yet known), "handler" or "run".
        self._route: str | None = None

    def collect(self) -> Snapshot:
        """Every worker's counters now (one scheduler round trip, bounded by the timeout)."""
        t0 = time.perf_counter()
        client = self.client
        if getattr(client, "status", "running") != "running":
            return Snapshot(failed={a: (n, "the Dask client is closed") for a, n in self._seen.items()})

        try:
            rows = client.sync(self._rows, callback_timeout=self.timeout_s + _GRACE_S)
        except Exception as exc:  # noqa: BLE001 - the scheduler's failure must not fail the cell
            timed_out = isinstance(exc, (TimeoutError, asyncio.TimeoutError))
            why = ("the scheduler did not answer in time" if timed_out
                   else f"the scheduler could not be asked: {type(exc).__name__}")
            return Snapshot(failed={a: (n, why) for a, n in self._seen.items()},
                            collect_s=time.perf_counter() - t0)
        elapsed = time.perf_counter() - t0
        self.last_collect_s = elapsed
        snap = parse_answers(rows, self._names, elapsed)
        self._seen = {row[0]: self._names[row[0]] for row in rows}
        return snap

    async def _rows(self) -> Sequence[Sequence[Any]]:
        """One fan-out (:func:`_ask_workers`) by the lightest route to the scheduler; runs on the
        client's event loop.

        - The scheduler runs here, on this loop (a ``LocalCluster``): it is called directly, with
          no comm between the client and the scheduler.
        - Otherwise one request to :data:`SCHEDULER_HANDLER`, added to the scheduler the first
          time (and again when it answers ``None``, as a scheduler without that op does: a new
          scheduler). A scheduler that cannot take it is asked through ``run_on_scheduler``.
        """
        client = self.client
        salt, timeout_s = self.salt, self.timeout_s
        here = _scheduler_here(client)
        if here is not None:
            return await _ask_workers(here, salt, timeout_s)
        if self._route == "handler":
            rows = await client.scheduler.nbcarbon_collect(salt=salt, timeout_s=timeout_s)
            if rows is not None:
                return rows
        if self._route != "run":
            try:
                await client.run_on_scheduler(_install)
                rows = await client.scheduler.nbcarbon_collect(salt=salt, timeout_s=timeout_s)
            except (OSError, asyncio.TimeoutError):
                raise  # the scheduler cannot be reached at all: no route decided
            except Exception:  # noqa: BLE001 - e.g. an older nbcarbon there: the general route
                rows = None
            if rows is not None:
                self._route = "handler"
                return rows
            self._route = "run"
        return await client.run_on_scheduler(_fan_out, salt, timeout_s)

    def begin(self) -> Snapshot:
        return self.collect()

    def end(self, token: Snapshot, duration_s: float) -> tuple[list[Component], list[str]]:
        snap = self.collect()
        local = self.local
        if self.session is not None and self.session.attribution != local.attribution:
            local = replace(local, attribution=self.session.attribution)  # %carbon attribution
        if local.kernel is not None and (local.process_channels or local.attribution == "share"):
            local = replace(local, pids=self._tree_pids(snap, local))
        return combine(token, snap, duration_s, local)

    def _tree_pids(self, snap: Snapshot, local: Local) -> frozenset[int]:
        """The pids of the workers in ``snap`` that run in the notebook's process tree.

        Walking the tree costs milliseconds with dozens of worker processes (each a nanny and a
        worker, each with its threads), so each worker instance is looked up once: a worker
        restarted (a new instance, maybe a reused pid) is looked up again.
        """
        same = [r for r in snap.readings.values() if r.kernel == local.kernel]
        if any(r.instance not in self._in_tree and r.instance not in self._not_in_tree
               for r in same):
            pids = _own_tree(local.tree)
            for r in same:
                (self._in_tree if r.pid in pids else self._not_in_tree).add(r.instance)
        return frozenset(r.pid for r in same if r.instance in self._in_tree)

    def detach(self) -> None:
        """Stop adding the cluster to the session's windows (the workers' plugin stays)."""
        remove, self._remove = self._remove, None
        if remove is not None:
            remove()


def _own_tree(followed: Any = None) -> frozenset[int]:
    """This process, its descendants now, and what the session's models follow besides
    (processes that left the tree, e.g. a worker started with ``sh -c 'dask worker ... &'``)."""
    from .meters.cputime import ChildProcesses

    tree = ChildProcesses(os.getpid(), follow_detached=False)
    tree.refresh()
    pids = {os.getpid(), *(p.pid for p in tree.children)}
    if followed is not None:
        pids.update(p.pid for p in followed.children)
    return frozenset(pids)


def local_view(session: "Session", salt: str) -> Local:
    """What ``session`` counts itself, for :func:`combine` to leave out of the cluster's share."""
    session.start()
    meters = list(session.probe_result.meters)
    channels: list[Channel] = [m.channel for m in meters]
    machine = [(m.channel, device_identity(m)) for m in meters if m.channel.attribution == "machine"]
    return Local(
        host=host_key(salt, session.settings.powercap_root),
        kernel=host_key(salt, None),
        machine_channels=frozenset((c.component, c.device, c.method) for c, _ in machine),
        process_channels=frozenset((c.component, c.method) for c in channels
                                   if c.attribution == "process"),
        process=process_token(),
        devices=frozenset(k for _, i in machine if (k := device_key(salt, i)) is not None),
        unidentified=frozenset((c.component, c.device, c.method) for c, i in machine if i is None),
        tree=next((m.tree for m in meters if m.channel.attribution == "process"
                   and getattr(m, "tree", None) is not None), None),
        attribution=session.attribution,
    )


def _has_plugin(dask_scheduler: Any = None) -> bool:
    return PLUGIN_NAME in getattr(dask_scheduler, "worker_plugins", {})


def register(client: "Client", use_gpu: bool = True) -> None:
    """Register :class:`MeterPlugin` on every worker, present and future, unless it already is
    (registering again would restart every worker's meters under open windows)."""
    if client.run_on_scheduler(_has_plugin):
        return
    plugin = MeterPlugin(use_gpu=use_gpu, origin=process_token())
    if hasattr(client, "register_plugin"):
        client.register_plugin(plugin, name=PLUGIN_NAME)
    else:  # distributed before 2023.9
        client.register_worker_plugin(plugin, name=PLUGIN_NAME)


def attach(client: "Client | None" = None, session: "Session | None" = None, *,
           timeout_s: float = DEFAULT_TIMEOUT_S, use_gpu: bool = True) -> ClusterCollector:
    """Measure ``client``'s cluster (default: the default client) in every window of ``session``
    (default: the kernel's session, shared by ``%%carbon`` and ``track()``). Idempotent."""
    if client is None:
        from distributed import default_client

        client = default_client()
    if getattr(client, "asynchronous", False):
        raise ValueError("nbcarbon.dask.attach needs a synchronous Client (the default in notebooks)")
    if session is None:
        from .api import default_session

        session = default_session()
    for collector in _attached:
        if collector.client is client and collector.session is session:
            return collector
    register(client, use_gpu=use_gpu)
    collector = ClusterCollector(client, timeout_s=timeout_s)
    collector.local = local_view(session, collector.salt)
    collector.session = session
    collector.collect()  # opens the connections now, so the first cell's boundary is as fast as any
    remove = session.add_collector(collector)

    def detach() -> None:
        remove()
        if collector in _attached:
            _attached.remove(collector)

    collector._remove = detach
    _attached.append(collector)
    return collector


_attached: list[ClusterCollector] = []


class AutoAttach:
    """A session collector that measures whichever ``distributed.Client`` is the default client.

    Costs one dictionary look-up per window until ``distributed`` is imported, and one attach per
    new client after that.
    """

    def __init__(self, session: "Session", timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.session = session
        self.timeout_s = timeout_s
        self._collectors: dict[int, ClusterCollector] = {}
        self._remove: Any = None

    def _current(self) -> ClusterCollector | None:
        dist = sys.modules.get("distributed")
        if dist is None:
            return None
        try:
            client = dist.default_client()
        except ValueError:
            return None
        if getattr(client, "status", None) != "running" or getattr(client, "asynchronous", False):
            return None
        collector = self._collectors.get(id(client))
        if collector is None or collector.client is not client:
            register(client)
            collector = ClusterCollector(client, timeout_s=self.timeout_s)
            collector.local = local_view(self.session, collector.salt)
            self._collectors = {id(client): collector}
        return collector

    def begin(self) -> tuple[ClusterCollector, Snapshot] | None:
        collector = self._current()
        return None if collector is None else (collector, collector.begin())

    def end(self, token: tuple[ClusterCollector, Snapshot] | None,
            duration_s: float) -> tuple[list[Component], list[str]]:
        if token is None:
            return [], []
        collector, snap = token
        return collector.end(snap, duration_s)

    def detach(self) -> None:
        remove, self._remove = self._remove, None
        if remove is not None:
            remove()


def auto(session: "Session | None" = None, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> AutoAttach:
    """Turn on automatic attach: every window measures the default Dask client's cluster, if any."""
    if session is None:
        from .api import default_session

        session = default_session()
    hook = AutoAttach(session, timeout_s)
    hook._remove = session.add_collector(hook)
    return hook
