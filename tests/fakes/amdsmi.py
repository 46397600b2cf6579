"""A fake ``amdsmi`` module: the functions the AMD GPU meters call, with the real return shapes.

Why: CI has no AMD GPU, and what the meters must survive (a 32-bit accumulator wrapping, a frozen
counter, a GPU lost mid-window, the key renamed between versions, "N/A" power) can only be
exercised on demand. Shapes follow the real package's Python layer, read from its wheels
(5.7.0, 6.0.0-6.2.0, 6.4.0, 7.0.2):

- ``amdsmi_get_energy_count`` -> ``{"power" | "energy_accumulator": int, "counter_resolution":
  float (a C float, 15.3 reads back as 15.300000190734863), "timestamp": int ns}``; the count's
  key is ``power`` before 6.4;
- ``amdsmi_get_power_info`` -> watts under ``average_socket_power`` (all versions),
  ``current_socket_power`` (6.0+) and ``socket_power`` (7.x), with volts and the power limit; a
  field the GPU does not fill holds 0xFFFF, turned into ``"N/A"`` by 6.2+, or UINT32_MAX;
- errors are ``AmdSmiLibraryException(err_code)``, a subclass of ``AmdSmiException``.

Counters move only when a test says so (:meth:`FakeAmdGpu.add_energy`), so a window's energy is
exact; a meter bounds each step by 2 kW x the real time since its last good read (+ 50 ms), so
steps of up to about 100 J are plausible at any moment.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass, field
from enum import IntEnum
from uuid import uuid4

AMDSMI_STATUS_NOT_SUPPORTED = 2
AMDSMI_STATUS_FAIL_LOAD_MODULE = 4
AMDSMI_STATUS_IO = 12
AMDSMI_STATUS_INIT_ERROR = 18
AMDSMI_STATUS_NOT_INIT = 32
AMDSMI_STATUS_DRIVER_NOT_LOADED = 34

#: What AMD SMI's C layer reports for a power field the GPU does not fill.
UINT32_MAX = 0xFFFFFFFF
#: 15.3 uJ, as the C float the library returns reads in Python.
RESOLUTION_UJ = ctypes.c_float(15.3).value


class AmdSmiException(Exception):
    """Base of every amdsmi error, as in ``amdsmi_exception.py``."""


class AmdSmiLibraryException(AmdSmiException):
    """Carries the status code in ``err_code``, as the real one does."""

    def __init__(self, err_code: int) -> None:
        super().__init__(err_code)
        self.err_code = abs(err_code)

    def get_error_code(self) -> int:
        return self.err_code


class AmdSmiInitFlags(IntEnum):
    INIT_ALL_PROCESSORS = 0xFFFFFFFF
    INIT_AMD_CPUS = 1 << 0
    INIT_AMD_GPUS = 1 << 1
    INIT_NON_AMD_CPUS = 1 << 2
    INIT_NON_AMD_GPUS = 1 << 3


@dataclass(eq=False)
class FakeAmdGpu:
    """One GPU: how much energy it has used, what it reports, and how it is failing."""

    name: str = "AMD Instinct MI300X"
    #: Watts reported by amdsmi_get_power_info.
    power_w: float = 300.0
    #: "mi300": only current_socket_power; "mi200" and "radeon": only average_socket_power.
    kind: str = "mi300"
    has_counter: bool = True
    #: The counter returns this first value for ever (MI100, some VMs: ROCm/amdsmi#38).
    frozen: bool = False
    bits: int = 64
    #: The accumulator's value when the fake is made (a 64-bit one is far past 2**32 after boot).
    start_raw: int = 5_000_000_000_000
    resolution_uj: float = RESOLUTION_UJ
    #: True joules used since the fake was made.
    energy_j: float = 0.0
    #: When set, every energy and power call fails with this status (a GPU lost from the bus).
    fail_code: int | None = None
    processor_type: str = "AMDSMI_PROCESSOR_TYPE_AMD_GPU"
    uuid: str | None = field(default_factory=lambda: str(uuid4()))
    bdf: str = ""
    calls: int = 0
    #: A raw value returned once by the next energy call instead of the counter (a glitch).
    glitch_raw: int | None = None
    #: Joules added before each energy call: a GPU that draws power between any two reads.
    draw_per_read_j: float = 0.0

    def add_energy(self, joules: float) -> None:
        self.energy_j += joules

    def raw(self) -> int:
        units = round(self.energy_j / (self.resolution_uj * 1e-6))
        return (self.start_raw + units) % (2**self.bits)


class FakeAmdSmi:
    """Stands in for the ``amdsmi`` module; ``version`` picks the key names of that release."""

    AmdSmiException = AmdSmiException
    AmdSmiLibraryException = AmdSmiLibraryException
    AmdSmiInitFlags = AmdSmiInitFlags

    def __init__(self, gpus: list[FakeAmdGpu] | None = None, version: tuple[int, int] = (7, 0),
                 init_error: int | None = None, handles_error: int | None = None) -> None:
        self.gpus = gpus if gpus is not None else [FakeAmdGpu()]
        self.version = version
        self.init_error = init_error
        self.handles_error = handles_error
        self.init_calls: list[int] = []
        self.shutdown_calls = 0
        self.initialised = 0
        self._frozen_raw: dict[int, int] = {}

    # ----- the amdsmi surface -------------------------------------------------------------

    def amdsmi_init(self, flag: AmdSmiInitFlags = AmdSmiInitFlags.INIT_AMD_GPUS) -> None:
        self.init_calls.append(int(flag))
        if self.init_error is not None:
            raise AmdSmiLibraryException(self.init_error)
        self.initialised += 1

    def amdsmi_shut_down(self) -> None:
        self._require_init()
        self.shutdown_calls += 1
        self.initialised -= 1

    def amdsmi_get_processor_handles(self) -> list[int]:
        self._require_init()
        if self.handles_error is not None:
            raise AmdSmiLibraryException(self.handles_error)
        return list(range(len(self.gpus)))  # the real ones are ctypes handles: opaque either way

    def amdsmi_get_processor_type(self, handle: int) -> dict[str, str]:
        self._require_init()
        return {"processor_type": self.gpus[handle].processor_type}

    def amdsmi_get_gpu_device_uuid(self, handle: int) -> str:
        self._require_init()
        uuid = self.gpus[handle].uuid
        if uuid is None:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)
        return uuid

    def amdsmi_get_gpu_device_bdf(self, handle: int) -> str:
        self._require_init()
        return self.gpus[handle].bdf or f"0000:{0xC1 + handle:02x}:00.0"

    def amdsmi_get_gpu_asic_info(self, handle: int) -> dict[str, object]:
        self._require_init()
        return {"market_name": self.gpus[handle].name, "vendor_id": "0x1002",
                "vendor_name": "Advanced Micro Devices Inc. [AMD/ATI]", "device_id": "0x74a1",
                "rev_id": "0x00", "asic_serial": "0x0000000000000000", "oam_id": 0,
                "num_compute_units": 304, "target_graphics_version": "gfx942"}

    def amdsmi_get_energy_count(self, handle: int) -> dict[str, object]:
        gpu = self._use(handle)
        if not gpu.has_counter:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)
        gpu.energy_j += gpu.draw_per_read_j
        if gpu.glitch_raw is not None:
            raw, gpu.glitch_raw = gpu.glitch_raw, None
        elif gpu.frozen:
            raw = self._frozen_raw.setdefault(handle, gpu.raw())
        else:
            raw = gpu.raw()
        key = "energy_accumulator" if self.version >= (6, 4) else "power"
        return {key: raw, "counter_resolution": gpu.resolution_uj, "timestamp": time.time_ns()}

    def amdsmi_get_power_info(self, handle: int) -> dict[str, object]:
        gpu = self._use(handle)
        watts = int(round(gpu.power_w))
        missing = 0xFFFF
        current = watts if gpu.kind == "mi300" else missing
        average = watts if gpu.kind != "mi300" else missing
        info: dict[str, object] = {}
        if self.version >= (7, 0):
            info["socket_power"] = watts
        if self.version >= (6, 0):
            info["current_socket_power"] = current
        info.update({"average_socket_power": average, "gfx_voltage": 850, "soc_voltage": 900,
                     "mem_voltage": 1100, "power_limit": 750})
        if self.version >= (6, 2):
            info = {k: "N/A" if v == 0xFFFF else v for k, v in info.items()}
        return info

    # ----- helpers ------------------------------------------------------------------------

    def _require_init(self) -> None:
        if self.initialised <= 0:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT)

    def _use(self, handle: int) -> FakeAmdGpu:
        self._require_init()
        gpu = self.gpus[handle]
        gpu.calls += 1
        if gpu.fail_code is not None:
            raise AmdSmiLibraryException(gpu.fail_code)
        return gpu
