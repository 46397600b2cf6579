"""AMD GPU energy through AMD SMI (the ``amdsmi`` package of ROCm, or a test fake).

Why two paths, as for NVIDIA: AMD Instinct and recent Radeon GPUs keep an energy accumulator
(``amdsmi_get_energy_count``: a count of ``counter_resolution`` micro-joule units, typically
15.3 uJ), which makes a window exact; where it is missing or does not move (MI100 and some
virtual machines report a frozen value: ROCm/amdsmi#38, the reason Zeus checks it too) only
socket power is left (``amdsmi_get_power_info``, in watts), integrated like NVML power. The
channel's method ("amdsmi-counter" or "amdsmi-power") says which one a record used.

What differs between ``amdsmi`` versions, and is handled here:

- the accumulator's key: ``power`` up to ROCm 6.2 (a misnomer: it is the energy count) and
  ``energy_accumulator`` from 6.4 on (both read from the real packages' sources);
- the power keys: ``average_socket_power`` (Navi, MI200 and earlier), ``current_socket_power``
  (from 6.0; MI300 fills only this one) and ``socket_power`` (7.x); a missing value is the string
  ``"N/A"`` (Python layer, for 0xFFFF) or ``UINT32_MAX`` (the C layer's "unsupported").

The accumulator's width is not documented per ASIC: firmware of older parts keeps 32 bits
(65.7 kJ at 15.3 uJ, four minutes at 250 W), newer ones 64. A counter first read at or above
2**32 is 64-bit; one below is treated as 32-bit, its wraps carried, until it crosses 2**32 by a
plausible step (then it was 64-bit all along). Every step is bounded by what a GPU can draw, so
a counter that goes backwards (ROCm/amdsmi#115) is refused and named, never counted.

The module is passed in as an object so tests can hand over a fake with the same function names;
AMD SMI's errors are translated into :class:`MeterError` here, once. Importing ``amdsmi`` loads
``libamd_smi.so`` and, where it is missing, *prints* to stdout and raises ``KeyError``; so it is
imported only where an AMD GPU is present (``/sys/class/drm/card*/device/vendor`` is 0x1002),
with its output swallowed. Nothing touches the driver at import time of this module.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nbcarbon.errors import MeterError
from nbcarbon.meters.base import (
    GPU_MAX_W,
    NO_ANOMALIES,
    PLAUSIBLE_SLACK_S,
    Anomalies,
    Channel,
    LibraryHolds,
    LockedMeter,
    PowerIntegrator,
    WrappingCounter,
    joules_text,
    plausible_power_w,
)

NO_LIBRARY_NOTE = (
    "an AMD GPU is present but the amdsmi package is not installed or cannot load ROCm's "
    "libamd_smi.so; its energy is not measured: pip install 'nbcarbon[amd]' (with ROCm's amd-smi-lib)"
)
NO_DRIVER_NOTE = "AMD GPU driver (amdgpu) not loaded; AMD GPU energy not measured"

#: PCI vendor id of AMD (ATI) graphics, as ``/sys/class/drm/cardN/device/vendor`` shows it.
AMD_PCI_VENDOR = "0x1002"
#: Power readings at or above this are AMD SMI's "unsupported" sentinels (0xFFFF, UINT32_MAX).
_POWER_SENTINEL_W = 0xFFFF
#: Preferred first: the firmware's average over its own short window integrates best at the
#: sampler's ~1 s period (instant power swings within milliseconds); MI300 gives only "current".
POWER_KEYS = ("average_socket_power", "current_socket_power", "socket_power")
#: How long :func:`open_amd_gpus` watches the accumulators for a frozen one. A GPU idles at
#: 5 W or more, which moves a 15.3 uJ counter by thousands of units in this time.
STUCK_CHECK_S = 0.1
#: Below this power a frozen counter may just be an idle GPU between two firmware updates.
_STUCK_MIN_W = 1.0
_WRAP_32 = 2**32
_AMD_GPU_TYPE = "AMDSMI_PROCESSOR_TYPE_AMD_GPU"

# AMD SMI status codes (amdsmi_status_t); stable across versions, so reading them needs no library.
_ERROR_TEXT = {
    1: "invalid argument",
    2: "not supported on this GPU",
    3: "not implemented for this GPU",
    4: "AMD SMI could not load a library",
    5: "AMD SMI library and driver do not match",
    6: "DRM error",
    7: "AMD SMI call failed",
    8: "timed out",
    9: "busy, try again",
    10: "permission denied",
    11: "interrupted",
    12: "I/O error",
    14: "a driver file could not be opened",
    15: "out of memory",
    16: "internal AMD SMI error",
    18: "AMD SMI failed to initialise",
    30: "GPU busy",
    31: "GPU not found",
    32: "AMD SMI not initialised",
    34: "amdgpu driver not loaded",
    40: "no data",
    54: "amdgpu restart failed",
}
_NO_DRIVER_CODES = frozenset({4, 5, 34})


def describe_error(err: BaseException) -> str:
    """A short reason for an AMD SMI error, from its status code where it has one."""
    code = getattr(err, "err_code", None)
    if isinstance(code, int) and code in _ERROR_TEXT:
        return _ERROR_TEXT[code]
    if code is not None:
        return f"{type(err).__name__} (code {code})"
    return type(err).__name__


def amd_gpu_present(drm_root: Path = Path("/sys/class/drm")) -> bool:
    """Whether the kernel lists an AMD graphics device (``cardN`` with PCI vendor 0x1002)."""
    try:
        cards = [p for p in drm_root.iterdir() if re.fullmatch(r"card\d+", p.name)]
    except OSError:
        return False
    for card in cards:
        try:
            vendor = (card / "device" / "vendor").read_text(encoding="ascii").strip().lower()
        except (OSError, UnicodeDecodeError):
            continue
        if vendor == AMD_PCI_VENDOR:
            return True
    return False


def import_amdsmi() -> Any | None:
    """The ``amdsmi`` module, or ``None`` where it is missing or cannot load its C library.

    Its import prints to stdout when ``libamd_smi.so`` is missing (then fails with ``KeyError``);
    that text would land in a notebook cell, so it is swallowed and turned into one note.
    """
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            import amdsmi
    except Exception:  # noqa: BLE001 - ImportError, OSError, KeyError: all mean "cannot use it"
        return None
    return amdsmi


def energy_fields(reading: Mapping[str, Any]) -> tuple[int, float]:
    """``(raw count, micro-joules per unit)`` from ``amdsmi_get_energy_count``'s dict.

    Raises ValueError when the dict holds no usable count (a value ``"N/A"``, a resolution of 0).
    """
    raw = reading.get("energy_accumulator", reading.get("power"))
    resolution = reading.get("counter_resolution")
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise ValueError(f"energy count is {raw!r}")
    if isinstance(resolution, bool) or not isinstance(resolution, (int, float)):
        raise ValueError(f"counter resolution is {resolution!r}")
    resolution = float(resolution)
    if not math.isfinite(resolution) or resolution <= 0:
        raise ValueError(f"counter resolution is {resolution!r}")
    return raw, resolution


def power_reading(info: Mapping[str, Any], key: str) -> float | None:
    """Watts under ``key`` in ``amdsmi_get_power_info``'s dict, or ``None`` where unsupported."""
    value = info.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None  # "N/A" or absent in this version
    if not math.isfinite(value) or value < 0 or value >= _POWER_SENTINEL_W:
        return None
    return float(value)


