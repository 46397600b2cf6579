"""The cluster's energy in a window: real LocalCluster workers reading fake powercap trees.

The fake counters advance in this process, inside each window and by an exact amount; the meters
run in the worker processes and read the files, so the whole path (plugin, scheduler fan-out,
host keys, combination) is the real one and the expected energy does not depend on timing.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

pytest.importorskip("distributed")

from distributed import Client, LocalCluster, Nanny  # noqa: E402

from nbcarbon.cluster import (  # noqa: E402
    ClusterCollector,
    Local,
    Snapshot,
    WorkerReading,
    attach,
    combine,
    display_name,
    host_key,
)
from nbcarbon.footprint import Share  # noqa: E402
from nbcarbon.session import Session  # noqa: E402
from nbcarbon.settings import Settings  # noqa: E402
from tests.fakes.powercap import FakePowercap  # noqa: E402
from tests.fakes.procstat import quiet_stat

TIMEOUT_S = 1.0


def busy(seconds: float) -> int:
    """A known CPU load: spin for ``seconds``."""
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def session(tmp_path: Path) -> Session:
    """The notebook's session: no RAPL of its own (an empty powercap root)."""
    root = tmp_path / "notebook-powercap"
    root.mkdir(exist_ok=True)
    return Session(Settings(powercap_root=root, ledger=None, proc_stat=quiet_stat(tmp_path)),
                   {"NBCARBON_REGION": "SE"})


def cluster_with(envs: dict[str, dict[str, str]]) -> tuple[LocalCluster, Client]:
    """A LocalCluster (processes, one thread each) whose workers get their own environment."""
    cluster = LocalCluster(n_workers=0, processes=True, threads_per_worker=1,
                           dashboard_address=":0", silence_logs=50)
    template = next(iter(cluster.new_worker_spec().values()))
    for name, env in envs.items():
        options = dict(template["options"], env=env, nthreads=1)
        cluster.worker_spec[name] = {"cls": Nanny, "options": options}
    cluster.scale(len(envs))  # starts the specs above (they are already len(envs))
    client = Client(cluster)
    client.wait_for_workers(len(envs), timeout=60)
    return cluster, client


def addresses_by_name(client: Client) -> dict[str, str]:
    info = client.scheduler_info(n_workers=-1)["workers"]
    return {str(w["name"]): addr for addr, w in info.items()}


@contextmanager
def blocked_worker(client: Client, address: str, tmp_path: Path, seconds: float = 4.0):
    """A block during which the worker at ``address`` cannot answer: its event loop runs a
    sleep (``client.run``), entered only once the worker says the sleep has begun (a file it
    writes), not after a guessed delay that a busy machine may outlast."""
    started = tmp_path / f"blocked-{len(list(tmp_path.glob('blocked-*')))}"

    def block(path: str = str(started), seconds: float = seconds) -> None:
        import pathlib
        import time as clock

        pathlib.Path(path).touch()
        clock.sleep(seconds)

    blocker = threading.Thread(target=client.run, args=(block,), kwargs={"workers": [address]})
    blocker.start()
    deadline = time.monotonic() + 60.0
    while not started.exists():
        assert time.monotonic() < deadline, "the worker never started its sleep"
        time.sleep(0.01)
    try:
        yield
    finally:
        blocker.join()


def run_window(s: Session, client: Client, seconds: float,
               fakes: list[FakePowercap]) -> object:
    """Runs ``busy`` on every worker in one window while the fake counters advance ``seconds``
    of their power (in real time), so each host's true energy in the window is exactly that."""
    window = s.begin()
    futures = [client.submit(busy, seconds, workers=[addr], pure=False)
               for addr in addresses_by_name(client).values()]
    run_together(fakes, seconds)
    client.gather(futures)
    return s.end(window)


