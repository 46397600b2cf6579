"""Re-pricing in a real kernel: ``%carbon region`` and ``%carbon pue`` with N readouts and a summary shown.

Run: ``.venv/bin/python benchmarks/bench_reprice.py [--readouts 10000]``

Why a real kernel: a re-price sends one ``update_display_data`` message per readout shown (its
display id, new text, HTML and record), so what it costs is mostly the kernel's messaging, which
an ``InteractiveShell`` does not have. One cell shows N compact readouts (``nbcarbon.track()``
blocks in a loop); then ``%carbon region PL`` is timed from the request to the kernel's idle
status, every update received, and the updates are counted and sized (their JSON). Then one
``%carbon summary`` of those N cells is shown and ``%carbon pue 1.3`` re-prices readouts and
summary alike; the summary's update is sized on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from jupyter_client.manager import start_new_kernel

from nbcarbon.shown import MAX_MESSAGES, WINDOW_S


def _run(kc, code: str, timeout_s: float = 600.0) -> tuple[float, list[dict]]:
    """Seconds from execute to idle, and the IOPub messages of the request."""
    t0 = time.perf_counter()
    msg_id = kc.execute(code)
    got = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout_s)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        got.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return time.perf_counter() - t0, got


#: ``_floor(n)`` sends ``n`` ``update_display_data`` messages of ``size`` JSON bytes through the
#: kernel's own session, as nbcarbon's publisher does, without pacing: the least N updates cost.
_FLOOR_SETUP = """
_pub = get_ipython().display_pub
_content = {{"data": {{"text/plain": "t" * {size}}}, "metadata": {{}},
             "transient": {{"display_id": "floor"}}}}
def _floor(n):
    send, socket, parent, topic = _pub.session.send, _pub.pub_socket, _pub.parent_header, _pub.topic
    for _ in range(n):
        send(socket, "update_display_data", _content, parent=parent, ident=topic)
"""


def _size(msgs: list[dict], kind: str, summary: bool | None = None) -> tuple[int, int]:
    """How many messages of ``kind`` and their content's JSON bytes (summary or not: by record)."""
    n = size = 0
    for m in msgs:
        if m["msg_type"] != kind:
            continue
        record = m["content"].get("metadata", {}).get("nbcarbon", {})
        if summary is not None and (record.get("kind") == "summary") != summary:
            continue
        n += 1
        size += len(json.dumps(m["content"]))
    return n, size


