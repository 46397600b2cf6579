"""NVIDIA GPU energy through NVML (the ``pynvml`` module of nvidia-ml-py, or a test fake).

Why two paths: Volta and later GPUs keep a total-energy counter (millijoules since the driver
loaded), which makes a window exact; older GPUs only report instantaneous power (milliwatts),
which has to be integrated, so its accuracy depends on how often it is read. The method in the
channel ("nvml-counter" or "nvml-power") says which one a record used.

The NVML module is passed in as an object so tests can hand over a fake with the same function
names; NVML's errors are translated into :class:`MeterError` here, once, so nothing above this
file knows NVML exists. Nothing touches the driver at import time.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from nbcarbon.errors import MeterError
from nbcarbon.meters.base import Channel, LockedMeter, PowerIntegrator, WrappingCounter

NO_DRIVER_NOTE = "no NVIDIA GPU driver found; GPU energy not measured"
NO_LIBRARY_NOTE = "nvidia-ml-py is not installed; GPU energy not measured"

# NVML's return codes (nvml.h); stable across driver versions, so reading them needs no library.
_ERROR_TEXT = {
    1: "NVML not initialised",
    2: "invalid argument",
    3: "not supported on this GPU",
    4: "permission denied",
    6: "not found",
    8: "GPU has insufficient external power",
    9: "NVIDIA driver not loaded",
    10: "timed out",
    12: "NVML library not found",
    13: "function not found in this driver",
    14: "GPU's infoROM is corrupted",
    15: "GPU is lost (fell off the bus); reboot or reset it",
    16: "GPU needs a reset",
    17: "operating system call failed",
    18: "driver and library versions do not match; reload the driver or reboot",
    19: "GPU in use",
    20: "out of memory",
    21: "no data",
    999: "unknown NVML error",
}
_NO_DRIVER_CODES = frozenset({9, 12, 13, 18})


def describe_error(err: BaseException) -> str:
    """A short reason for an NVML error, from its code (``str()`` on pynvml errors calls the C
    library, which is exactly what may be broken)."""
    code = getattr(err, "value", None)
    if isinstance(code, int) and code in _ERROR_TEXT:
        return _ERROR_TEXT[code]
    return f"{type(err).__name__} (code {code})" if code is not None else type(err).__name__


class NvmlSession:
    """Calls ``nvmlInit`` once and ``nvmlShutdown`` when the last holder releases it.

    NVML's init and shutdown are process-wide and reference counted inside the library too,
    but keeping our own count keeps a closed meter from shutting NVML down under another.
    """

    def __init__(self, nvml: Any) -> None:
        self.nvml = nvml
        self._holders = 0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Takes a hold, initialising NVML on the first; NVMLError propagates to the caller."""
        with self._lock:
            if self._holders == 0:
                self.nvml.nvmlInit()
            self._holders += 1

    def release(self) -> None:
        with self._lock:
            if self._holders == 0:
                return
            self._holders -= 1
            if self._holders == 0:
                try:
                    self.nvml.nvmlShutdown()
                except self.nvml.NVMLError:
                    pass  # shutting down a lost GPU's library has nothing left to clean

    @property
    def holders(self) -> int:
        return self._holders


class NvmlMeter(LockedMeter):
    """One GPU's energy: its hardware counter where it has one, else integrated power."""

    def __init__(self, session: NvmlSession, index: int, handle: Any, model_name: str,
                 use_counter: bool) -> None:
        method = "nvml-counter" if use_counter else "nvml-power"
        super().__init__(Channel("gpu", f"gpu{index}", method, "machine"))
        self.index = index
        self.model_name = model_name
        self._session = session
        self._nvml = session.nvml
        self._handle = handle
        self._closed = False
        self._counter: WrappingCounter | None = None
        self._integrator: PowerIntegrator | None = None
        self.last_power_w: float | None = None
        session.acquire()
        #: What names this GPU wherever it is seen (see :func:`gpu_identity`); never in records.
        self.uuid, self.pci_bus_id = gpu_identity(self._nvml, handle)
        try:
            if use_counter:
                self._counter = WrappingCounter(self._energy_mj(), None, 1e-3)
            else:
                self._integrator = PowerIntegrator()
                self._integrator.update(time.monotonic(), self._power_w())
        except MeterError:
            session.release()
            raise

    def _fail(self, err: BaseException) -> MeterError:
        # The device index, not the model: this message ends up in records of shared notebooks.
        return MeterError(f"{self.channel.device}: {describe_error(err)}")

    def _energy_mj(self) -> int:
        try:
            return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except self._nvml.NVMLError as err:
            raise self._fail(err) from err

    def _power_w(self) -> float:
        try:
            power_w = self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0
        except self._nvml.NVMLError as err:
            raise self._fail(err) from err
        self.last_power_w = power_w
        return power_w

    def _read(self) -> float:
        if self._closed:
            raise MeterError(f"{self.channel.device}: meter closed")
        if self._counter is not None:
            return self._counter.update(self._energy_mj())
        assert self._integrator is not None
        power_w = self._power_w()
        return self._integrator.update(time.monotonic(), power_w)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._session.release()


