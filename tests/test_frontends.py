"""Re-pricing through a frontend that holds the readouts (nbcarbon's JupyterLab extension).

The kernel side is tested two ways: :class:`~nbcarbon.frontends.Frontends` with comm objects of
the ``comm`` package's shape, and a real ipykernel driven by jupyter_client playing the
extension: it opens the ``nbcarbon.reprice`` comm and claims readouts, as
``labextension/src/repricer.ts`` does. What matters most: a readout updated through the comm gets
exactly the bundle ``update_display_data`` would have carried, and a readout nobody claimed is
still updated the usual way.
"""

from __future__ import annotations

import queue
import uuid
from typing import Any

import pytest

from nbcarbon.frontends import CHUNK, FRONTENDS_KEPT, TARGET, VERSION, Frontends


class FakeComm:
    """The parts of ``comm.base_comm.BaseComm`` the kernel side uses."""

    def __init__(self, fail: bool = False) -> None:
        self.comm_id = uuid.uuid4().hex
        self.sent: list[dict[str, Any]] = []
        self.closed = False
        self.fail = fail
        self.on_message = self.on_closed = None

    def on_msg(self, callback: Any) -> None:
        self.on_message = callback

    def on_close(self, callback: Any) -> None:
        self.on_closed = callback

    def send(self, data: dict[str, Any]) -> None:
        if self.fail:
            raise OSError("socket closed")
        self.sent.append(data)

    def close(self) -> None:
        self.closed = True

    def message(self, data: object) -> None:
        self.on_message({"content": {"comm_id": self.comm_id, "data": data}})


class FakeManager:
    def __init__(self) -> None:
        self.targets: dict[str, Any] = {}

    def register_target(self, name: str, callback: Any) -> None:
        self.targets[name] = callback


class FakeKernel:
    def __init__(self) -> None:
        self.comm_manager = FakeManager()


def _open(kernel: FakeKernel, data: object, comm: FakeComm | None = None) -> FakeComm:
    comm = comm or FakeComm()
    kernel.comm_manager.targets[TARGET](comm, {"content": {"comm_id": comm.comm_id, "data": data}})
    return comm


