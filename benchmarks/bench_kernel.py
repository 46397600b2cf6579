"""``%%carbon``'s per-cell cost in a real ipykernel, as a notebook user pays it.

Run: ``.venv/bin/python benchmarks/bench_kernel.py [--cells 600] [--ledger]``

The InteractiveShell measure (``bench_window.py``) isolates nbcarbon's own work; this one adds
everything a kernel does with it: the readout's ``display_data`` message with its record, sent
over ZeroMQ and received by the client. An empty cell and the same cell under ``%%carbon`` are
executed alternately (interleaved, so drift hits both alike) through ``jupyter_client``; each time
is from sending the request to the kernel reporting idle on IOPub, i.e. when every output has been
delivered. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from jupyter_client.manager import start_new_kernel


def _run(kc, code: str, timeout_s: float = 30.0) -> float:
    """Seconds from execute to the kernel's idle status for this request."""
    t0 = time.perf_counter()
    msg_id = kc.execute(code)
    while True:
        msg = kc.get_iopub_msg(timeout=timeout_s)
        if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"):
            return time.perf_counter() - t0


#: A display of the same size as a readout (text, HTML, metadata: the sizes of a readout this
#: kernel has just shown), without nbcarbon: what any output costs to send and receive with
#: IPython's ``display``, so the table separates that from nbcarbon's own work. ``_send`` is the
#: least any output of that size costs: the one message, built and sent through the kernel's own
#: session as ipykernel's publisher does, with no flush and nothing else (the floor of a readout).
_DISPLAY_SETUP = """
from IPython.display import display as _d
_bundle = {{"text/plain": "t" * {plain}, "text/html": "h" * {html}}}
_meta = {{"x": "v" * {meta}}}
def _noop():
    pass
def _show():
    _d(_bundle, raw=True, metadata=_meta)
_pub = get_ipython().display_pub
def _send():
    _pub.session.send(_pub.pub_socket, "display_data",
                      {{"data": _bundle, "metadata": _meta, "transient": {{"display_id": "x"}}}},
                      parent=_pub.parent_header, ident=_pub.topic)
"""

#: The floor of any tool that measures a cell the way nbcarbon must: hooks on IPython's
#: ``pre_run_cell`` and ``post_run_cell`` (as nbcarbon's), which read the same meters nbcarbon's
#: session reads (each one's read, as the boundary calls it) at both ends of a cell marked
#: ``#floor``, and the end hook sends the message ``_send`` sends. No window, no record, no
#: readout rendered: what ``%%carbon`` costs beyond this is nbcarbon's own bookkeeping.
_READS_SETUP = """
import nbcarbon.api as _api
_floor_meters = tuple(_api.default_session().sampler.meters)
def _floor_pre(info):
    if info.raw_cell.startswith("#floor"):
        for _m in _floor_meters:
            _m.read_with_anomalies()
def _floor_post(result):
    if result.info.raw_cell.startswith("#floor"):
        for _m in _floor_meters:
            _m.read_with_anomalies()
        _send()
get_ipython().events.register("pre_run_cell", _floor_pre)
get_ipython().events.register("post_run_cell", _floor_post)
"""