def run_together(fakes: list[FakePowercap], seconds: float, step_s: float = 0.01) -> None:
    """:meth:`FakePowercap.run` for several trees at once (one per host)."""
    n = max(1, round(seconds / step_s))
    for _ in range(n):
        time.sleep(seconds / n)
        for fake in fakes:
            fake.advance(seconds / n)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("shared") / "powercap"
    root.mkdir()
    fake = FakePowercap(root)
    fake.add_package(0, power=20.0)
    env = {"NBCARBON_POWERCAP_ROOT": str(root), "NBCARBON_INTERVAL": "0.2",
           "NBCARBON_PROC_STAT": str(quiet_stat(tmp_path_factory.getbasetemp()))}
    cluster, client = cluster_with({"a": env, "b": env})
    yield fake, client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def separate(tmp_path_factory: pytest.TempPathFactory):
    fakes = {}
    envs = {}
    for name, power_w in (("a", 15.0), ("b", 25.0)):
        root = tmp_path_factory.mktemp(f"host-{name}") / "powercap"
        root.mkdir()
        fake = FakePowercap(root)
        fake.add_package(0, power=power_w)
        fakes[name] = fake
        # A machine nobody else uses: each worker's share of its host is the whole.
        envs[name] = {"NBCARBON_POWERCAP_ROOT": str(root), "NBCARBON_INTERVAL": "0.2",
                      "NBCARBON_PROC_STAT": str(quiet_stat(tmp_path_factory.getbasetemp()))}
    cluster, client = cluster_with(envs)
    yield fakes, client
    client.close()
    cluster.close()


def test_workers_sharing_a_host_are_counted_once(shared, tmp_path: Path) -> None:
    fake, client = shared
    s = session(tmp_path)
    collector = attach(client, s, timeout_s=TIMEOUT_S)
    try:
        fp = run_window(s, client, 2.0, [fake])
    finally:
        collector.detach()
        s.close()
    dask = [c for c in fp.components if c.device.startswith("dask:")]
    assert [(c.component, c.method) for c in dask] == [("cpu", "rapl-counter")], fp.components
    assert dask[0].device == "dask:a/package-0"
    assert dask[0].energy_j == pytest.approx(20.0 * 2.0, abs=1e-4)
    assert fp.energy_j == pytest.approx(sum(c.energy_j for c in fp.components))
    assert not [w for w in fp.warnings if "dask" in w], fp.warnings
    # Process models of workers in the notebook's own process tree are already in its components.
    assert any(c.device == "process tree" for c in fp.components)


def test_workers_on_separate_hosts_each_match_their_counters(separate, tmp_path: Path) -> None:
    fakes, client = separate
    s = session(tmp_path)
    collector = attach(client, s, timeout_s=TIMEOUT_S)
    try:
        fp = run_window(s, client, 2.0, list(fakes.values()))
    finally:
        collector.detach()
        s.close()
    by_device = {c.device: c for c in fp.components if c.device.startswith("dask:")}
    assert set(by_device) == {"dask:a/package-0", "dask:b/package-0"}, fp.components
    for name, fake in fakes.items():
        truth = fake.zones["intel-rapl:0"].profile(0.0) * 2.0
        assert by_device[f"dask:{name}/package-0"].energy_j == pytest.approx(truth, abs=1e-4)
    for text in (str(fp.to_dict()),):
        assert "tcp://" not in text and "127.0.0.1" not in text


def test_auto_attach_measures_the_default_client(separate, tmp_path: Path) -> None:
    from distributed import default_client

    from nbcarbon.cluster import auto

    fakes, client = separate
    assert default_client() is client
    s = session(tmp_path)
    hook = auto(s, timeout_s=TIMEOUT_S)
    try:
        fp = s.end(s.begin())
    finally:
        hook.detach()
        s.close()
    assert {c.device for c in fp.components} >= {"dask:a/package-0", "dask:b/package-0"}


def test_a_slow_worker_is_named_missing_within_the_timeout(separate, tmp_path: Path) -> None:
    fakes, client = separate
    s = session(tmp_path)
    collector = attach(client, s, timeout_s=TIMEOUT_S)
    slow = addresses_by_name(client)["b"]
    try:
        window = s.begin()
        with blocked_worker(client, slow, tmp_path):
            t = time.perf_counter()
            fp = s.end(window)
            elapsed = time.perf_counter() - t
    finally:
        collector.detach()
        s.close()
    assert elapsed < TIMEOUT_S + 2.0  # the timeout, not the 4 s block (margin for a busy machine)
    assert any("dask worker b missing" in w and "no answer within" in w for w in fp.warnings), fp.warnings
    assert [c.device for c in fp.components if c.device.startswith("dask:")] == ["dask:a/package-0"]


