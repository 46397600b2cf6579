"""NVIDIA GPU energy through NVML (the ``pynvml`` module of nvidia-ml-py, or a test fake).

Why two paths: Volta and later GPUs keep a total-energy counter (millijoules since the driver
loaded), which makes a window exact; older GPUs only report instantaneous power (milliwatts),
which has to be integrated, so its accuracy depends on how often it is read. The method in the
channel ("nvml-counter" or "nvml-power") says which one a record used.

The NVML module is passed in as an object so tests can hand over a fake with the same function
names; NVML's errors are translated into :class:`MeterError` here, once, so nothing above this
file knows NVML exists. Nothing touches the driver at import time, and on Linux a machine that
shows no sign of an NVIDIA driver or GPU (:func:`no_nvidia_driver`) is told so without importing
``pynvml`` at all: importing it (ctypes and some 3,000 lines) and failing to load the library
cost about 10 ms of every session's start on the many machines that have no NVIDIA GPU.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from nbcarbon.errors import MeterError
from nbcarbon.meters.base import (
    GPU_MAX_W,
    NO_ANOMALIES,
    Anomalies,
    Channel,
    LibraryHolds,
    LockedMeter,
    PowerIntegrator,
    WrappingCounter,
    plausible_power_w,
)

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


class NvmlSession(LibraryHolds):
    """``nvmlInit`` on the first hold, ``nvmlShutdown`` when the last is released."""

    def __init__(self, nvml: Any) -> None:
        super().__init__()
        self.nvml = nvml

    def _start(self) -> None:
        self.nvml.nvmlInit()

    def _stop(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except self.nvml.NVMLError:
            pass  # shutting down a lost GPU's library has nothing left to clean


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
                t0 = time.monotonic()
                self._counter = WrappingCounter(self._energy_mj(), None, 1e-3,
                                                max_power_w=GPU_MAX_W, t_s=t0)
            else:
                self._integrator = PowerIntegrator()
                self._integrator.update(time.monotonic(), self._power_w())
        except MeterError:
            session.release()
            raise

    @property
    def nvml(self) -> Any:
        """The NVML module this meter reads (per-process shares read the same GPU through it)."""
        return self._nvml

    @property
    def handle(self) -> Any:
        return self._handle

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
        self.last_power_w = plausible_power_w(power_w, self.channel.device)
        return power_w

    def _read(self) -> float:
        if self._closed:
            raise MeterError(f"{self.channel.device}: meter closed")
        if self._counter is not None:
            t0 = time.monotonic()
            raw = self._energy_mj()
            return self._counter.update(raw, t0, time.monotonic())
        assert self._integrator is not None
        power_w = self._power_w()
        return self._integrator.update(time.monotonic(), power_w)

    def anomalies(self) -> Anomalies:
        """The counter's refused readings and restarts (a driver reload, a GPU reset), so a record
        says what they cost; the power path refuses bad readings as failed reads instead."""
        return self._counter.anomalies if self._counter is not None else NO_ANOMALIES

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


#: Where a Linux machine shows an NVIDIA driver NVML could use; any one of them sends
#: :func:`open_gpus` to NVML. ``/proc/driver/nvidia`` is made by the kernel module (the
#: proprietary one and the open one alike) when it is loaded, and containers see it too (procfs
#: is the host kernel's). The device nodes cover sandboxes that give a GPU without that proc
#: entry (gVisor's nvproxy, containers with a bare /proc). ``/dev/dxg`` is WSL 2, where NVML
#: reaches the Windows driver through DirectX and no NVIDIA module is loaded in Linux.
LINUX_DRIVER_SIGNS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg")
#: The library pynvml loads on Linux (``CDLL("libnvidia-ml.so.1")``).
LIBRARY_NAME = "libnvidia-ml.so.1"
#: The PCI bus, as one file (vendor and device ids in the second column) and, where procfs has
#: no such file, as sysfs's directory of devices. NVIDIA's PCI vendor id is 0x10de.
PROC_PCI_DEVICES = "/proc/bus/pci/devices"
SYS_PCI_DEVICES = "/sys/bus/pci/devices"
_NVIDIA_VENDOR = b"10de"


def no_nvidia_driver(platform: str | None = None, environ: Mapping[str, str] | None = None,
                     exists: Callable[[str], bool] = os.path.exists,
                     proc_pci: str = PROC_PCI_DEVICES, sys_pci: str = SYS_PCI_DEVICES) -> bool:
    """True where NVML surely cannot start, so :func:`open_gpus` can give the note a failed
    ``nvmlInit`` would have given without importing ``pynvml``: on Linux, when none of
    :data:`LINUX_DRIVER_SIGNS` exists, no ``LD_LIBRARY_PATH`` directory holds NVML's library,
    and the PCI bus can be read and lists no NVIDIA device. Anything else gives False (NVML is
    tried, as it always was): other systems (Windows, the BSDs), a sign of a driver, an NVIDIA
    device whose driver is not loaded yet (``nvidia-modprobe`` may load it when NVML starts),
    a PCI bus that cannot be read.

    Why not look for the library on the loader's whole path: on Linux NVML needs the kernel
    module, so without it ``nvmlInit`` fails whether the library is installed or not (driver not
    loaded, or library not found: the same note), WSL 2 aside (``/dev/dxg``). ``LD_LIBRARY_PATH``
    is checked anyway, so a library put there on purpose (a mock NVML, an unusual install) is
    still tried. Cost: four ``stat`` calls and one read of a small file, about 0.1 ms,
    against about 10 ms to import pynvml and fail. The arguments are for tests.
    """
    if not (sys.platform if platform is None else platform).startswith("linux"):
        return False
    if any(exists(sign) for sign in LINUX_DRIVER_SIGNS):
        return False
    env = os.environ if environ is None else environ
    for directory in env.get("LD_LIBRARY_PATH", "").split(os.pathsep):
        if directory and exists(os.path.join(directory, LIBRARY_NAME)):
            return False
    return _nvidia_on_pci_bus(proc_pci, sys_pci) is False


def _nvidia_on_pci_bus(proc_pci: str, sys_pci: str) -> bool | None:
    """Whether the PCI bus lists an NVIDIA device; None where neither list can be read."""
    # Bytes, not text: a text read would import a codec module for it on first use.
    try:
        with open(proc_pci, "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        pass
    else:
        ids = (line.split(None, 2)[1:2] for line in lines)
        return any(i[0][:4].lower() == _NVIDIA_VENDOR for i in ids if i)
    try:
        names = os.listdir(sys_pci)
    except OSError:
        return None
    for name in names:
        try:
            with open(os.path.join(sys_pci, name, "vendor"), "rb") as f:
                if f.read().strip().lower() == b"0x" + _NVIDIA_VENDOR:
                    return True
        except OSError:
            continue  # a device gone since the listing, or its file unreadable: not NVIDIA's
    return False


def _pynvml_installed() -> bool:
    """Whether ``import pynvml`` would find a module, without importing it: what
    ``importlib.util.find_spec`` does for a top-level name (ask each finder of ``sys.meta_path``
    for a spec), without importing ``importlib.util`` for it. Never raises."""
    if "pynvml" in sys.modules:
        return sys.modules["pynvml"] is not None
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        try:
            if find_spec is not None and find_spec("pynvml", None) is not None:
                return True
        except Exception:  # noqa: BLE001 - a broken finder: the import would fail there too
            continue
    return False


def open_gpus(nvml: Any = None) -> tuple[list[NvmlMeter], list[str]]:
    """One meter per NVIDIA GPU, and notes for what cannot be measured. Never raises.

    ``nvml=None`` imports ``pynvml``; a missing module or driver gives no meters and one short
    note, since most machines simply have no NVIDIA GPU. Where :func:`no_nvidia_driver` says
    so, that note comes without importing ``pynvml`` (the same note: the library's, if it is
    not installed, else the driver's). A module passed in is always used.
    """
    if nvml is None and no_nvidia_driver():
        return [], [NO_DRIVER_NOTE if _pynvml_installed() else NO_LIBRARY_NOTE]
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