#: For scale, not a floor: the least a tool could call a readout of a measured cell. Hooks like
#: the floor's, on cells marked ``#minimal``, that also take an id and the start time, make a
#: dict record (times, energy and power per meter, a price) and one line of text and HTML, and
#: send them as ``_send`` does. What it leaves out is what nbcarbon's readout and record carry
#: (the table per component with how each number was obtained, the region and PUE, the window
#: tree, warnings, shares) and what its session keeps (records to re-price, display ids, pacing).
_MINIMAL_SETUP = """
import time as _t, os as _os
from html import escape as _esc
_min_begin = None
_min_g_per_kwh = _api.default_session().region.g_per_kwh  # priced as the session prices
def _min_pre(info):
    global _min_begin
    if info.raw_cell.startswith("#minimal"):
        _min_begin = (_t.time(), _t.monotonic(),
                      tuple(_m.read_with_anomalies()[0] for _m in _floor_meters))
def _min_post(result):
    if not result.info.raw_cell.startswith("#minimal"):
        return
    ends = tuple(_m.read_with_anomalies()[0] for _m in _floor_meters)
    d = _t.monotonic() - _min_begin[1]
    comps = [{"component": m.channel.component, "method": m.channel.method, "energy_j": b - a,
              "mean_power_w": (b - a) / d if d > 0 else 0.0}
             for m, a, b in zip(_floor_meters, _min_begin[2], ends)]
    energy = sum(c["energy_j"] for c in comps)
    record = {"id": _os.urandom(16).hex(), "started_at": _min_begin[0], "duration_s": d,
              "energy_j": energy, "co2e_g": energy * _min_g_per_kwh / 3.6e6, "components": comps}
    text = f"{energy:.3g} J · {record['co2e_g'] * 1000:.3g} mg CO2e · {d:.2f} s"
    _pub.session.send(_pub.pub_socket, "display_data",
                      {"data": {"text/plain": text, "text/html": "<div>" + _esc(text) + "</div>"},
                       "metadata": {"x": record}, "transient": {"display_id": record["id"]}},
                      parent=_pub.parent_header, ident=_pub.topic)
get_ipython().events.register("pre_run_cell", _min_pre)
get_ipython().events.register("post_run_cell", _min_post)
"""


def _printed(kc, code: str) -> str:
    """What ``code`` prints in the kernel (its stream output, stripped)."""
    msg_id = kc.execute(code)
    text = ""
    while True:
        msg = kc.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            text += msg["content"]["text"]
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return text.strip()


def _meters(kc) -> str:
    """What the kernel's session reads at a boundary, for the table (e.g. ``cpu (CPU-time model)``)."""
    return _printed(kc, "print('; '.join(f'{c.component} ({c.method})' for c in "
                        "(m.channel for m in _floor_meters)))")


def _readout_sizes(kc) -> dict[str, int]:
    """Characters of the text, HTML and metadata (JSON) of the readout of one ``%%carbon`` cell."""
    msg_id = kc.execute("%%carbon\npass")
    sizes: dict[str, int] = {}
    while True:
        msg = kc.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "display_data":
            content = msg["content"]
            sizes = {"plain": len(content["data"].get("text/plain", "")),
                     "html": len(content["data"].get("text/html", "")),
                     "meta": len(json.dumps(content["metadata"]))}
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return sizes


def measure(cells: int, history: bool = True) -> dict[str, float]:
    env = dict(os.environ, NBCARBON_LEDGER="off", NBCARBON_REGION="SE")
    extra = [] if history else ["--HistoryManager.enabled=False"]
    km, kc = start_new_kernel(kernel_name="python3", env=env, extra_arguments=extra)
    try:
        _run(kc, "%load_ext nbcarbon")
        for _ in range(30):  # warm up both paths
            _run(kc, "pass")
            _run(kc, "%%carbon\npass")
        sizes = _readout_sizes(kc)
        _run(kc, _DISPLAY_SETUP.format(**sizes))
        _run(kc, _READS_SETUP)
        _run(kc, _MINIMAL_SETUP)
        for _ in range(30):  # warm up the other paths too
            _run(kc, "#floor\npass")
            _run(kc, "#minimal\npass")
        meters = _meters(kc)
        plain, magic, shown, sent, reads, call, minimal = [], [], [], [], [], [], []
        for _ in range(cells):
            plain.append(_run(kc, "pass"))
            call.append(_run(kc, "_noop()"))
            magic.append(_run(kc, "%%carbon\npass"))
            shown.append(_run(kc, "_show()"))
            sent.append(_run(kc, "_send()"))
            reads.append(_run(kc, "#floor\npass"))
            minimal.append(_run(kc, "#minimal\npass"))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    p, m, d = statistics.median(plain), statistics.median(magic), statistics.median(shown)
    f, fr, fc = statistics.median(sent), statistics.median(reads), statistics.median(call)
    fm = statistics.median(minimal)
    return {"cells": cells, "plain_ms": p * 1e3, "carbon_ms": m * 1e3, "overhead_ms": (m - p) * 1e3,
            "display_ms": d * 1e3, "display_overhead_ms": (d - p) * 1e3,
            "send_ms": f * 1e3, "send_overhead_ms": (f - p) * 1e3,
            "reads_ms": fr * 1e3, "reads_overhead_ms": (fr - p) * 1e3, "meters": meters,
            "call_ms": fc * 1e3, "call_overhead_ms": (fc - p) * 1e3,
            "minimal_ms": fm * 1e3, "minimal_overhead_ms": (fm - p) * 1e3,
            "plain_min": min(plain) * 1e3, "plain_max": max(plain) * 1e3, "sizes": sizes,
            "carbon_min": min(magic) * 1e3, "carbon_max": max(magic) * 1e3}


