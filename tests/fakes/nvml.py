"""A fake NVML module: the pynvml functions the meters call, over GPUs with known power.

Why: CI has no NVIDIA GPU, and the meters' error handling (GPU lost mid-window, no counter on
pre-Volta GPUs, no driver) can only be exercised on demand. Each fake GPU draws power from a
profile (watts as a function of seconds since the fake was made), so the true energy of any
interval is computable and the counter is that integral in millijoules.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import uuid4

from tests.fakes.powercap import PowerProfile, constant, integrate

# Return codes from nvml.h, as pynvml's NVMLError.value carries them.
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15


class NVMLError(Exception):
    """Like pynvml's: carries the NVML return code in ``value``."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value


@dataclass
class FakeGpu:
    """One GPU's behaviour: its name, power, whether it has an energy counter, when it is lost."""

    name: str | bytes = "NVIDIA A100-SXM4-40GB"
    power: PowerProfile | float = 100.0
    has_counter: bool = True
    lost_after_s: float | None = None
    lost_after_calls: int | None = None
    calls: int = 0
    #: The board's UUID (unique per GPU; a new one per fake by default); None: the driver gives none.
    uuid: str | None = field(default_factory=lambda: f"GPU-{uuid4()}")
    #: The PCI bus id ("" derives one from the GPU's index, as distinct boards on one machine have).
    pci_bus_id: str | None = ""

    def profile(self) -> PowerProfile:
        return self.power if callable(self.power) else constant(float(self.power))


class FakeNvml:
    """Stands in for ``pynvml``; ``init_error`` makes ``nvmlInit`` fail with that NVML code."""

    NVMLError = NVMLError

    def __init__(self, gpus: list[FakeGpu] | None = None, init_error: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.gpus = gpus if gpus is not None else [FakeGpu()]
        self.init_error = init_error
        self.clock = clock
        self.t0 = clock()
        self.init_calls = 0
        self.shutdown_calls = 0
        self.initialised = 0

    # ----- the pynvml surface -------------------------------------------------------------

    def nvmlInit(self) -> None:
        self.init_calls += 1
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self._require_init()
        self.shutdown_calls += 1
        self.initialised -= 1

    def nvmlDeviceGetCount(self) -> int:
        self._require_init()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        self._require_init()
        if not 0 <= index < len(self.gpus):
            raise NVMLError(2)
        return index

    def nvmlDeviceGetName(self, handle: int) -> str | bytes:
        self._require_init()
        return self.gpus[handle].name

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        """As nvidia-ml-py: a ``str`` (its ``convertStrBytes`` decodes the C string)."""
        self._require_init()
        uuid = self.gpus[handle].uuid
        if uuid is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return uuid

    def nvmlDeviceGetPciInfo(self, handle: int) -> object:
        """As nvidia-ml-py: its ``nvmlPciInfo_t`` structure, whose ``busId`` is ``bytes``."""
        from pynvml import nvmlPciInfo_t

        self._require_init()
        bus_id = self.gpus[handle].pci_bus_id
        if bus_id is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        bus_id = bus_id or f"00000000:{0x3B + handle:02X}:00.0"
        return nvmlPciInfo_t(busId=bus_id.encode(), busIdLegacy=bus_id[4:].encode(), bus=0x3B + handle)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        gpu = self._use(handle)
        if not gpu.has_counter:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return int(integrate(gpu.profile(), 0.0, self.clock() - self.t0, dt_s=1e-3) * 1000)

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        gpu = self._use(handle)
        return int(gpu.profile()(self.clock() - self.t0) * 1000)

    # ----- truth and helpers --------------------------------------------------------------

    def true_energy_j(self, index: int, t0: float, t1: float) -> float:
        """Energy GPU ``index`` used between two instants of the fake's clock."""
        return integrate(self.gpus[index].profile(), t0 - self.t0, t1 - self.t0)

    def _require_init(self) -> None:
        if self.initialised <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def _use(self, handle: int) -> FakeGpu:
        self._require_init()
        gpu = self.gpus[handle]
        gpu.calls += 1
        lost = (gpu.lost_after_s is not None and self.clock() - self.t0 >= gpu.lost_after_s) or (
            gpu.lost_after_calls is not None and gpu.calls > gpu.lost_after_calls
        )
        if lost:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        return gpu