class AccumulatorCounter:
    """An AMD energy accumulator as a monotonic total, whether it is 32 or 64 bits wide.

    Why not a :class:`WrappingCounter` alone: its range must be known, and AMD SMI does not say
    it. See the module's docstring for the rule; :attr:`wide` tells which width is assumed now.
    """

    def __init__(self, first_raw: int, joules_per_unit: float, max_power_w: float,
                 t0_s: float, t1_s: float) -> None:
        self.joules_per_unit = joules_per_unit
        self.max_power_w = max_power_w
        self.wide = first_raw >= _WRAP_32
        self.counter = WrappingCounter(None, None if self.wide else _WRAP_32, joules_per_unit,
                                       max_power_w=max_power_w)
        self._good: tuple[int, float] | None = None
        self.update(first_raw, t0_s, t1_s)

    def update(self, raw: int, t0_s: float, t1_s: float) -> float:
        """Feed a raw count read between ``t0_s`` and ``t1_s``; returns the total joules."""
        if not self.wide and raw >= _WRAP_32 and self._crossed(raw, t1_s):
            self._widen()
        total = self.counter.update(raw, t0_s, t1_s)
        if not self.counter.held:
            self._good = (raw, t0_s)
        return total

    def _crossed(self, raw: int, t1_s: float) -> bool:
        """Whether ``raw`` (>= 2**32) follows the last good count by a step the GPU can draw."""
        if self._good is None:
            return True
        good_raw, good_t = self._good
        step_j = (raw - good_raw) * self.joules_per_unit
        return 0 <= step_j <= self.max_power_w * (max(0.0, t1_s - good_t) + PLAUSIBLE_SLACK_S)

    def _widen(self) -> None:
        old = self.counter
        new = WrappingCounter(None, None, self.joules_per_unit, max_power_w=self.max_power_w)
        if self._good is not None:
            new.update(self._good[0], self._good[1], self._good[1])  # the base: counts nothing
        new.total_j = old.total_j
        new.wraps = old.wraps
        new.anomalies = old.anomalies
        self.counter = new
        self.wide = True

    @property
    def range_j(self) -> float | None:
        """Joules between two wraps, or ``None`` for a 64-bit counter (centuries)."""
        return None if self.wide else _WRAP_32 * self.joules_per_unit