#: What the ledger kernel reports of its writer: records written, transactions, and the writer
#: thread's own CPU time (its clock, so the cell's thread is not counted). ``_settle()`` ends a
#: block: with the ledger on it waits for the writer to have written every record so far.
_LEDGER_SETUP = """
import time as _t, nbcarbon.api as _api
_w = _api.default_ledger()
def _settle():
    if _w is not None:
        _w.flush()
def _writer_stats():
    _w.flush()
    cpu = _t.clock_gettime(_t.pthread_getcpuclockid(_w._thread.ident))
    print(_w.written, _w.batches, cpu)
"""


def measure_ledger(cells: int, block: int = 10) -> dict[str, float]:
    """The history ledger's cost when cells run back to back (Run All, ``nbcarbon run``).

    The ledger is on by default; the other measures turn it off, as CodeCarbon's file is. Its
    writer is a thread, so its cost lands in whichever cell runs when it writes: it is measured
    as the time of whole blocks of ``block`` pairs (an empty cell, then one under ``%%carbon``),
    in two kernels in turn, one with the ledger off and one with it on. Each block ends with a
    cell that waits until the writer has written every record of the block (``_settle()``; in
    the kernel without a ledger it does nothing), so each block carries all of its own writes
    and none of them lands in the other kernel's block.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="nbcarbon-bench-ledger-") as tmp:
        kernels = {}
        try:
            for name, ledger in (("off", "off"), ("on", os.path.join(tmp, "ledger.sqlite3"))):
                env = dict(os.environ, NBCARBON_LEDGER=ledger, NBCARBON_REGION="SE")
                kernels[name] = start_new_kernel(kernel_name="python3", env=env)
            for _, kc in kernels.values():
                _run(kc, "%load_ext nbcarbon")
                _run(kc, _LEDGER_SETUP)
                for _ in range(30):
                    _run(kc, "pass")
                    _run(kc, "%%carbon\npass")
                _run(kc, "_settle()")
            kc_on = kernels["on"][1]
            written0, batches0, cpu0 = map(float, _printed(kc_on, "_writer_stats()").split())
            per_pair: dict[str, list[float]] = {"off": [], "on": []}
            for i in range(max(1, cells // block)):
                for name in (("off", "on") if i % 2 == 0 else ("on", "off")):
                    kc = kernels[name][1]
                    t0 = time.perf_counter()
                    for _ in range(block):
                        _run(kc, "pass")
                        _run(kc, "%%carbon\npass")
                    _run(kc, "_settle()")
                    per_pair[name].append((time.perf_counter() - t0) / block)
            written1, batches1, cpu1 = map(float, _printed(kc_on, "_writer_stats()").split())
        finally:
            for km, kc in kernels.values():
                kc.stop_channels()
                km.shutdown_kernel(now=True)
    records = written1 - written0
    off, on = statistics.median(per_pair["off"]), statistics.median(per_pair["on"])
    return {"cells": block * len(per_pair["on"]), "block": block,
            "pair_off_ms": off * 1e3, "pair_on_ms": on * 1e3, "cost_ms": (on - off) * 1e3,
            "records": records, "batches": batches1 - batches0,
            "writer_cpu_us": (cpu1 - cpu0) * 1e6 / records if records else float("nan")}


def measure_listener(records: int = 2000) -> dict[str, float]:
    """What a record costs the cell's thread with the ledger on: the session's listener builds an
    entry and puts it on the writer's queue (``api.LedgerHook._on_record``). Real records of
    real windows, in this process. A row, not an assertion in the tests: a timed assertion
    fails on a busy machine."""
    import tempfile

    from nbcarbon.api import LedgerHook
    from nbcarbon.session import Session
    from nbcarbon.settings import Settings

    session = Session(Settings(), {"NBCARBON_REGION": "SE"})
    fps = [session.end(session.begin()) for _ in range(records)]
    costs = []
    with tempfile.TemporaryDirectory(prefix="nbcarbon-bench-listener-") as tmp:
        hook = LedgerHook(session, Path(tmp) / "ledger.sqlite3", {"JPY_SESSION_NAME": "x.ipynb"})
        try:
            for fp in fps:
                t0 = time.perf_counter()
                hook._on_record(fp)
                costs.append(time.perf_counter() - t0)
        finally:
            hook.close()
            session.close()
    return {"listener_us": statistics.median(costs) * 1e6,
            "listener_p90_us": statistics.quantiles(costs, n=10)[-1] * 1e6,
            "listener_records": float(records)}


def ledger_table(r: dict[str, float]) -> str:
    return "\n".join([
        "| the history ledger (on by default), cells back to back | value |",
        "|---|---|",
        f"| a pair of cells (empty, then `%%carbon`), ledger off (median block, per pair) | "
        f"{r['pair_off_ms']:.2f} ms |",
        f"| the same pair, ledger on | {r['pair_on_ms']:.2f} ms |",
        f"| **the ledger's cost per measured cell** ({int(r['cells'])} pairs each, blocks of "
        f"{int(r['block'])} in turn, each ending when its records are written; median block) "
        f"| **{r['cost_ms']:+.2f} ms** |",
        f"| records written per transaction | {r['records'] / max(r['batches'], 1):.1f} "
        f"({int(r['records'])} in {int(r['batches'])}) |",
        f"| the writer thread's CPU per record (JSON and SQLite, off the cell's thread) | "
        f"{r['writer_cpu_us']:.0f} µs |",
        *([f"| what a record costs the cell's thread: the session's listener builds an entry and "
           f"queues it (median / 90th percentile of {int(r['listener_records']):,} "
           f"real records in a row, in one process) | "
           f"{r['listener_us']:.1f} / {r['listener_p90_us']:.1f} µs |"]
          if "listener_us" in r else []),
    ])


def table(r: dict[str, float]) -> str:
    meters = r.get("meters") or "the kernel's"
    return "\n".join([
        "| measure, real ipykernel | median | min–max |",
        "|---|---|---|",
        f"| empty cell, round trip to idle | {r['plain_ms']:.2f} ms | "
        f"{r['plain_min']:.2f}–{r['plain_max']:.2f} ms |",
        f"| empty cell under `%%carbon`, readout delivered | {r['carbon_ms']:.2f} ms | "
        f"{r['carbon_min']:.2f}–{r['carbon_max']:.2f} ms |",
        f"| **`%%carbon` overhead per cell** ({int(r['cells'])} cells each, interleaved) | "
        f"**{r['overhead_ms']:.2f} ms** | |",
        f"| for scale: a cell (no nbcarbon) that displays an output of the readout's size "
        f"({_size_text(r)}) with IPython's `display` | "
        f"{r['display_ms']:.2f} ms | +{r['display_overhead_ms']:.2f} ms over the empty cell |",
        *([f"| for scale: a cell that calls a function that does nothing (`_noop()`) | "
           f"{r['call_ms']:.2f} ms | +{r['call_overhead_ms']:.2f} ms over the empty cell |"]
          if "call_ms" in r else []),
        *([f"| the floor: a cell (no nbcarbon) that sends one `display_data` message of that size "
           f"through the kernel's session, nothing else | {r['send_ms']:.2f} ms | "
           f"+{r['send_overhead_ms']:.2f} ms over the empty cell |"] if "send_ms" in r else []),
        *([f"| the floor with the meters: that message sent from `pre_run_cell`/`post_run_cell` "
           f"hooks that also read the meters nbcarbon reads ({meters}) at both ends of the cell; "
           f"no record, no readout rendered | {r['reads_ms']:.2f} ms | "
           f"+{r['reads_overhead_ms']:.2f} ms over the empty cell |"] if "reads_ms" in r else []),
        *([f"| for scale, not a floor: a minimal readout, from hooks as in the row above that also "
           f"make a dict record (times, energy and power per meter, a price) and one line of text "
           f"and HTML | {r['minimal_ms']:.2f} ms | +{r['minimal_overhead_ms']:.2f} ms over the "
           f"empty cell |"] if "minimal_ms" in r else []),
    ])


def _size_text(r: dict) -> str:
    sizes = r.get("sizes") or {}
    if not sizes:
        return "size unknown"
    total = sizes["plain"] + sizes["html"] + sizes["meta"]
    return (f"{total:,} characters: text {sizes['plain']}, HTML {sizes['html']}, record "
            f"{sizes['meta']}")


def run(quick: bool) -> dict[str, float]:
    """For ``bench.py``: the measure at its usual size, and the ledger's cost beside it."""
    result = measure(600 if quick else 1000)
    result["ledger"] = measure_ledger(600 if quick else 1000) | measure_listener()
    return result


