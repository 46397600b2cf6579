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


NVML_ERROR_NOT_FOUND = 6


@dataclass
class FakeGpuProcess:
    """A process on a fake GPU: its pid, its SM utilisation (0-100, a number or a profile of the
    fake's clock) and whether it holds a compute context (listed as a running process)."""

    pid: int
    sm_util: float | Callable[[float], float] = 0.0
    compute: bool = True

    def util_at(self, t_s: float) -> float:
        return float(self.sm_util(t_s) if callable(self.sm_util) else self.sm_util)


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
    #: The processes using this GPU (none: an idle GPU nobody holds).
    processes: list[FakeGpuProcess] = field(default_factory=list)
    #: NVML code ``nvmlDeviceGetProcessUtilization`` fails with (e.g. 3: not supported).
    utilization_error: int | None = None

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

    def nvmlDeviceGetProcessUtilization(self, handle: int, timeStamp: int) -> list[object]:
        """As nvidia-ml-py: ``c_nvmlProcessUtilizationSample_t`` structures, one per process busy
        in the last period, newer than ``timeStamp`` (CPU microseconds); NOT_FOUND when none."""
        from pynvml import c_nvmlProcessUtilizationSample_t

        gpu = self._use(handle)
        if gpu.utilization_error is not None:
            raise NVMLError(gpu.utilization_error)
        now_us = int(time.time() * 1e6)
        t_s = self.clock() - self.t0
        samples = []
        for p in gpu.processes:
            util = p.util_at(t_s)
            if util > 0 and now_us > timeStamp:
                samples.append(c_nvmlProcessUtilizationSample_t(
                    pid=p.pid, timeStamp=now_us, smUtil=int(round(util)), memUtil=0, encUtil=0,
                    decUtil=0))
        if not samples:
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return samples

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[object]:
        """As nvidia-ml-py: friendly objects with ``pid`` and ``usedGpuMemory`` (bytes)."""
        from pynvml import nvmlFriendlyObject

        gpu = self._use(handle)
        return [nvmlFriendlyObject({"pid": p.pid, "usedGpuMemory": 1 << 30, "gpuInstanceId": 0xFFFFFFFF,
                                    "computeInstanceId": 0xFFFFFFFF})
                for p in gpu.processes if p.compute]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: int) -> list[object]:
        self._use(handle)
        return []

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