class AmdSmiSession(LibraryHolds):
    """``amdsmi_init`` (GPUs only) on the first hold, ``amdsmi_shut_down`` when the last is
    released."""

    def __init__(self, amdsmi: Any) -> None:
        super().__init__()
        self.amdsmi = amdsmi

    def _start(self) -> None:
        flags = getattr(self.amdsmi, "AmdSmiInitFlags", None)
        if flags is not None and hasattr(flags, "INIT_AMD_GPUS"):
            self.amdsmi.amdsmi_init(flags.INIT_AMD_GPUS)
        else:
            self.amdsmi.amdsmi_init()

    def _stop(self) -> None:
        try:
            self.amdsmi.amdsmi_shut_down()
        except self.amdsmi.AmdSmiException:
            pass  # shutting down a lost GPU's library has nothing left to clean


def _text(raw: object) -> str:
    return (raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)).strip("\x00 \t\n")


def gpu_identity(amdsmi: Any, handle: Any) -> tuple[str | None, str | None]:
    """``(uuid, pci_bus_id)`` of an AMD GPU, for the same reason as NVML's
    (:func:`nbcarbon.meters.nvml.gpu_identity`): ``gpu0`` is only a position in what one process
    sees. The bus id (``0000:C1:00.0``) is read only where the UUID is missing. Never raises.
    """
    uuid = bus_id = None
    try:
        uuid = _text(amdsmi.amdsmi_get_gpu_device_uuid(handle)) or None
    except Exception:  # noqa: BLE001 - an identity is optional; any failure leaves it unknown
        uuid = None
    if uuid is None:
        try:
            bus_id = _text(amdsmi.amdsmi_get_gpu_device_bdf(handle)).upper() or None
        except Exception:  # noqa: BLE001 - as above
            bus_id = None
    return uuid, bus_id