def render(r: dict[str, float]) -> str:
    return (table(r) + "\n\nThe rows, in order. A cell without nbcarbon that displays a bundle of "
            "the readout's size with IPython's `display`, which flushes stdout and stderr first "
            "(in ipykernel each flush is a round trip to the IOPub thread, whether or not anything "
            "was printed); nbcarbon sends its readout as the same `display_data` message but "
            "flushes only a stream that holds output (`nbcarbon/shown.py`), so its whole overhead, "
            "record and readout included, can be below that of a plain `display`. A cell that "
            "calls a function doing nothing: what the next cell pays to call its `_send()`. The "
            "floor: the same message sent the way nbcarbon sends it, with no record, no meters and "
            "no rendering. The floor with the meters adds what any tool that measures the cell "
            "must also do: IPython's cell hooks, as nbcarbon's, reading the meters nbcarbon reads "
            "at both ends of the cell, with no call in the cell. What `%%carbon` costs beyond that "
            "row is nbcarbon's own work: the window's bookkeeping, the record, and the readout's "
            "text and HTML. That work runs once per cell after the kernel's own code has filled "
            "the processor's caches, so it costs several times what the same calls cost in a hot "
            "loop (section 3). The minimal readout is for scale: the same hooks also make a dict "
            "record (times, energy and power per meter, a price) and one line of text and HTML, "
            "the least a tool could call a readout; nbcarbon's readout also says per component "
            "how each number was obtained, with the region, PUE and warnings, and its session "
            "keeps every record to re-price, nest and total." + _ledger_text(r.get("ledger")))


