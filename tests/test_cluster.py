"""The cluster's energy in a window: real LocalCluster workers reading fake powercap trees.

The fake counters advance in this process; the meters run in the worker processes and read the
files, so the whole path (plugin, scheduler fan-out, host keys, combination) is the real one.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

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
from nbcarbon.session import Session  # noqa: E402
from nbcarbon.settings import Settings  # noqa: E402
from tests.fakes.powercap import FakePowercap  # noqa: E402

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
    return Session(Settings(powercap_root=root, ledger=None), {"NBCARBON_REGION": "SE"})


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


def run_window(s: Session, client: Client, seconds: float) -> tuple[object, float, float]:
    """Runs ``busy`` on every worker in one window; the instants returned are the middles of the
    begin and end calls (the workers are read at some instant inside each call)."""
    a = time.monotonic()
    window = s.begin()
    b = time.monotonic()
    futures = [client.submit(busy, seconds, workers=[addr], pure=False)
               for addr in addresses_by_name(client).values()]
    client.gather(futures)
    c = time.monotonic()
    fp = s.end(window)
    d = time.monotonic()
    return fp, (a + b) / 2, (c + d) / 2


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("shared") / "powercap"
    root.mkdir()
    fake = FakePowercap(root)
    fake.add_package(0, power=20.0)
    fake.start()
    env = {"NBCARBON_POWERCAP_ROOT": str(root), "NBCARBON_INTERVAL": "0.2"}
    cluster, client = cluster_with({"a": env, "b": env})
    yield fake, client
    client.close()
    cluster.close()
    fake.stop()


@pytest.fixture(scope="module")
def separate(tmp_path_factory: pytest.TempPathFactory):
    fakes = {}
    envs = {}
    for name, power_w in (("a", 15.0), ("b", 25.0)):
        root = tmp_path_factory.mktemp(f"host-{name}") / "powercap"
        root.mkdir()
        fake = FakePowercap(root)
        fake.add_package(0, power=power_w)
        fakes[name] = fake.start()
        envs[name] = {"NBCARBON_POWERCAP_ROOT": str(root), "NBCARBON_INTERVAL": "0.2"}
    cluster, client = cluster_with(envs)
    yield fakes, client
    client.close()
    cluster.close()
    for fake in fakes.values():
        fake.stop()


def test_workers_sharing_a_host_are_counted_once(shared, tmp_path: Path) -> None:
    fake, client = shared
    s = session(tmp_path)
    collector = attach(client, s, timeout_s=TIMEOUT_S)
    try:
        fp, t0, t1 = run_window(s, client, 2.0)
    finally:
        collector.detach()
        s.close()
    dask = [c for c in fp.components if c.device.startswith("dask:")]
    assert [(c.component, c.method) for c in dask] == [("cpu", "rapl-counter")], fp.components
    assert dask[0].device == "dask:a/package-0"
    truth = fake.true_energy_j("intel-rapl:0", t0, t1)
    assert dask[0].energy_j == pytest.approx(truth, rel=0.02)
    assert fp.energy_j == pytest.approx(sum(c.energy_j for c in fp.components))
    assert not [w for w in fp.warnings if "dask" in w], fp.warnings
    # Process models of workers in the notebook's own process tree are already in its components.
    assert any(c.device == "process tree" for c in fp.components)


def test_workers_on_separate_hosts_each_match_their_counters(separate, tmp_path: Path) -> None:
    fakes, client = separate
    s = session(tmp_path)
    collector = attach(client, s, timeout_s=TIMEOUT_S)
    try:
        fp, t0, t1 = run_window(s, client, 2.0)
    finally:
        collector.detach()
        s.close()
    by_device = {c.device: c for c in fp.components if c.device.startswith("dask:")}
    assert set(by_device) == {"dask:a/package-0", "dask:b/package-0"}, fp.components
    for name, fake in fakes.items():
        truth = fake.true_energy_j("intel-rapl:0", t0, t1)
        assert by_device[f"dask:{name}/package-0"].energy_j == pytest.approx(truth, rel=0.02)
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
        # time.sleep run by client.run blocks the worker's event loop: it cannot answer.
        blocker = threading.Thread(target=client.run, args=(time.sleep, 2.5), kwargs={"workers": [slow]})
        blocker.start()
        time.sleep(0.3)
        t = time.perf_counter()
        fp = s.end(window)
        elapsed = time.perf_counter() - t
        blocker.join()
    finally:
        collector.detach()
        s.close()
    assert elapsed < TIMEOUT_S + 1.0
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
    assert elapsed < TIMEOUT_S + 1.0
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