class AmdGpuMeter(LockedMeter):
    """One AMD GPU's energy: its accumulator where it has a working one, else integrated power."""

    def __init__(self, session: AmdSmiSession, index: int, handle: Any, model_name: str,
                 use_counter: bool, power_key: str | None = None) -> None:
        method = "amdsmi-counter" if use_counter else "amdsmi-power"
        super().__init__(Channel("gpu", f"gpu{index}", method, "machine"))
        if not use_counter and power_key is None:
            raise ValueError("the power path needs the power key to read")
        self.index = index
        self.model_name = model_name
        self.power_key = power_key
        self._session = session
        self._amdsmi = session.amdsmi
        self._handle = handle
        self._closed = False
        self._counter: AccumulatorCounter | None = None
        self._integrator: PowerIntegrator | None = None
        self.last_power_w: float | None = None
        session.acquire()
        #: What names this GPU wherever it is seen (see :func:`gpu_identity`); never in records.
        self.uuid, self.pci_bus_id = gpu_identity(self._amdsmi, handle)
        try:
            if use_counter:
                t0 = time.monotonic()
                raw, resolution_uj = self._energy()
                self._counter = AccumulatorCounter(raw, resolution_uj * 1e-6, GPU_MAX_W,
                                                   t0, time.monotonic())
            else:
                self._integrator = PowerIntegrator()
                self._integrator.update(time.monotonic(), self._power_w())
        except BaseException:
            session.release()
            raise

    def _fail(self, why: str) -> MeterError:
        # The device index, not the model: this message ends up in records of shared notebooks.
        return MeterError(f"{self.channel.device}: {why}")

    def _energy(self) -> tuple[int, float]:
        try:
            reading = self._amdsmi.amdsmi_get_energy_count(self._handle)
        except self._amdsmi.AmdSmiException as err:
            raise self._fail(describe_error(err)) from err
        try:
            return energy_fields(reading)
        except (ValueError, AttributeError) as err:
            raise self._fail(f"AMD SMI gave no energy count ({err})") from err

    def _power_w(self) -> float:
        assert self.power_key is not None
        try:
            info = self._amdsmi.amdsmi_get_power_info(self._handle)
        except self._amdsmi.AmdSmiException as err:
            raise self._fail(describe_error(err)) from err
        power_w = power_reading(info, self.power_key) if isinstance(info, Mapping) else None
        if power_w is None:
            raise self._fail(f"AMD SMI gave no {self.power_key.replace('_', ' ')}")
        self.last_power_w = plausible_power_w(power_w, self.channel.device)
        return power_w

    def _read(self) -> float:
        if self._closed:
            raise self._fail("meter closed")
        if self._counter is not None:
            t0 = time.monotonic()
            raw, _ = self._energy()
            return self._counter.update(raw, t0, time.monotonic())
        assert self._integrator is not None
        power_w = self._power_w()
        return self._integrator.update(time.monotonic(), power_w)

    def anomalies(self) -> Anomalies:
        return self._counter.counter.anomalies if self._counter is not None else NO_ANOMALIES

    def max_poll_interval_s(self) -> float | None:
        """Half the time a 32-bit accumulator takes to wrap at the most a GPU can draw."""
        if self._counter is None or self._counter.range_j is None:
            return None
        return self._counter.range_j / GPU_MAX_W / 2.0

    def describe(self) -> str:
        """How this GPU is read, for ``%carbon status``."""
        if self._counter is None:
            return f"{(self.power_key or '').replace('_', ' ')}, integrated"
        unit_uj = self._counter.joules_per_unit * 1e6
        width = ("64-bit" if self._counter.wide
                 else f"32-bit, wraps every {joules_text(self._counter.range_j or 0.0)}")
        return f"{unit_uj:.3g} uJ units, {width}"

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._session.release()


def _model(amdsmi: Any, handle: Any) -> str:
    try:
        info = amdsmi.amdsmi_get_gpu_asic_info(handle)
        name = _text(info.get("market_name", "")) if isinstance(info, Mapping) else ""
    except Exception:  # noqa: BLE001 - a name is decoration; its absence changes nothing
        name = ""
    return name if name and name != "N/A" else "AMD GPU"


def _processor_type(amdsmi: Any, handle: Any) -> str:
    """``AMDSMI_PROCESSOR_TYPE_AMD_GPU`` and kin, or ``""`` where AMD SMI cannot say."""
    try:
        kind = amdsmi.amdsmi_get_processor_type(handle)
    except Exception:  # noqa: BLE001 - unknown: treated as the GPU it was listed as
        return ""
    if isinstance(kind, Mapping):
        kind = kind.get("processor_type", "")
    return str(kind)


def _counter_raw(amdsmi: Any, handle: Any) -> int | None:
    try:
        return energy_fields(amdsmi.amdsmi_get_energy_count(handle))[0]
    except (amdsmi.AmdSmiException, ValueError, AttributeError):
        return None


def _power_key(amdsmi: Any, handle: Any) -> tuple[str | None, float | None, str]:
    """The first power key this GPU fills, its watts now, and why there is none."""
    try:
        info = amdsmi.amdsmi_get_power_info(handle)
    except amdsmi.AmdSmiException as err:
        return None, None, describe_error(err)
    if isinstance(info, Mapping):
        for key in POWER_KEYS:
            watts = power_reading(info, key)
            if watts is not None:
                return key, watts, ""
    return None, None, "no power reading"