def _ledger_text(r: dict[str, float] | None) -> str:
    if not r:
        return ""
    return ("\n\n" + ledger_table(r) + "\n\nThe rows above turn the history ledger off, as "
            "CodeCarbon's file is off in the peers' rows; a notebook has it on. Its writer is a "
            "thread (`nbcarbon/ledger.py`): a record costs the cell a put on a queue, and the "
            "JSON and SQLite are the thread's. That work still lands in whichever cell runs when "
            "it writes, so it is measured here as whole blocks of cells, with the ledger on and "
            "off in two kernels in turn (`measure_ledger`). While cells keep coming the writer "
            "lingers between writes instead of waiting on the queue, so a record wakes no thread "
            "and the records of a tenth of a second share one transaction; ending a block with "
            "the writer's flush makes its last transaction smaller than that.")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cells", type=int, default=600)
    parser.add_argument("--no-history", action="store_true",
                        help="turn IPython's SQLite history off in the kernel (isolates its share)")
    parser.add_argument("--ledger", action="store_true",
                        help="also measure the history ledger's cost (two kernels, blocks in turn)")
    args = parser.parse_args()
    print(table(measure(args.cells, history=not args.no_history)))
    if args.ledger:
        print(_ledger_text(measure_ledger(args.cells) | measure_listener()))


if __name__ == "__main__":
    main()
