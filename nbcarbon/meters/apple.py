"""Apple Silicon CPU, GPU, Neural Engine and DRAM energy from IOReport, without sudo.

Why IOReport: the SoC keeps cumulative energy counters per subsystem (the "Energy Model" group
of the private IOReport framework, the numbers ``powermetrics`` shows) that any user may read;
``powermetrics`` itself needs sudo. The ``zeus-apple-silicon`` package (a small C++ binding by
the Zeus project, optional extra ``nbcarbon[apple]``) reads them:
``AppleEnergyMonitor().get_cumulative_energy()`` returns an ``AppleEnergyMetrics`` whose fields
are integers in millijoules since a fixed point (boot), or ``None`` where this chip has no such
channel. Read from its source (1.0.0 to 1.1.0): ``cpu_total_mj`` (the "CPU Energy" channel, all
clusters), ``gpu_mj`` ("GPU Energy"), ``ane_mj`` (Neural Engine), ``dram_mj``; the per-core and
per-cluster fields are parts of ``cpu_total_mj`` and are never added to it, and ``gpu_sram_mj``
is left out (whether "GPU Energy" includes it is not documented; leaving it out may undercount
slightly, adding it might count it twice).

How the channels map: ``cpu``/``soc`` and ``dram``/``soc``; the GPU is ``gpu``/``gpu0``; the
Neural Engine is an accelerator, ``gpu``/``ane`` (records keep the four components of schema 1,
which every nbcarbon and the JupyterLab extension read). Apple calls these values estimates
(the SoC's own energy accounting, as RAPL's is on Intel CPUs): they are counters in hardware,
labelled ``ioreport-counter`` and "measured", and the README says what they are.

One monitor serves every channel and one sample serves the channels read together at a cell's
boundary (see :class:`IOReportSession`). The library is passed in as a module object so tests
hand over a fake with the same class and field names; its ``RuntimeError`` becomes a
:class:`MeterError` here. Nothing is imported at module level.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from nbcarbon.errors import MeterError
from nbcarbon.meters.base import Anomalies, Channel, LockedMeter, WrappingCounter

NO_LIBRARY_NOTE = (
    "Apple Silicon energy counters not read: pip install 'nbcarbon[apple]' "
    "(zeus-apple-silicon reads IOReport, no sudo needed)"
)
#: (field of AppleEnergyMetrics, component, device), in the order channels are listed.
FIELDS = (
    ("cpu_total_mj", "cpu", "soc"),
    ("dram_mj", "dram", "soc"),
    ("gpu_mj", "gpu", "gpu0"),
    ("ane_mj", "gpu", "ane"),
)
#: The most one subsystem of an Apple SoC can draw (an M-series Ultra's GPU peaks near 150 W):
#: a counter step beyond this per second since the last good reading is refused, not counted.
APPLE_MAX_W = 400.0
#: A sample younger than this is shared by the channels read after it: they are read one after
#: another at a cell's boundary, and one IOReport sample per channel would cost each of them.
SAMPLE_MAX_AGE_S = 0.005


class IOReportSession:
    """One ``AppleEnergyMonitor`` and its latest sample, shared by every channel.

    Why a shared, short-lived sample: IOReport samples the whole "Energy Model" group at once,
    so the CPU, GPU, ANE and DRAM channels read at one boundary can use one sample, taken under
    one lock (the monitor is not documented as thread-safe). A sample older than
    :data:`SAMPLE_MAX_AGE_S` is never reused, so a boundary never reads a stale counter.
    """

    def __init__(self, monitor: Any, max_age_s: float = SAMPLE_MAX_AGE_S) -> None:
        self.monitor = monitor
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._sample: tuple[float, float, Any] | None = None  # (t before, t after, metrics)

    def sample(self) -> tuple[float, float, Any]:
        """``(t0, t1, metrics)``: a cumulative sample taken between monotonic ``t0`` and ``t1``.

        Raises :class:`MeterError` when IOReport cannot be sampled now.
        """
        with self._lock:
            now = time.monotonic()
            if self._sample is not None and now - self._sample[1] <= self.max_age_s:
                return self._sample
            try:
                metrics = self.monitor.get_cumulative_energy()
            except RuntimeError as err:
                raise MeterError(f"IOReport could not be sampled ({err})") from err
            self._sample = (now, time.monotonic(), metrics)
            return self._sample


def field_value(metrics: Any, name: str) -> int | None:
    """The millijoules a sample holds in ``name``, or ``None`` where it has none."""
    value = getattr(metrics, name, None)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


class AppleSiliconMeter(LockedMeter):
    """One IOReport energy channel (CPU, GPU, Neural Engine or DRAM) as a monotonic total."""

    def __init__(self, session: IOReportSession, field: str, component: str, device: str) -> None:
        super().__init__(Channel(component, device, "ioreport-counter", "machine"))
        self.field = field
        self._session = session
        self._closed = False
        self._counter = WrappingCounter(None, None, 1e-3, max_power_w=APPLE_MAX_W)
        t0, t1, raw = self._raw()
        self._counter.update(raw, t0, t1)

    def _raw(self) -> tuple[float, float, int]:
        t0, t1, metrics = self._session.sample()
        raw = field_value(metrics, self.field)
        if raw is None:
            raise MeterError(f"IOReport {self.channel.component} {self.channel.device}: "
                             "channel missing from the sample")
        return t0, t1, raw

    def _read(self) -> float:
        if self._closed:
            raise MeterError(f"IOReport {self.channel.device}: meter closed")
        t0, t1, raw = self._raw()
        return self._counter.update(raw, t0, t1)

    def anomalies(self) -> Anomalies:
        return self._counter.anomalies

    def describe(self) -> str:
        return "the SoC's own energy accounting, no sudo"

    def close(self) -> None:
        self._closed = True


def open_apple(zeus: Any = None, use_gpu: bool = True) -> tuple[list[AppleSiliconMeter], list[str]]:
    """A meter per IOReport energy channel this chip has, and notes. Never raises.

    ``zeus`` is the ``zeus_apple_silicon`` module (None imports it; the caller decides whether
    this machine is an Apple Silicon Mac). ``use_gpu=False`` leaves out the GPU and the Neural
    Engine, as it leaves out NVIDIA GPUs elsewhere.
    """
    if zeus is None:
        try:
            import zeus_apple_silicon as zeus
        except ImportError:
            return [], [NO_LIBRARY_NOTE]
    try:
        session = IOReportSession(zeus.AppleEnergyMonitor())
        _, _, first = session.sample()
    except (RuntimeError, MeterError) as err:
        return [], [f"IOReport energy counters could not be opened ({err}); CPU and GPU energy "
                    "not measured"]
    except Exception as err:  # noqa: BLE001 - another release of the binding may fail otherwise
        return [], [f"IOReport energy counters could not be opened ({type(err).__name__}); CPU and "
                    "GPU energy not measured"]
    meters: list[AppleSiliconMeter] = []
    notes: list[str] = []
    for field, component, device in FIELDS:
        if component == "gpu" and not use_gpu:
            continue
        if field_value(first, field) is None:
            continue  # this chip has no such channel (DRAM on older chips)
        try:
            meters.append(AppleSiliconMeter(session, field, component, device))
        except MeterError as err:
            notes.append(f"{err}; not measured")
    if not meters and not notes:
        notes.append("IOReport lists no energy channel on this Mac; CPU and GPU energy not measured")
    return meters, notes
