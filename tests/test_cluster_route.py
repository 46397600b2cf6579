"""How a boundary reaches the workers: the scheduler called in-process, through the comm op
nbcarbon adds to it, or through ``run_on_scheduler``; one deadline for all workers; the answer's
JSON encoded in two parts.

The cluster tests in ``test_cluster.py`` run with the scheduler in the notebook's process (a
``LocalCluster``, called without a comm). Here a second client reaches the same scheduler by its
address only, on an event loop of its own, as a notebook reaches a remote scheduler.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("distributed")

from distributed import Client  # noqa: E402

import nbcarbon.cluster as nbcluster  # noqa: E402
from nbcarbon.cluster import SCHEDULER_HANDLER, MeterPlugin, _ask_workers, attach  # noqa: E402
from tests.fakes.powercap import FakePowercap  # noqa: E402
from tests.fakes.procstat import quiet_stat  # noqa: E402
from tests.test_cluster import (  # noqa: E402
    addresses_by_name,
    blocked_worker,
    cluster_with,
    run_window,
    session,
)

TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory):
    """Two workers on one fake RAPL host, and a client that knows the scheduler by its address."""
    root = tmp_path_factory.mktemp("remote") / "powercap"
    root.mkdir()
    fake = FakePowercap(root)
    fake.add_package(0, power=20.0)
    env = {"NBCARBON_POWERCAP_ROOT": str(root), "NBCARBON_INTERVAL": "0.2",
           "NBCARBON_PROC_STAT": str(quiet_stat(tmp_path_factory.getbasetemp()))}
    cluster, local_client = cluster_with({"a": env, "b": env})
    client = Client(cluster.scheduler_address, set_as_default=False)
    yield fake, cluster, client
    client.close()
    local_client.close()
    cluster.close()


def test_a_scheduler_known_by_address_is_asked_through_its_comm_op(remote, tmp_path: Path) -> None:
    fake, cluster, client = remote
    s = session(tmp_path)
    collector = attach(client, s, timeout_s=TIMEOUT_S)
    try:
        assert collector._route == "handler"
        assert SCHEDULER_HANDLER in cluster.scheduler.handlers
        fp = run_window(s, client, 1.0, [fake])
    finally:
        collector.detach()
        s.close()
    dask = [c for c in fp.components if c.device.startswith("dask:")]
    assert [(c.component, c.method) for c in dask] == [("cpu", "rapl-counter")], fp.components
    assert dask[0].energy_j == pytest.approx(20.0 * 1.0, abs=1e-4)
    assert not [w for w in fp.warnings if "dask" in w], fp.warnings


def test_a_new_scheduler_gets_the_comm_op_again(remote, tmp_path: Path) -> None:
    """A scheduler without the op (restarted since) answers None: the op is added again and the
    same boundary is read, not lost."""
    _, cluster, client = remote
    s = session(tmp_path)
    collector = attach(client, s, timeout_s=TIMEOUT_S)
    try:
        del cluster.scheduler.handlers[SCHEDULER_HANDLER]
        snap = collector.collect()
    finally:
        collector.detach()
        s.close()
    assert len(snap.readings) == 2 and not snap.failed, snap
    assert collector._route == "handler"
    assert SCHEDULER_HANDLER in cluster.scheduler.handlers


def _cannot_install(dask_scheduler: object = None) -> bool:
    raise RuntimeError("an older nbcarbon on the scheduler")


def test_a_scheduler_that_cannot_take_the_op_is_asked_through_run_on_scheduler(
        remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, cluster, client = remote
    cluster.scheduler.handlers.pop(SCHEDULER_HANDLER, None)
    monkeypatch.setattr(nbcluster, "_install", _cannot_install)
    s = session(tmp_path)
    collector = attach(client, s, timeout_s=TIMEOUT_S)
    try:
        snaps = [collector.collect() for _ in range(2)]
    finally:
        collector.detach()
        s.close()
    assert collector._route == "run"
    assert SCHEDULER_HANDLER not in cluster.scheduler.handlers
    for snap in snaps:
        assert len(snap.readings) == 2 and not snap.failed, snap


def test_a_slow_worker_behind_a_remote_scheduler_is_named_missing_within_the_timeout(
        remote, tmp_path: Path) -> None:
    _, _, client = remote
    s = session(tmp_path)
    collector = attach(client, s, timeout_s=TIMEOUT_S)
    slow = addresses_by_name(client)["b"]
    try:
        window = s.begin()
        with blocked_worker(client, slow, tmp_path):
            t = time.perf_counter()
            fp = s.end(window)
            elapsed = time.perf_counter() - t
        after = collector.collect()  # the worker's comm was closed at the deadline; a new one now
    finally:
        collector.detach()
        s.close()
    assert elapsed < TIMEOUT_S + 2.0  # the timeout, not the 4 s block (margin for a busy machine)
    assert any("dask worker b missing" in w and "no answer within" in w for w in fp.warnings), fp.warnings
    assert set(after.readings) == set(addresses_by_name(client).values()), after


# -- one deadline for all workers, without a cluster ----------------------------------------------
class _Calls:
    """What ``scheduler.rpc(address)`` returns: each op call behaves as its worker does."""

    def __init__(self, behaviour: str, cancelled: list[str], address: str) -> None:
        self.behaviour, self.cancelled, self.address = behaviour, cancelled, address

    def __getattr__(self, op: str):
        async def call(**kwargs: object) -> object:
            if self.behaviour == "answer":
                await asyncio.sleep(0.01)
                return f"{op}:{kwargs['salt']}"
            if self.behaviour == "error":
                raise OSError("Timed out trying to connect to tcp://10.0.0.9:1 after 30 s")
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                self.cancelled.append(self.address)
                raise
            return None

        return call


def _scheduler(behaviours: dict[str, tuple[object, str]], cancelled: list[str]) -> SimpleNamespace:
    workers = {a: SimpleNamespace(address=a, name=name) for a, (name, _) in behaviours.items()}
    return SimpleNamespace(workers=workers,
                           rpc=lambda address: _Calls(behaviours[address][1], cancelled, address))


def test_every_worker_is_asked_at_once_under_one_deadline() -> None:
    cancelled: list[str] = []
    scheduler = _scheduler({"tcp://a:1": (0, "answer"), "tcp://b:1": ("b", "error"),
                            "tcp://c:1": (("pod", 3), "hang"), "tcp://d:1": ("d", "answer")}, cancelled)
    t = time.perf_counter()
    rows = asyncio.run(_ask_workers(scheduler, "s4lt", 0.2))
    elapsed = time.perf_counter() - t
    assert 0.2 <= elapsed < 10.0  # the deadline, not the 30 s a hanging worker takes
    assert rows == [
        ["tcp://a:1", 0, "nbcarbon_counters:s4lt", None],
        ["tcp://b:1", "b", None, "OSError: Timed out trying to connect to tcp://10.0.0.9:1 after 30 s"],
        ["tcp://c:1", "('pod', 3)", None, "no answer within 0.2 s"],  # a name msgpack can carry
        ["tcp://d:1", "d", "nbcarbon_counters:s4lt", None],
    ]
    assert cancelled == ["tcp://c:1"]
    assert asyncio.run(_ask_workers(_scheduler({}, cancelled), "s", 0.2)) == []


def test_a_cancelled_collection_cancels_every_request() -> None:
    cancelled: list[str] = []
    scheduler = _scheduler({"tcp://a:1": (0, "hang"), "tcp://b:1": (1, "hang")}, cancelled)

    async def cancel_soon() -> None:
        task = asyncio.ensure_future(_ask_workers(scheduler, "s", 5.0))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)  # the requests' own cancellations run

    asyncio.run(cancel_soon())
    assert sorted(cancelled) == ["tcp://a:1", "tcp://b:1"]


# -- the worker's answer ----------------------------------------------------------------------------
def test_the_answer_is_the_counters_as_one_json_object(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "powercap"
    root.mkdir()
    FakePowercap(root).add_package(0, power=20.0)
    monkeypatch.setenv("NBCARBON_POWERCAP_ROOT", str(root))
    monkeypatch.setenv("NBCARBON_PROC_STAT", str(quiet_stat(tmp_path)))
    plugin, worker = MeterPlugin(use_gpu=False), SimpleNamespace(name="w", handlers={})
    plugin.setup(worker)
    try:
        answers = {salt: json.loads(worker.handlers["nbcarbon_counters"](salt=salt)) for salt in ("a", "b")}
        counters = {salt: plugin.counters(salt) for salt in ("a", "b")}
        again = json.loads(plugin.answer("a"))
    finally:
        plugin.teardown(worker)
    for salt in ("a", "b"):
        answer, expected = answers[salt], json.loads(json.dumps(counters[salt]))
        assert answer.keys() == expected.keys()
        for key in ("age_s", "totals", "uses"):  # read at each call: same shape, later values
            assert type(answer[key]) is type(expected[key])
            if key != "age_s":
                assert len(answer[key]) == len(expected[key]) > 0
            answer[key] = expected[key]
        assert answer == expected
    assert answers["a"]["host"] != answers["b"]["host"]  # keyed by each request's salt
    assert again["age_s"] >= answers["a"]["age_s"]