def test_a_worker_killed_mid_window_is_named_missing(separate, tmp_path: Path) -> None:
    fakes, client = separate
    s = session(tmp_path)
    collector = attach(client, s, timeout_s=TIMEOUT_S)
    victim = addresses_by_name(client)["b"]
    pid = client.run(os.getpid, workers=[victim])[victim]
    try:
        window = s.begin()
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)
        t = time.perf_counter()
        fp = s.end(window)
        elapsed = time.perf_counter() - t
    finally:
        collector.detach()
        s.close()
    assert elapsed < TIMEOUT_S + 2.0  # the timeout, not a hang (margin for a busy machine)
    assert any(w.startswith("dask worker b missing at the window's end") for w in fp.warnings), fp.warnings
    assert "dask:a/package-0" in {c.device for c in fp.components}


# -- the combination, table-driven ---------------------------------------------------------------
RAPL = ("cpu", "package-0", "rapl-counter", "machine")
CPU_MODEL = ("cpu", "process tree", "cpu-time-model", "process")


def reading(name: str, host: str, totals: list[float | None], *, instance: str | None = None,
            channels: tuple = (RAPL, CPU_MODEL), pid: int = 1, age_s: float = 100.0,
            error: str | None = None) -> WorkerReading:
    return WorkerReading(
        address=f"tcp://10.0.0.{ord(name[-1])}:1", name=name, instance=instance or name, pid=pid,
        host=host, kernel=host, age_s=age_s, channels=channels,
        totals=tuple((t, None if t is not None else "gone") for t in totals), error=error,
    )


def snap(*rs: WorkerReading, failed: dict | None = None) -> Snapshot:
    return Snapshot(readings={r.address: r for r in rs}, failed=failed or {})


def energies(components) -> dict[str, float]:
    return {f"{c.component}:{c.device}": round(c.energy_j, 6) for c in components}


def test_combine_counts_machine_counters_once_per_host_and_models_per_worker() -> None:
    b = snap(reading("w0", "h1", [100, 5]), reading("w1", "h1", [40, 7]), reading("w2", "h2", [0, 0]))
    e = snap(reading("w0", "h1", [130, 6]), reading("w1", "h1", [70, 9]), reading("w2", "h2", [10, 1]))
    comps, warnings = combine(b, e, 2.0)
    assert energies(comps) == {
        "cpu:dask:w0/package-0": 30, "cpu:dask:w0/process tree": 1, "cpu:dask:w1/process tree": 2,
        "cpu:dask:w2/package-0": 10, "cpu:dask:w2/process tree": 1,
    }
    assert warnings == []


def test_combine_takes_a_hosts_counters_from_a_survivor_and_names_the_dead() -> None:
    b = snap(reading("w0", "h1", [100, 5]), reading("w1", "h1", [40, 7]))
    e = snap(reading("w1", "h1", [70, 9]),
             failed={"tcp://10.0.0.48:1": ("w0", "OSError: Timed out trying to connect")})
    comps, warnings = combine(b, e, 2.0)
    assert energies(comps) == {"cpu:dask:w1/package-0": 30, "cpu:dask:w1/process tree": 2}
    assert len(warnings) == 1 and warnings[0].startswith("dask worker w0 missing at the window's end")
    assert "counted through another worker" in warnings[0]


def test_combine_counts_a_joiner_from_its_start_and_a_worker_without_meters_not_at_all() -> None:
    b = snap(reading("w0", "h1", [100, 5]))
    e = snap(reading("w0", "h1", [130, 6]), reading("w3", "h3", [4, 1], age_s=1.0),
             reading("w4", "h4", [], channels=(), error="meters could not start: SettingsError: x"))
    comps, warnings = combine(b, e, 2.0)
    assert energies(comps)["cpu:dask:w3/package-0"] == 4
    assert "dask worker w3 joined during the window: counted from its start" in warnings
    assert "dask worker w4 not measured: meters could not start: SettingsError: x" in warnings


