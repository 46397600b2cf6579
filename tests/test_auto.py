"""``%carbon auto on`` in a real kernel: one record per executed cell, none for widget messages.

A widget interaction is a ``comm_msg`` from the frontend, not an ``execute_request``: it runs
no cell, so nothing may be measured. nbclient cannot send comm messages, so this test talks
to the kernel with jupyter_client as a frontend does.
"""

from __future__ import annotations

import json
import queue
from typing import Any


def _collect(kc: Any, msg_id: str, timeout: float = 30) -> list[dict]:
    """The iopub messages caused by ``msg_id``, up to the kernel going idle."""
    out = []
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            raise AssertionError("kernel did not go idle") from None
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return out
        out.append(msg)


def _run(kc: Any, code: str) -> list[dict]:
    msg_id = kc.execute(code)
    outputs = _collect(kc, msg_id)
    reply = kc.get_shell_msg(timeout=30)
    assert reply["content"]["status"] == "ok", reply["content"]
    return outputs


def _records(outputs: list[dict]) -> list[dict]:
    return [m["content"]["metadata"]["nbcarbon"] for m in outputs
            if m["msg_type"] == "display_data" and "nbcarbon" in m["content"].get("metadata", {})]


def _stdout(outputs: list[dict]) -> str:
    return "".join(m["content"]["text"] for m in outputs if m["msg_type"] == "stream")


def test_auto_measures_each_executed_cell_and_no_widget_message(kernel) -> None:
    kc = kernel
    _run(kc, "%load_ext nbcarbon")
    assert _records(_run(kc, "%carbon auto on")) == []  # settings cells are not work
    for code in ("x = 1", "y = x + 1\ny", "print('hello')"):
        (rec,) = _records(_run(kc, code))  # exactly one compact readout under each cell
        assert rec["kind"] == "cell" and rec["status"] == "ok"
    assert _records(_run(kc, "%carbon dashboard")) == []
    out = _run(kc, "import nbcarbon\ndash = nbcarbon.dashboard()\n"
                   "opts = [v for _, v in dash.region.options]\n"
                   "print(dash.region.model_id, opts.index('PL'))")
    assert len(_records(out)) == 1
    model_id, index = _stdout(out).split()

    # A frontend changing the selector: an 'update' comm message, as JupyterLab sends it.
    msg = kc.session.msg("comm_msg", {"comm_id": model_id, "data": {
        "method": "update", "state": {"index": int(index)}, "buffer_paths": []}})
    kc.shell_channel.send(msg)
    widget_out = _collect(kc, msg["header"]["msg_id"])
    assert _records(widget_out) == []  # no new record; only readouts updated in place
    assert any(m["msg_type"] == "update_display_data" for m in widget_out)

    out = _run(kc, "import json, nbcarbon.api as a\n"
                   "print(json.dumps([len(a.default_session().records), "
                   "a.default_session().region.code]))")
    count, region = json.loads(_stdout(out))
    assert region == "PL"  # the widget message was handled...
    assert count == 4  # ...and measured nothing: x = 1, y, print, the dashboard cell
    assert len(_records(out)) == 1

    _run(kc, "%carbon auto off")
    assert _records(_run(kc, "z = 3")) == []
