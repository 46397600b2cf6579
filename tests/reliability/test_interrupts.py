"""Ctrl-C and exits: in the cell, and inside nbcarbon's own begin and end.

Whatever happens inside nbcarbon's hooks, the cell's own value, exception and status are IPython's,
no "Error in callback" traceback lands in the notebook, no window is left open, and the next cell is
measured. The shell tests put the fault exactly inside ``Session.begin``/``end``; the kernel test
sends a real SIGINT (``interrupt_kernel``) while a cell, ``begin`` or ``end`` is running.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import kernel_env
from tests.reliability.conftest import extension, remember


def raising(exc: BaseException):
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise exc
    return fail


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), RuntimeError("boom")])
@pytest.mark.parametrize("where", ["begin", "end"])
def test_fault_in_the_hooks_never_touches_the_cell(make_shell, capsys, where, exc) -> None:
    ip = make_shell()
    s = extension(ip).session
    setattr(s, where, raising(exc))
    result = ip.run_cell("%%carbon\n6 * 7")
    assert result.success and result.result == 42
    out = capsys.readouterr()
    assert "Error in callback" not in out.out + out.err and "Traceback" not in out.out + out.err
    assert out.err.count("nbcarbon:") == 1  # one line says this cell was not measured
    assert not extension(ip)._frames and not extension(ip).measuring
    result = ip.run_cell("%%carbon\nraise ValueError('mine')")  # the user's error stays theirs
    assert isinstance(result.error_in_exec, ValueError)
    delattr(s, where)
    ip.run_cell("%%carbon --label next\n1")
    assert [fp.label for fp in s.records] == ["next"]


def test_pending_pricing_is_applied_even_when_end_fails(make_shell) -> None:
    ip = make_shell()
    ext = extension(ip)
    s = ext.session
    s.end = raising(RuntimeError("boom"))
    ip.run_cell("%%carbon\nget_ipython().run_line_magic('carbon', 'pue 1.5')")
    assert s.pue == 1.5 and ext._pending == {}


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_nested_magic_end_failure_keeps_the_users_exception(make_shell, exc) -> None:
    ip = make_shell()
    s = extension(ip).session
    s.end = raising(exc)
    result = ip.run_cell("%%time\n%%carbon\nraise ValueError('mine')")
    assert isinstance(result.error_in_exec, ValueError)
    result = ip.run_cell("%%time\n%%carbon\n6 * 7")
    assert result.success and result.result == 42


def test_nested_magic_begin_failure_runs_the_cell_unmeasured(make_shell) -> None:
    ip = make_shell()
    s = extension(ip).session
    s.begin = raising(RuntimeError("boom"))
    result = ip.run_cell("%%time\n%%carbon\n6 * 7")
    assert result.success and result.result == 42
    del s.begin
    ip.run_cell("%%time\n%%carbon --label next\n1")
    assert [fp.label for fp in s.records] == ["next"]


def test_sys_exit_in_a_measured_cell(make_shell) -> None:
    ip = make_shell()
    s = extension(ip).session
    for cell in ("%%carbon\nimport sys\nsys.exit(3)", "%%time\n%%carbon\nimport sys\nsys.exit(0)"):
        result = ip.run_cell(cell)
        assert isinstance(result.error_in_exec, SystemExit)
        assert s.records[-1].status == "error"  # as the kernel's reply says
    assert ip.run_cell("%%carbon\n1 + 1").result == 2


# -- a real kernel, real SIGINTs ----------------------------------------------------------------

class Kernel:
    def __init__(self, env: dict[str, str]) -> None:
        from jupyter_client import KernelManager

        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env=env, cwd=os.getcwd())
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def run(self, code: str, interrupt_after_s: float | None = None) -> tuple[dict, list[dict]]:
        """Execute ``code``; returns the reply content and the iopub outputs of the request."""
        msg_id = self.kc.execute(code)
        if interrupt_after_s is not None:
            time.sleep(interrupt_after_s)
            self.km.interrupt_kernel()
        reply = self.kc.get_shell_msg(timeout=60)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=60)
        outputs = []
        while True:
            msg = self.kc.get_iopub_msg(timeout=30)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
            if msg["msg_type"] in ("stream", "display_data", "execute_result", "error"):
                outputs.append({"type": msg["msg_type"], **msg["content"]})
        for o in outputs:
            if "nbcarbon" in o.get("metadata", {}):
                remember("kernel output", [o.get("data"), o["metadata"]])
        return reply["content"], outputs

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def records_in(outputs: list[dict]) -> list[dict]:
    return [o["metadata"]["nbcarbon"] for o in outputs if "nbcarbon" in o.get("metadata", {})]


def text_of(outputs: list[dict]) -> str:
    return "".join(o.get("text", "") + "".join(o.get("traceback", [])) for o in outputs)


def value_of(outputs: list[dict]) -> str | None:
    for o in outputs:
        if o["type"] == "execute_result":
            return o["data"]["text/plain"]
    return None


def test_ctrl_c_in_a_real_kernel(tmp_path: Path) -> None:
    k = Kernel(kernel_env(tmp_path, NBCARBON_INTERVAL="0.1"))
    try:
        reply, _ = k.run("import threading, time, sys, json\nthreads0 = threading.active_count()")
        assert reply["status"] == "ok"
        reply, _ = k.run("%load_ext nbcarbon\nimport nbcarbon.api, nbcarbon.magics\n"
                         "s = nbcarbon.api.default_session()")
        assert reply["status"] == "ok"

        # 1. Ctrl-C while the cell itself runs: interrupted, recorded as such.
        reply, out = k.run("%%carbon\nfor _ in range(300):\n    time.sleep(0.1)", interrupt_after_s=1.0)
        assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
        assert [r["status"] for r in records_in(out)] == ["interrupted"]

        # 2. and 3. Ctrl-C while nbcarbon opens or closes the window: the cell's value stands.
        for where in ("begin", "end"):
            k.run(f"_orig = s.{where}\n"
                  f"s.{where} = lambda *a, **k: (time.sleep(4), _orig(*a, **k))[1]")
            reply, out = k.run("%%carbon\nz = 6 * 7\nz", interrupt_after_s=1.0)
            assert reply["status"] == "ok", (where, text_of(out))
            assert value_of(out) == "42"
            assert "Error in callback" not in text_of(out) and "Traceback" not in text_of(out)
            assert records_in(out) == [], where
            k.run(f"del s.{where}")

        # 4. sys.exit() in a measured cell: an error for the kernel and the record; kernel lives.
        reply, out = k.run("%%carbon\nsys.exit(3)")
        assert reply["status"] == "error" and reply["ename"] == "SystemExit"
        assert [r["status"] for r in records_in(out)] == ["error"]
        assert k.km.is_alive()

        # The state is consistent and the next cell is measured.
        reply, out = k.run("%%carbon --label after\nz + 1")
        assert value_of(out) == "43" and [r["label"] for r in records_in(out)] == ["after"]
        reply, out = k.run("ext = nbcarbon.magics._extensions[id(get_ipython())]\n"
                           "print(json.dumps([not ext.measuring, len(s.records)]))")
        assert json.loads(text_of(out)) == [True, 3]

        # 5. %reload_ext and %unload_ext: one set of hooks, threads back to the count before loading.
        k.run("%reload_ext nbcarbon\n%load_ext nbcarbon")
        reply, out = k.run("%%carbon\n1")
        assert len(records_in(out)) == 1
        reply, out = k.run("%unload_ext nbcarbon\ntime.sleep(0.2)\n"
                           "print(json.dumps([threading.active_count(), threads0, "
                           "sorted(t.name for t in threading.enumerate())]))")
        now, before, names = json.loads(text_of(out))
        assert now == before, names
        assert not any(n.startswith("nbcarbon") for n in names)
    finally:
        k.close()