def test_combine_leaves_out_what_the_notebook_already_counts() -> None:
    local = Local(host="h1", kernel="h1", machine_channels=frozenset({("cpu", "package-0", "rapl-counter")}),
                  process_channels=frozenset({("cpu", "cpu-time-model")}), pids=frozenset({7}))
    b = snap(reading("w0", "h1", [100, 5], pid=7), reading("w1", "h1", [10, 5], pid=8))
    e = snap(reading("w0", "h1", [130, 6], pid=7), reading("w1", "h1", [40, 8], pid=8))
    comps, _ = combine(b, e, 2.0, local)
    # same host: RAPL is the notebook's; w0 is in the notebook's tree, w1 (another user's) is not
    assert energies(comps) == {"cpu:dask:w1/process tree": 3}


def test_worker_names_never_show_addresses_or_hosts() -> None:
    assert display_name(0, "tcp://1.2.3.4:5", False, 9) == "worker-0"
    assert display_name("SLURMCluster-0-1", "tcp://1.2.3.4:5", False, 9) == "SLURMCluster-0-1"
    assert display_name("tcp://1.2.3.4:5", "tcp://1.2.3.4:5", False, 3) == "worker-3"
    assert display_name("node17-w", "tcp://1.2.3.4:5", True, 4) == "worker-4"


def test_host_key_is_salted_and_separates_roots(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert host_key("s1", a) == host_key("s1", a)
    assert host_key("s1", a) != host_key("s2", a)
    assert host_key("s1", a) != host_key("s1", b)
    assert len(host_key("s1", a)) == 32


def test_collector_reports_a_closed_client_without_raising() -> None:
    class Closed:
        status = "closed"

    collector = ClusterCollector(Closed())  # type: ignore[arg-type]
    assert combine(collector.begin(), collector.collect(), 1.0) == ([], [])


def test_importing_nbcarbon_does_not_import_distributed() -> None:
    import subprocess
    import sys

    code = "import nbcarbon, nbcarbon.session, sys; print('distributed' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_session_adds_collector_components_and_survives_a_failing_one(tmp_path: Path) -> None:
    from nbcarbon.footprint import Component

    class Extra:
        def begin(self) -> str:
            return "token"

        def end(self, token: str, duration_s: float) -> tuple[list[Component], list[str]]:
            assert token == "token"
            return [Component("cpu", "dask:x/package-0", "rapl-counter", 5.0, 5.0 / duration_s)], ["w"]

    class Broken:
        def begin(self) -> None:
            raise RuntimeError("scheduler gone")

        def end(self, token: object, duration_s: float) -> tuple[list[Component], list[str]]:
            raise AssertionError("not called")

    s = session(tmp_path)
    remove = s.add_collector(Extra())
    s.add_collector(Broken())
    try:
        fp = s.end(s.begin())
        remove()
        plain = s.end(s.begin())
    finally:
        s.close()
    assert "dask:x/package-0" in {c.device for c in fp.components}
    assert fp.energy_j == pytest.approx(sum(c.energy_j for c in fp.components))
    assert "w" in fp.warnings
    assert any(w.startswith("Broken not measured: RuntimeError: scheduler gone") for w in fp.warnings)
    assert "dask:x/package-0" not in {c.device for c in plain.components}


def test_dask_command_turns_automatic_attach_on_and_off(monkeypatch) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    import nbcarbon.api

    monkeypatch.setenv("NBCARBON_REGION", "SE")
    nbcarbon.api.close_default_session()
    ip = InteractiveShell.instance()
    try:
        ip.run_cell("%load_ext nbcarbon")
        session = nbcarbon.api.default_session()
        assert ip.run_cell("%carbon dask on").success
        assert len(session._collectors) == 1
        assert ip.run_cell("%carbon dask off").success
        assert session._collectors == []
        assert not ip.run_cell("%carbon dask maybe").success
    finally:
        ip.run_cell("%unload_ext nbcarbon")
        InteractiveShell.clear_instance()


# -- workers inside the notebook's own process, and on its machine ------------------------------
def cpu_model_w(s: Session) -> float:
    (meter,) = [m for m in s.probe_result.meters if m.channel.method == "cpu-time-model"]
    return meter.watts_per_core


def samplers() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "nbcarbon-sampler")


