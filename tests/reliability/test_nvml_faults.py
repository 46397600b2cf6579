"""NVML faults in a measured cell: init failure, a GPU lost mid-cell, no energy counter, calls that
start raising after working. The cell's value stays intact and the record says what is missing.

The fake NVML is the only fake; the cell itself breaks the GPU half-way, so timing is exact.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nbcarbon.status import session_status
from tests.fakes.nvml import FakeGpu, FakeNvml
from tests.reliability.conftest import fake_session

HALF = "import time\ntime.sleep(0.4)\n"


def gpu(fp, device: str = "gpu0"):
    found = [c for c in fp.components if c.component == "gpu" and c.device == device]
    return found[0] if found else None


def cell(ip, body: str, **ns):
    ip.user_ns.update(ns)
    result = ip.run_cell("%%carbon\n" + body)
    assert result.error_in_exec is None and result.error_before_exec is None
    return result


@pytest.mark.parametrize(("code", "says"), [(9, "no NVIDIA GPU driver found"),
                                            (999, "NVML failed to start (unknown NVML error)")])
def test_init_failure_measures_the_rest_and_says_why(tmp_path: Path, make_shell, code, says) -> None:
    s = fake_session(tmp_path, FakeNvml([FakeGpu()], init_error=code))
    ip = make_shell(s)
    assert cell(ip, "6 * 7").result == 42
    fp = s.records[-1]
    assert gpu(fp) is None and fp.components and fp.warnings == ()
    assert says in session_status(s)


def test_gpu_lost_mid_cell(tmp_path: Path, make_shell, capsys) -> None:
    nvml = FakeNvml([FakeGpu(power=100.0), FakeGpu(power=50.0)])
    s = fake_session(tmp_path, nvml)
    ip = make_shell(s)
    result = cell(ip, HALF + "nvml.gpus[0].lost_after_calls = nvml.gpus[0].calls\n" + HALF + "'v'",
                  nvml=nvml)
    assert result.result == "v"
    fp = s.records[-1]
    assert 0.3 * 100 <= gpu(fp).energy_j <= 0.5 * 100  # up to the loss, kept
    assert gpu(fp, "gpu1").energy_j == pytest.approx(50.0 * fp.duration_s, rel=0.03)
    assert any(w.startswith("gpu gpu0") and "GPU is lost" in w for w in fp.warnings)
    assert capsys.readouterr().err.count("could not be read") == 1
    cell(ip, "time.sleep(0.2)")
    after = s.records[-1]
    assert any("gpu0" in w for w in after.warnings)
    assert gpu(after, "gpu1").energy_j > 0 and s.sampler.running


def test_device_without_energy_counter_integrates_power(tmp_path: Path, make_shell) -> None:
    nvml = FakeNvml([FakeGpu(name=b"Tesla P100-PCIE-16GB", power=80.0, has_counter=False)])
    s = fake_session(tmp_path, nvml)
    ip = make_shell(s)
    cell(ip, "import time\ntime.sleep(0.6)")
    g = gpu(s.records[-1])
    assert g.method == "nvml-power"
    assert g.energy_j == pytest.approx(80.0 * s.records[-1].duration_s, rel=0.05)
    assert s.records[-1].warnings == ()


@pytest.mark.parametrize("counter", [True, False])
def test_calls_start_raising_after_working_then_recover(tmp_path: Path, make_shell, counter) -> None:
    nvml = FakeNvml([FakeGpu(power=100.0, has_counter=counter)])
    s = fake_session(tmp_path, nvml)
    ip = make_shell(s)
    cell(ip, HALF + "nvml.gpus[0].lost_after_calls = nvml.gpus[0].calls\n" + HALF, nvml=nvml)
    broken = s.records[-1]
    assert gpu(broken).energy_j > 0.3 * 100 and broken.warnings
    nvml.gpus[0].lost_after_calls = None  # the driver answers again (e.g. a transient NVML error)
    cell(ip, "time.sleep(0.5)")
    healed = s.records[-1]
    assert healed.warnings == ()
    assert gpu(healed).energy_j == pytest.approx(100.0 * healed.duration_s, rel=0.05)


def test_gpu_model_name_is_not_in_the_record(tmp_path: Path, make_shell) -> None:
    """A shared notebook names devices by index; the model is for ``%carbon status`` only."""
    nvml = FakeNvml([FakeGpu(name="NVIDIA H100 80GB HBM3", power=100.0)])
    s = fake_session(tmp_path, nvml)
    ip = make_shell(s)
    cell(ip, HALF + "nvml.gpus[0].lost_after_calls = nvml.gpus[0].calls\n" + HALF, nvml=nvml)
    fp = s.records[-1]
    assert fp.warnings
    assert "H100" not in str(fp.to_dict())