def open_amd_gpus(amdsmi: Any = None, first_index: int = 0,
                  drm_root: Path = Path("/sys/class/drm"),
                  check_s: float = STUCK_CHECK_S) -> tuple[list[AmdGpuMeter], list[str]]:
    """One meter per AMD GPU, and notes for what cannot be measured. Never raises.

    ``amdsmi=None`` imports the ``amdsmi`` package, but only where the kernel lists an AMD GPU:
    elsewhere there is nothing to say, and no note. ``first_index`` numbers the devices after
    the NVIDIA ones on a machine that has both, so no two channels are both ``gpu0``.
    ``check_s`` is how long the accumulators are watched for a frozen one (0: not checked).
    """
    if amdsmi is None:
        if not amd_gpu_present(drm_root):
            return [], []
        amdsmi = import_amdsmi()
        if amdsmi is None:
            return [], [NO_LIBRARY_NOTE]
    try:
        return _open(amdsmi, first_index, check_s)
    except Exception as err:  # noqa: BLE001 - a package built for another ROCm fails in any way
        return [], [f"AMD SMI failed ({type(err).__name__}); AMD GPU energy not measured"]


def _open(amdsmi: Any, first_index: int, check_s: float) -> tuple[list[AmdGpuMeter], list[str]]:
    session = AmdSmiSession(amdsmi)
    try:
        session.acquire()
    except amdsmi.AmdSmiException as err:
        if getattr(err, "err_code", None) in _NO_DRIVER_CODES:
            return [], [NO_DRIVER_NOTE]
        return [], [f"AMD SMI failed to start ({describe_error(err)}); AMD GPU energy not measured"]
    meters: list[AmdGpuMeter] = []
    notes: list[str] = []
    try:
        try:
            handles = list(amdsmi.amdsmi_get_processor_handles())
        except amdsmi.AmdSmiException as err:
            reason = describe_error(err)
            return [], [f"AMD SMI could not list GPUs ({reason}); AMD GPU energy not measured"]
        gpus: list[Any] = []
        for handle in handles:
            kind = _processor_type(amdsmi, handle)
            if kind.endswith("_APU"):
                notes.append("an AMD APU (CPU and GPU in one package) is not metered as a GPU, so its "
                             "CPU's energy is not counted twice")
            elif not kind or kind == _AMD_GPU_TYPE:
                gpus.append(handle)
        if not gpus:
            notes.append("AMD SMI found no GPU; AMD GPU energy not measured")
        plans = _plan(amdsmi, gpus, first_index, check_s, notes)
        for index, handle, use_counter, power_key in plans:
            try:
                meters.append(AmdGpuMeter(session, index, handle, _model(amdsmi, handle),
                                          use_counter, power_key))
            except MeterError as err:
                notes.append(f"{err}; its energy not measured")
    except BaseException:
        for meter in meters:  # opened before the failure: their holds must not keep AMD SMI up
            meter.close()
        raise
    finally:
        session.release()  # the meters hold their own references
    return meters, notes


def _plan(amdsmi: Any, handles: list[Any], first_index: int, check_s: float,
          notes: list[str]) -> list[tuple[int, Any, bool, str | None]]:
    """Which path each GPU takes: ``(index, handle, use_counter, power_key)``.

    A GPU whose accumulator does not move in ``check_s`` while it reports drawing power has a
    frozen counter: it is read through power instead, and a note says so.
    """
    first_raw: dict[int, int] = {}
    power: dict[int, tuple[str | None, float | None, str]] = {}
    for position, handle in enumerate(handles):
        raw = _counter_raw(amdsmi, handle)
        if raw is not None:
            first_raw[position] = raw
        power[position] = _power_key(amdsmi, handle)
    if first_raw and check_s > 0:
        time.sleep(check_s)
    plans: list[tuple[int, Any, bool, str | None]] = []
    for position, handle in enumerate(handles):
        index = first_index + position
        key, watts, why = power[position]
        if position in first_raw:
            frozen = (check_s > 0 and watts is not None and watts >= _STUCK_MIN_W
                      and _counter_raw(amdsmi, handle) == first_raw[position])
            if not frozen:
                plans.append((index, handle, True, key))
                continue
            if key is not None:
                notes.append(f"gpu{index}: its energy counter does not advance (a known fault of some "
                             "GPUs and virtual machines); its power is sampled instead")
                plans.append((index, handle, False, key))
                continue
        if key is None:
            notes.append(f"gpu{index}: neither an energy counter nor a power reading ({why}); "
                         "its energy not measured")
            continue
        plans.append((index, handle, False, key))
    return plans