def tree_cpu_s() -> float:
    """CPU seconds of this process and its descendants (other tests' worker processes may be
    alive: the notebook's model counts them too), read independently of nbcarbon."""
    t = os.times()
    total = time.process_time() + t.children_user + t.children_system
    for child in psutil.Process().children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            continue
    return total


def test_thread_workers_in_the_notebooks_process_add_nothing(tmp_path: Path) -> None:
    """LocalCluster(processes=False): three workers are threads of this very process, which the
    notebook's CPU-time model already counts whole. They start no meters and add no component;
    the record's CPU is the process's CPU, not three or four times it."""
    cluster = LocalCluster(n_workers=3, processes=False, threads_per_worker=1, dashboard_address=":0",
                           silence_logs=50)
    client = Client(cluster)
    s = session(tmp_path)
    try:
        s.start()
        before = samplers()
        collector = attach(client, s, timeout_s=TIMEOUT_S)
        assert samplers() == before  # no worker started meters of its own
        try:
            cpu0 = tree_cpu_s()
            fp = run_window(s, client, 0.5, [])
            cpu_s = tree_cpu_s() - cpu0
        finally:
            collector.detach()
    finally:
        s.close()
        client.close()
        cluster.close()
    assert not [c for c in fp.components if c.device.startswith("dask:")], fp.components
    assert not [w for w in fp.warnings if "dask" in w], fp.warnings
    (cpu,) = [c for c in fp.components if c.component == "cpu"]
    # The window holds the three busy loops; the process's CPU clock around it bounds the record.
    assert cpu_s >= 0.4
    assert 0.5 * cpu_s <= cpu.energy_j / cpu_model_w(s) <= 1.2 * cpu_s + 0.05, (cpu, cpu_s)


def test_process_workers_on_the_notebooks_machine_count_once_through_its_tree(tmp_path: Path) -> None:
    """LocalCluster(processes=True) without counters: the workers are the kernel's children, so
    its CPU-time model holds their busy seconds, and they add no ``dask:`` component."""
    cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0",
                           silence_logs=50)
    client = Client(cluster)
    client.wait_for_workers(2, timeout=60)
    s = session(tmp_path)
    try:
        collector = attach(client, s, timeout_s=TIMEOUT_S)
        try:
            # busy() spins on the clock: each worker uses about 1 s of CPU on an idle core and
            # less on a loaded one, so the bound below uses the workers' own CPU clocks.
            pids = list(client.run(os.getpid).values())

            def used() -> float:
                return sum(sum(psutil.Process(p).cpu_times()[:2]) for p in pids)

            c0 = used()
            fp = run_window(s, client, 1.0, [])
            workers_s = used() - c0
        finally:
            collector.detach()
    finally:
        s.close()
        client.close()
        cluster.close()
    assert not [c for c in fp.components if c.device.startswith("dask:")], fp.components
    (cpu,) = [c for c in fp.components if c.component == "cpu"]
    assert workers_s >= 0.5
    assert cpu.energy_j / cpu_model_w(s) >= 0.8 * workers_s, (cpu, workers_s)


# -- GPUs by identity, never by index -----------------------------------------------------------
class FakeWorker:
    """What the plugin touches of a ``distributed.Worker``: its name and handler table."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.handlers: dict = {}


def gpu_worker(name: str, nvml: object, monkeypatch: pytest.MonkeyPatch, root: Path):
    """The real plugin set up as a worker would (on this machine: one boot id for all), with a
    fake NVML standing in for the pod's driver. Returns ``(plugin, worker)``."""
    from nbcarbon.cluster import MeterPlugin

    monkeypatch.setenv("NBCARBON_POWERCAP_ROOT", str(root))
    monkeypatch.setenv("NBCARBON_INTERVAL", "0.2")
    plugin, worker = MeterPlugin(nvml=nvml), FakeWorker(name)
    plugin.setup(worker)
    return plugin, worker


def teardown(workers: dict) -> None:
    for plugin, worker in workers.values():
        plugin.teardown(worker)