def _update(record_id: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    return (record_id, {"text/plain": f"t{record_id}"}, {"nbcarbon": {"id": record_id}})


def test_each_update_goes_once_on_the_newest_comm_that_claims_its_record() -> None:
    f, kernel = Frontends(), FakeKernel()
    assert f.attach(kernel) and f.attach(kernel)  # twice: registered once
    a = _open(kernel, {"version": 2, "holds": ["r1", "r2"]})
    b = _open(kernel, {"version": 2, "holds": []})
    b.message({"version": 2, "holds": ["r2", "r3"]})
    a.message({"version": 2, "holds": ["r5"]})
    a.message({"version": 2, "drops": ["r1"]})
    assert f.claimed() == {"r2", "r3", "r5"}
    delivered = f.send([_update(i) for i in ("r1", "r2", "r3", "r4", "r5")])
    assert delivered == {"r2", "r3", "r5"}  # r1 dropped, r4 never claimed: the caller sends those
    # r2 is held by both: it goes once, on the newer comm; every frontend reads every message
    assert [u[0] for m in b.sent for u in m["updates"]] == ["r2", "r3"]
    assert [u[0] for m in a.sent for u in m["updates"]] == ["r5"]
    assert b.sent[0]["updates"][0] == ["r2", {"text/plain": "tr2"}, {"nbcarbon": {"id": "r2"}}]
    assert {m["version"] for m in a.sent + b.sent} == {VERSION} == {2}
    assert {m["target"] for m in a.sent + b.sent} == {TARGET}  # how a frontend knows it
    assert [b.sent[0]["seq"], a.sent[0]["seq"]] == [1, 2]  # one sequence across the comms
    a.message({"version": 2, "ack": 2, "applied": 1})
    a.on_closed({"content": {"comm_id": a.comm_id}})
    assert f.claimed() == {"r2", "r3"} and f.stats()["comms"] == 1
    s = f.stats()
    assert (s["opened"], s["closed"], s["acks"], s["applied"], s["updates_sent"]) == (2, 1, 1, 1, 3)
    assert s["messages_sent"] == 2


def test_reloaded_pages_do_not_multiply_what_a_reprice_sends() -> None:
    """A page reloaded three times leaves three comms the kernel cannot tell are dead, each
    claiming every readout: a re-price still sends each update once."""
    f, kernel = Frontends(), FakeKernel()
    f.attach(kernel)
    ids = [f"r{i}" for i in range(CHUNK + 3)]
    pages = [_open(kernel, {"version": 2, "holds": ids}) for _ in range(4)]
    assert f.send([_update(i) for i in ids]) == set(ids)
    assert [len(p.sent) for p in pages] == [0, 0, 0, 2]  # all on the newest page's comm
    assert f.stats()["updates_sent"] == len(ids) and f.stats()["messages_sent"] == 2


def test_an_older_comm_carries_what_a_broken_newer_one_could_not() -> None:
    f, kernel = Frontends(), FakeKernel()
    f.attach(kernel)
    older = _open(kernel, {"version": 2, "holds": ["r1", "r2"]})
    newer = _open(kernel, {"version": 2, "holds": ["r2", "r3"]}, FakeComm(fail=True))
    assert f.send([_update("r1"), _update("r2"), _update("r3")]) == {"r1", "r2"}
    assert newer.closed and f.stats()["comms"] == 1
    assert [u[0] for m in older.sent for u in m["updates"]] == ["r1", "r2"]  # r3: nobody else
    assert f.claimed() == {"r1", "r2"}


def test_opening_more_comms_than_kept_closes_the_oldest() -> None:
    f, kernel = Frontends(), FakeKernel()
    f.attach(kernel)
    comms = [_open(kernel, {"version": 2, "holds": [f"r{i}"]}) for i in range(FRONTENDS_KEPT + 2)]
    assert [c.closed for c in comms[:3]] == [True, True, False]
    assert f.stats()["comms"] == FRONTENDS_KEPT and f.stats()["closed"] == 2
    assert f.claimed() == {f"r{i}" for i in range(2, FRONTENDS_KEPT + 2)}


def test_many_updates_go_in_chunks_with_rising_sequence_numbers() -> None:
    f, kernel = Frontends(), FakeKernel()
    f.attach(kernel)
    ids = [f"r{i}" for i in range(CHUNK * 2 + 7)]
    comm = _open(kernel, {"version": 2, "holds": ids})
    assert f.send([_update(i) for i in ids]) == set(ids)
    assert [len(m["updates"]) for m in comm.sent] == [CHUNK, CHUNK, 7]
    assert [m["seq"] for m in comm.sent] == [1, 2, 3]
    assert [u[0] for m in comm.sent for u in m["updates"]] == ids  # in the order given


@pytest.mark.parametrize("data", [None, "holds", {"holds": ["x"]}, {"version": 1, "holds": ["x"]},
                                  {"version": 3, "holds": ["x"]}, {"version": 2, "holds": "x"},
                                  {"version": 2, "holds": [1, None]}])
def test_messages_of_another_shape_or_version_claim_nothing(data: object) -> None:
    f, kernel = Frontends(), FakeKernel()
    f.attach(kernel)
    comm = _open(kernel, data)
    comm.message(data)
    assert f.claimed() == frozenset()
    assert f.send([_update("x")]) == set() and comm.sent == []


def test_a_comm_that_fails_is_dropped_and_its_records_not_counted_delivered() -> None:
    f, kernel = Frontends(), FakeKernel()
    f.attach(kernel)
    broken = _open(kernel, {"version": 2, "holds": ["r1"]}, FakeComm(fail=True))
    working = _open(kernel, {"version": 2, "holds": ["r2"]})
    assert f.send([_update("r1"), _update("r2")]) == {"r2"}
    assert broken.closed and f.stats()["comms"] == 1 and working.sent


def test_no_comm_manager_no_frontends() -> None:
    f = Frontends()
    assert f.attach(object()) is False and not f.attached
    assert f.claimed() == frozenset() and f.send([_update("x")]) == set()


def test_status_says_how_readouts_are_repriced(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbcarbon import frontends as module

    f, kernel = Frontends(), FakeKernel()
    monkeypatch.setattr(module, "frontends", f)
    assert module.status_line() is None  # not a kernel: nothing to say
    f.attach(kernel)
    assert "readout by readout, paced" in module.status_line()
    _open(kernel, {"version": 2, "holds": ["a", "b"]})
    assert module.status_line().startswith("re-pricing: 2 readout(s) held by 1 frontend(s)")
    _open(kernel, {"version": 2, "holds": ["b", "a"]})  # the same notebook in a second tab
    assert module.status_line().startswith("re-pricing: 2 readout(s) held by 2 frontend(s)")


# -- a real kernel, jupyter_client playing the extension -------------------------------------
def _run(kc: Any, code: str, comm_id: str | None = None) -> list[dict]:
    """Execute ``code``; the iopub messages it caused (and comm messages on ``comm_id``, which
    carry no parent of ours), up to the kernel going idle."""
    msg_id = kc.execute(code)
    out = []
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=60)
        except queue.Empty:
            raise AssertionError("kernel did not go idle") from None
        if msg["msg_type"] == "comm_msg" and msg["content"].get("comm_id") == comm_id:
            out.append(msg)
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
        out.append(msg)
    reply = kc.get_shell_msg(timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]
    return out


def _shell(kc: Any, msg_type: str, content: dict[str, Any]) -> None:
    kc.shell_channel.send(kc.session.msg(msg_type, content))


def _readout_ids(outputs: list[dict]) -> list[str]:
    return [m["content"]["metadata"]["nbcarbon"]["id"] for m in outputs
            if m["msg_type"] == "display_data" and "nbcarbon" in m["content"]["metadata"]]


def _updates(outputs: list[dict]) -> dict[str, tuple[dict, dict]]:
    """record id -> (data, metadata) of every readout update, whichever way it came."""
    found: dict[str, tuple[dict, dict]] = {}
    for m in outputs:
        if m["msg_type"] == "update_display_data":
            c = m["content"]
            found[c["transient"]["display_id"]] = (c["data"], c["metadata"])
        elif m["msg_type"] == "comm_msg":
            for record_id, data, metadata in m["content"]["data"]["updates"]:
                found[record_id] = (data, metadata)
    return found


def test_a_frontend_gets_its_readouts_in_comm_messages_with_the_same_bundles(kernel) -> None:
    kc = kernel
    _run(kc, "%load_ext nbcarbon")
    claimed = _readout_ids(_run(kc, "import nbcarbon\nfor _ in range(5):\n"
                                    "    with nbcarbon.track('x'):\n        pass"))
    assert len(claimed) == 5
    comm_id = uuid.uuid4().hex
    _shell(kc, "comm_open", {"comm_id": comm_id, "target_name": TARGET,
                             "data": {"version": 2, "holds": claimed[:3]}})
    _shell(kc, "comm_msg", {"comm_id": comm_id, "data": {"version": 2, "holds": claimed[3:4]}})
    # Shown after the claims: nobody holds it, so it is updated by display id.
    unclaimed = _readout_ids(_run(kc, "%%carbon\npass"))
    via_comm = _run(kc, "%carbon region DE", comm_id)
    comm_msgs = [m for m in via_comm if m["msg_type"] == "comm_msg"]
    assert len(comm_msgs) == 1 and comm_msgs[0]["content"]["data"]["seq"] == 1
    assert [u[0] for u in comm_msgs[0]["content"]["data"]["updates"]] == claimed[:4]
    direct = {m["content"]["transient"]["display_id"] for m in via_comm
              if m["msg_type"] == "update_display_data"}
    assert direct == {claimed[4], *unclaimed}  # the unclaimed, and nothing twice
    got = _updates(via_comm)
    assert all(md["nbcarbon"]["region"]["code"] == "DE" for _, md in got.values())
    _shell(kc, "comm_msg", {"comm_id": comm_id, "data": {"version": 2, "ack": 1, "applied": 4}})
    status = "".join(m["content"].get("text", "") for m in _run(kc, "%carbon status")
                     if m["msg_type"] == "stream")
    assert "re-pricing: 4 readout(s) held by 1 frontend(s)" in status, status

    # The same prices reached without the frontend: the same bytes, readout by readout.
    _shell(kc, "comm_close", {"comm_id": comm_id, "data": {}})
    _run(kc, "%carbon region SE")
    again = _updates(_run(kc, "%carbon region DE"))
    assert set(again) == set(got)
    for record_id, (data, metadata) in got.items():
        assert again[record_id] == (data, metadata), record_id
    stats = _run(kc, "import nbcarbon.frontends as f\nprint(f.stats())")
    text = "".join(m["content"].get("text", "") for m in stats if m["msg_type"] == "stream")
    assert "'comms': 0" in text and "'acks': 1" in text and "'applied': 4" in text, text
    assert "'updates_sent': 4" in text and "'closed': 1" in text, text