def _text(raw: object) -> str:
    return (raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)).strip("\x00 \t\n")


def gpu_identity(nvml: Any, handle: Any) -> tuple[str | None, str | None]:
    """``(uuid, pci_bus_id)`` of a GPU: what tells two GPUs apart where their index cannot.

    Why: ``gpu0`` is only a position in what one process sees. Two pods or Slurm jobs on one node
    each see their own GPU as ``gpu0``, and a container sees the host's third GPU as its first.
    The UUID (``GPU-8f6c...``) is unique to the board; the PCI bus id (``00000000:3B:00.0``) is
    unique within one machine, for drivers or devices (some vGPUs) that give no UUID. The bus id
    is only read where the UUID is missing. Either may be ``None``; nothing here raises.
    """
    uuid = bus_id = None
    try:
        uuid = _text(nvml.nvmlDeviceGetUUID(handle)) or None
    except Exception:  # noqa: BLE001 - an identity is optional; any failure leaves it unknown
        uuid = None
    if uuid is None:
        try:
            bus_id = _text(nvml.nvmlDeviceGetPciInfo(handle).busId).upper() or None
        except Exception:  # noqa: BLE001 - as above
            bus_id = None
    return uuid, bus_id


def _name(raw: object) -> str:
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def open_gpus(nvml: Any = None) -> tuple[list[NvmlMeter], list[str]]:
    """One meter per NVIDIA GPU, and notes for what cannot be measured. Never raises.

    ``nvml=None`` imports ``pynvml``; a missing module or driver gives no meters and one short
    note, since most machines simply have no NVIDIA GPU.
    """
    if nvml is None:
        try:
            import pynvml
        except ImportError:
            return [], [NO_LIBRARY_NOTE]
        nvml = pynvml
    session = NvmlSession(nvml)
    try:
        session.acquire()
    except nvml.NVMLError as err:
        if getattr(err, "value", None) in _NO_DRIVER_CODES:
            return [], [NO_DRIVER_NOTE]
        return [], [f"NVML failed to start ({describe_error(err)}); GPU energy not measured"]
    meters: list[NvmlMeter] = []
    notes: list[str] = []
    try:
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except nvml.NVMLError as err:
            reason = describe_error(err)
            return [], [f"NVML could not count GPUs ({reason}); GPU energy not measured"]
        if count == 0:
            notes.append("NVIDIA driver found but no GPU; GPU energy not measured")
        for index in range(count):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                model = _name(nvml.nvmlDeviceGetName(handle))
            except nvml.NVMLError as err:
                notes.append(f"gpu{index}: {describe_error(err)}; its energy not measured")
                continue
            meter = _open_one(session, nvml, index, handle, model, notes)
            if meter is not None:
                meters.append(meter)
    finally:
        session.release()  # the meters hold their own references
    return meters, notes


def _open_one(session: NvmlSession, nvml: Any, index: int, handle: Any, model: str,
              notes: list[str]) -> NvmlMeter | None:
    try:
        nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        has_counter = True
    except nvml.NVMLError:
        has_counter = False
    try:
        return NvmlMeter(session, index, handle, model, use_counter=has_counter)
    except MeterError as err:
        notes.append(f"{err}; its energy not measured")
        return None