def pod_snapshot(plugins: dict, salt: str, names: dict[str, str]) -> Snapshot:
    """One boundary: each plugin's real answer, as from a pod of its own (its own process)."""
    from nbcarbon.cluster import parse_answers

    rows = []
    for i, (name, (plugin, _)) in enumerate(plugins.items()):
        answer = plugin.counters(salt)
        answer["process"], answer["pid"] = f"pod-process-{name}", 100_000 + i
        rows.append([f"tcp://10.1.0.{i}:1", name, answer, None])
    return parse_answers(rows, names, 0.0)


def gpu_window(plugins: dict, local: Local, salt: str) -> tuple[dict[str, float], list[str], float]:
    names: dict[str, str] = {}
    t0 = time.monotonic()
    b = pod_snapshot(plugins, salt, names)
    time.sleep(0.5)
    e = pod_snapshot(plugins, salt, names)
    elapsed = time.monotonic() - t0
    comps, warnings = combine(b, e, elapsed, local)
    return {c.device: c.energy_j for c in comps if c.component == "gpu"}, warnings, elapsed


@pytest.mark.parametrize("shared_with_notebook", [False, True])
def test_gpus_are_told_apart_by_uuid_not_by_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  shared_with_notebook: bool) -> None:
    """Two pods on one node each see their own GPU as gpu0 (different UUIDs): both count. A third
    worker shares pod a's GPU: counted once. The notebook, on the same node, measures its own
    gpu0, which is another board, or (second case) pod b's board, which it then keeps."""
    from dataclasses import replace

    from nbcarbon.cluster import local_view
    from tests.fakes.nvml import FakeGpu, FakeNvml

    root = tmp_path / "powercap"
    root.mkdir()
    board_a, board_b = FakeGpu(power=100.0), FakeGpu(power=50.0)
    pod_a = FakeNvml([board_a])
    plugins = {"pod-a": gpu_worker("pod-a", pod_a, monkeypatch, root),
               "pod-a-2": gpu_worker("pod-a-2", pod_a, monkeypatch, root),
               "pod-b": gpu_worker("pod-b", FakeNvml([board_b]), monkeypatch, root)}
    notebook_gpu = FakeGpu(uuid=board_b.uuid) if shared_with_notebook else FakeGpu()
    s = Session(Settings(powercap_root=root, ledger=None, proc_stat=quiet_stat(root.parent)),
                {"NBCARBON_REGION": "SE"},
                nvml=FakeNvml([notebook_gpu]))
    salt = "s4lt"
    try:
        # The notebook as another process of the same node (same boot id, same powercap root).
        local = replace(local_view(s, salt), process=None, pids=frozenset({os.getpid()}))
        got, warnings, elapsed = gpu_window(plugins, local, salt)
    finally:
        s.close()
        teardown(plugins)
    expected = {"dask:pod-a/gpu0": 100.0 * elapsed}
    if not shared_with_notebook:
        expected["dask:pod-b/gpu0"] = 50.0 * elapsed
    assert got.keys() == expected.keys(), got
    for device, energy_j in expected.items():
        assert got[device] == pytest.approx(energy_j, rel=0.15)
    assert warnings == []


def test_without_a_uuid_the_pci_bus_id_on_the_machine_tells_gpus_apart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from nbcarbon.cluster import device_identity
    from tests.fakes.nvml import FakeGpu, FakeNvml

    root = tmp_path / "powercap"
    root.mkdir()
    shared = FakeGpu(uuid=None, pci_bus_id="00000000:3B:00.0", power=80.0)
    plugins = {"p1": gpu_worker("p1", FakeNvml([shared]), monkeypatch, root),
               "p2": gpu_worker("p2", FakeNvml([FakeGpu(uuid=None, pci_bus_id="00000000:86:00.0",
                                                        power=40.0)]), monkeypatch, root),
               "p3": gpu_worker("p3", FakeNvml([shared]), monkeypatch, root)}
    try:
        got, warnings, elapsed = gpu_window(plugins, Local(), "salt")
    finally:
        teardown(plugins)
    assert got.keys() == {"dask:p1/gpu0", "dask:p2/gpu0"}, got
    assert got["dask:p1/gpu0"] == pytest.approx(80.0 * elapsed, rel=0.15)
    # A bus id names a slot of one machine only: the same slot on two machines is two boards.
    meter = SimpleNamespace(uuid=None, pci_bus_id="00000000:3B:00.0")
    assert device_identity(meter, "machine-1") != device_identity(meter, "machine-2")