def measure(readouts: int, repeats: int = 3) -> dict:
    env = dict(os.environ, NBCARBON_LEDGER="off", NBCARBON_REGION="SE")
    km, kc = start_new_kernel(kernel_name="python3", env=env,
                              extra_arguments=["--HistoryManager.enabled=False"])
    try:
        _run(kc, "%load_ext nbcarbon")
        t_show, shown = _run(kc, "import nbcarbon\n"
                                 f"for _ in range({readouts}):\n"
                                 "    with nbcarbon.track():\n"
                                 "        pass")
        n_shown, shown_bytes = _size(shown, "display_data")
        region = []
        for i in range(repeats):
            dt, msgs = _run(kc, f"%carbon region {('PL', 'FR')[i % 2]}")
            n, size = _size(msgs, "update_display_data")
            region.append((dt, n, size))
        frontend = _with_frontend(kc, shown, repeats)
        _, summ = _run(kc, "%carbon summary")
        _, summary_bytes = _size(summ, "display_data", summary=True)
        # The floor: the same number of messages of a readout update's size, sent through the
        # kernel's session with nothing else (no record, no rendering, no pacing).
        each = max(1, region[-1][2] // max(1, region[-1][1]))
        _run(kc, _FLOOR_SETUP.format(size=each))
        floor = []
        for _ in range(repeats):
            dt, msgs = _run(kc, f"_floor({readouts})")
            floor.append((dt, sum(m["msg_type"] == "update_display_data" for m in msgs)))
        # nbcarbon's own re-pricing with its pacing off (as no Jupyter server is in the way
        # here): what the kernel's work and the messages cost without the server's rate limit.
        _run(kc, "import nbcarbon.shown as _shown\n_paced_at = _shown.MAX_MESSAGES\n"
                 "_shown.MAX_MESSAGES = 10 ** 9")
        unpaced = []
        for i in range(repeats):
            dt, msgs = _run(kc, f"%carbon region {('DE', 'SE')[i % 2]}")
            unpaced.append((dt, _size(msgs, "update_display_data")[0]))
        _run(kc, "_shown.MAX_MESSAGES = _paced_at")
        pue = []
        for i in range(repeats):
            dt, msgs = _run(kc, f"%carbon pue {(1.3, 1.2)[i % 2]}")
            pue.append((dt, *_size(msgs, "update_display_data", summary=False),
                        *_size(msgs, "update_display_data", summary=True)))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return {
        "readouts": readouts, "shown": n_shown, "show_s": t_show,
        "shown_bytes": shown_bytes / max(1, n_shown),
        "region_s": [r[0] for r in region], "region_updates": region[-1][1],
        "region_bytes": region[-1][2],
        "summary_bytes": summary_bytes,
        "pue_s": [p[0] for p in pue], "pue_readout_updates": pue[-1][1],
        "pue_readout_bytes": pue[-1][2], "pue_summary_updates": pue[-1][3],
        "pue_summary_bytes": pue[-1][4],
        "floor_s": [f[0] for f in floor], "floor_received": min(f[1] for f in floor),
        "unpaced_s": [u[0] for u in unpaced], "unpaced_received": min(u[1] for u in unpaced),
        **frontend,
    }


def _with_frontend(kc, shown: list[dict], repeats: int) -> dict:
    """``%carbon region`` with a frontend that holds every readout, as nbcarbon's JupyterLab
    extension does (``nbcarbon/frontends.py``): this client opens the ``nbcarbon.reprice`` comm
    and claims the readouts it received, then times the re-price to idle with every comm
    message received; the comm is closed after, so the measures that follow are as before."""
    import uuid

    from nbcarbon.frontends import TARGET, VERSION

    ids = [m["content"]["metadata"]["nbcarbon"]["id"] for m in shown
           if m["msg_type"] == "display_data" and "nbcarbon" in m["content"].get("metadata", {})]
    comm_id = uuid.uuid4().hex
    kc.shell_channel.send(kc.session.msg("comm_open", {
        "comm_id": comm_id, "target_name": TARGET, "data": {"version": VERSION, "holds": ids}}))
    _run(kc, "pass")  # the shell channel is in order: the claims are taken before this runs
    times, comm_msgs, comm_bytes, received, direct = [], 0, 0, 0, 0
    for i in range(repeats):
        dt, msgs = _run(kc, f"%carbon region {('DE', 'PL')[i % 2]}")
        mine = [m for m in msgs if m["msg_type"] == "comm_msg"
                and m["content"].get("comm_id") == comm_id]
        times.append(dt)
        comm_msgs, comm_bytes = len(mine), sum(len(json.dumps(m["content"])) for m in mine)
        received = sum(len(m["content"]["data"]["updates"]) for m in mine)
        direct = _size(msgs, "update_display_data")[0]
    kc.shell_channel.send(kc.session.msg("comm_close", {"comm_id": comm_id, "data": {}}))
    _run(kc, "pass")
    return {"frontend_s": times, "frontend_messages": comm_msgs, "frontend_bytes": comm_bytes,
            "frontend_received": received, "frontend_direct": direct}


def table(r: dict) -> str:
    med = statistics.median
    n = r["readouts"]
    rows = [
        "| measure, real ipykernel | value |",
        "|---|---|",
        f"| readouts shown (one cell, `nbcarbon.track()` in a loop) | {r['shown']:,} "
        f"({r['show_s']:.1f} s, {r['shown_bytes']:.0f} bytes each) |",
        f"| `%carbon region` with {n:,} readouts shown: time to idle, every update received | "
        f"**{med(r['region_s']):.2f} s** (runs: {', '.join(f'{x:.2f}' for x in r['region_s'])}) |",
        f"| … updates sent, total size | {r['region_updates']:,} `update_display_data`, "
        f"{r['region_bytes'] / 1e6:.1f} MB |",
        *([f"| `%carbon region` with {n:,} readouts shown, in a frontend that holds them (as "
           f"nbcarbon's JupyterLab extension does: `nbcarbon/frontends.py`): time to idle, every "
           f"update received | **{med(r['frontend_s']):.2f} s** (runs: "
           f"{', '.join(f'{x:.2f}' for x in r['frontend_s'])}) |",
           f"| … updates sent, total size | {r['frontend_received']:,} updates in "
           f"{r['frontend_messages']} comm messages, {r['frontend_bytes'] / 1e6:.1f} MB; "
           f"{r['frontend_direct']:,} `update_display_data` |"] if "frontend_s" in r else []),
        f"| `%carbon summary` of those {n:,} cells: size shown | {r['summary_bytes'] / 1e6:.2f} MB |",
        f"| `%carbon pue` with the readouts and the summary shown: time to idle | "
        f"**{med(r['pue_s']):.2f} s** |",
        f"| … the summary's update | {r['pue_summary_updates']} message, "
        f"**{r['pue_summary_bytes'] / 1e6:.2f} MB** |",
        f"| … the readouts' updates | {r['pue_readout_updates']:,} messages, "
        f"{r['pue_readout_bytes'] / 1e6:.1f} MB |",
        *([f"| `%carbon region` with nbcarbon's pacing off (no server here to need it): time "
           f"to idle, every update received | **{med(r['unpaced_s']):.2f} s** "
           f"({r['unpaced_received']:,} updates) |"] if "unpaced_s" in r else []),
        *([f"| the floor: {n:,} messages of an update's size sent through the kernel's session, "
           f"nothing else, unpaced: time to idle | **{med(r['floor_s']):.2f} s** "
           f"({r['floor_received']:,} received) |"] if "floor_s" in r else []),
    ]
    return "\n".join(rows)


def run(quick: bool) -> dict:
    """For ``bench.py``: 2,000 readouts (one burst, under the pacing limit) and 10,000 (paced),
    then the same in JupyterLab and Chromium where the test environment has them."""
    repeats = 2 if quick else 3
    return {"small": measure(2_000, repeats), "large": measure(10_000, repeats),
            "browser": browser(1 if quick else 2)}


def browser(repeats: int) -> dict:
    """``bench_reprice_browser.py`` run with the test environment's Python (``.venv``: JupyterLab,
    Playwright and the built extension, which this benchmark's environment does not install),
    or why it could not run."""
    import subprocess
    import tempfile
    from pathlib import Path

    here = Path(__file__).resolve().parent
    python = here.parent / ".venv" / "bin" / "python"
    if not Path("/usr/bin/chromium").exists():
        return {"skipped": "no /usr/bin/chromium (apt-get install chromium)"}
    if not python.exists():
        return {"skipped": "no test environment (.venv: pip install -e '.[test]')"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "browser.json"
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
        proc = subprocess.run([str(python), str(here / "bench_reprice_browser.py"), "--repeats",
                               str(repeats), "--json", str(out)], capture_output=True, text=True,
                              env=env, timeout=1800, check=False)
        if proc.returncode != 0 or not out.exists():
            tail = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()][-2:]
            return {"skipped": f"failed (exit {proc.returncode}): " + " | ".join(tail)}
        return json.loads(out.read_text())


def browser_table(r: dict) -> str:
    """The page's side of re-pricing (``bench_reprice_browser.py``), with and without the
    extension."""
    med = statistics.median
    rows = ["| JupyterLab 4 + headless Chromium | with nbcarbon's extension | extension disabled |",
            "|---|---|---|"]

    def row(label: str, key: str) -> None:
        vals = [med(x[key] for x in r[k]) for k in ("extension", "none")]
        rows.append(f"| {label} | {vals[0]:.2f} s | {vals[1]:.2f} s |")

    row(f"run the cell that shows {r['readouts']:,} readouts, to the kernel idle", "show_s")
    row("`%carbon region PL`: every readout in the notebook model re-priced (what a save writes)",
        "model_s")
    rendered = r["extension"][0]["rendered"]
    row(f"… every readout rendered in the page re-priced ({rendered:,}: JupyterLab renders the "
        "first 50 outputs of a cell until asked for more)", "shown_s")
    return "\n".join(rows)


def render(results: dict) -> str:
    small, r = results["small"], results["large"]
    med = statistics.median
    page = results.get("browser")
    if page and "skipped" not in page:
        page_text = (
            "\n\nAs a JupyterLab user sees it (`benchmarks/bench_reprice_browser.py`: a real "
            "JupyterLab server and Debian's headless Chromium, run with the test environment; "
            f"{page['readouts']:,} readouts in one cell, because JupyterLab itself took more than "
            "10 minutes to add 10,000 outputs to one cell here, whoever sends them). From running "
            "`%carbon region PL` to the last readout re-priced, with nbcarbon's extension and "
            "with it disabled in the page (then each readout is an `update_display_data`, paced); "
            "medians of " + str(len(page["extension"])) + " run(s) each:\n\n" + browser_table(page))
    elif page:
        page_text = f"\n\nIn a browser: not measured ({page['skipped']})."
    else:
        page_text = ""
    return table(r) + page_text + (
        f"\n\nWith {small['readouts']:,} readouts (under the {MAX_MESSAGES:,} messages that go out "
        f"in one burst): `%carbon region` {med(small['region_s']):.2f} s "
        f"({med(small['region_s']) / small['readouts'] * 1e3:.2f} ms per readout, all in: the "
        f"kernel's work and the client's), `%carbon pue` {med(small['pue_s']):.2f} s, the "
        f"summary's update {small['pue_summary_bytes'] / 1e6:.2f} MB"
        + (f"; the same number of bare messages, the floor: {med(small['floor_s']):.2f} s"
           if "floor_s" in small else "") + ".\n\n"
        "Why 10,000 take longer: nbcarbon keeps its messages under "
        f"{MAX_MESSAGES:,} per {WINDOW_S:g} s (`nbcarbon/shown.py`), because the Jupyter server "
        "stops forwarding a kernel's IOPub messages above 1,000 a second over 3 s (its default "
        "`iopub_msg_rate_limit`) and ZeroMQ drops messages a slow client has not taken: sent "
        "faster, some readouts would silently keep their old prices. One message per readout "
        "is the protocol's (no message updates several outputs with different contents), so "
        "through a Jupyter server with default settings 10,000 readouts take at least 10 s, "
        "whatever the kernel does. Without a server in the way the floor is the messages "
        "themselves (the last row): one message per readout costs the kernel and the client "
        "about as much as nbcarbon's whole update of it.\n\n"
        "Unless the frontend holds the readouts: nbcarbon's JupyterLab extension tells the kernel "
        "which readouts its notebook shows (comm `nbcarbon.reprice`, `nbcarbon/frontends.py`), "
        "and the kernel sends their new bundles (the same text, HTML and record an "
        "`update_display_data` would carry) a few hundred to a comm message, which the server "
        "does not pace; the extension writes them into the notebook. The row \"in a frontend "
        "that holds them\" times that: this benchmark's client opens the comm and claims every "
        "readout, as the extension does, and the time ends when the kernel is idle with every "
        "comm message received and decoded (the extension's writing them into the notebook is "
        "the browser's work, checked by `tests/browser/test_reprice_browser.py`).\n\n"
        "Times are from sending the request to the kernel's idle status, with every message "
        "received and decoded by the client (`jupyter_client`, in the benchmark's process): "
        "that is the least a frontend does with them. Sizes are the JSON of each message's "
        "content.")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readouts", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(table(measure(args.readouts, args.repeats)))


if __name__ == "__main__":
    main()