def shared_reading(name: str, host: str, rapl_j: float, use: list[float] | str, *, pid: int = 1,
                   instance: str | None = None) -> WorkerReading:
    """A worker on a RAPL host with a CPU-time share meter over channel 0 (cumulative use)."""
    r = reading(name, host, [rapl_j], channels=(RAPL,), pid=pid, instance=instance)
    return replace(r, shares=(("cpu-time", (0,)),), uses=(use,))


def test_in_share_mode_each_worker_is_charged_its_own_share_of_its_host() -> None:
    share = Local(attribution="share")
    b = snap(shared_reading("w0", "h1", 100, [0.0, 10.0]), shared_reading("w1", "h1", 100.2, [5.0, 10.0]),
             shared_reading("w2", "h2", 0, [0.0, 0.0]))
    e = snap(shared_reading("w0", "h1", 130, [1.0, 14.0]), shared_reading("w1", "h1", 130.2, [7.0, 14.0]),
             shared_reading("w2", "h2", 10, [2.0, 2.0]))
    comps, warnings = combine(b, e, 2.0, share)
    by = {c.device: c for c in comps}
    assert warnings == [] and len(comps) == 2
    # Shares of one host are disjoint: the workers' shares add up (1 and 2 of the host's 4 busy
    # CPU seconds), on the host's energy taken once.
    assert by["dask:w0/package-0"].energy_j == pytest.approx(30 * 0.75)
    assert by["dask:w0/package-0"].share == Share("cpu-time", 0.75, pytest.approx(30.0))
    assert by["dask:w2/package-0"].energy_j == pytest.approx(10.0)  # alone on its host
    # The same answers in machine mode: the host's counter once, whole.
    comps, _ = combine(b, e, 2.0)
    assert energies(comps) == {"cpu:dask:w0/package-0": 30, "cpu:dask:w2/package-0": 10}


def test_in_share_mode_a_worker_in_the_notebooks_tree_is_in_the_notebooks_share() -> None:
    local = Local(host="h1", kernel="h1", machine_channels=frozenset({("cpu", "package-0", "rapl-counter")}),
                  pids=frozenset({7}), attribution="share")
    b = snap(shared_reading("w0", "h1", 100, [0.0, 10.0], pid=7),
             shared_reading("w1", "h1", 100, [0.0, 10.0], pid=8))
    e = snap(shared_reading("w0", "h1", 130, [2.0, 14.0], pid=7),
             shared_reading("w1", "h1", 130, [1.0, 14.0], pid=8))
    comps, _ = combine(b, e, 2.0, local)
    # w0 is the notebook's child: its CPU time is in the notebook's own share. w1 (started apart,
    # on the same machine) is charged its own share on top.
    assert energies(comps) == {"cpu:dask:w1/package-0": 7.5}


def test_workers_each_alone_on_an_idle_host_are_not_charged_it_twice() -> None:
    # Each sees an idle machine and so "all of it is mine": added up, at most the whole.
    b = snap(shared_reading("w0", "h1", 100, [0.0, 10.0]), shared_reading("w1", "h1", 100, [0.0, 10.0]))
    e = snap(shared_reading("w0", "h1", 130, [0.0, 10.0]), shared_reading("w1", "h1", 130, [0.0, 10.0]))
    comps, _ = combine(b, e, 2.0, Local(attribution="share"))
    assert energies(comps) == {"cpu:dask:w0/package-0": 30}


def test_a_worker_share_that_fails_charges_its_host_once_and_says_why() -> None:
    b = snap(shared_reading("w0", "h1", 100, "machine CPU time not readable (Permission denied)"),
             shared_reading("w1", "h1", 100, "machine CPU time not readable (Permission denied)"))
    e = snap(shared_reading("w0", "h1", 130, "machine CPU time not readable (Permission denied)"),
             shared_reading("w1", "h1", 130, "machine CPU time not readable (Permission denied)"))
    comps, warnings = combine(b, e, 2.0, Local(attribution="share"))
    assert energies(comps) == {"cpu:dask:w0/package-0": 30}
    assert len(warnings) == 2 and all("charged whole" in w and "Permission denied" in w for w in warnings)
