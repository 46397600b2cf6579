"""Cost of a Dask cluster at a cell's boundaries, for N = 2, 8 and 32 worker processes.

What is timed, per size, in a fresh ``LocalCluster`` of N worker processes (one thread each, with
their nannies, as ``LocalCluster()`` makes them) on a shared fake RAPL tree, so each worker has a
machine-wide counter and a memory model to read:

- ``collect``: :meth:`nbcarbon.cluster.ClusterCollector.collect`, one boundary as a cell pays it
  (one client -> scheduler call; the scheduler asks every worker at once; each worker reads its
  meters and answers);
- ``end``: :meth:`ClusterCollector.end`, which also combines the two snapshots into components
  (and, the first time a worker is seen, looks it up in the notebook's process tree);
- ``window``: a whole ``Session.begin()`` + ``Session.end()`` with the cluster attached, i.e. what
  ``%%carbon`` adds to a cell on top of its own meters.

Summaries are median, 90th percentile and max of ``repeat`` boundaries after 5 warm-up ones.
Target: < 20 ms at 32. On a 2-core machine 32 worker processes time-share the cores, so the
boundary also measures how soon the operating system schedules 32 processes to answer.

    python benchmarks/bench_cluster.py [--sizes 2,8,32] [--repeat 50] [--processes yes|no]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from nbcarbon.cluster import ClusterCollector, attach  # noqa: E402
from tests.fakes.powercap import FakePowercap  # noqa: E402


async def _noop_fan_out(timeout_s: float, dask_scheduler: Any = None) -> int:
    """The same fan-out as nbcarbon's (``nbcarbon.cluster._fan_out``: one RPC to every worker at
    once, each under a timeout) to a handler that does nothing: distributed's own floor."""

    async def one(address: str) -> bool:
        try:
            await asyncio.wait_for(dask_scheduler.rpc(address).bench_noop(), timeout_s)
        except Exception:  # noqa: BLE001 - counted as not answered
            return False
        return True

    answers = await asyncio.gather(*(one(ws.address) for ws in dask_scheduler.workers.values()))
    return sum(answers)


def _add_noop(dask_worker: Any = None) -> None:
    dask_worker.handlers["bench_noop"] = lambda: None


def one_size(n: int, processes: bool, repeat: int, root: Path) -> dict:
    from distributed import Client, LocalCluster

    from nbcarbon.session import Session
    from nbcarbon.settings import Settings

    os.environ["NBCARBON_POWERCAP_ROOT"] = str(root)  # inherited by worker processes and threads
    os.environ["NBCARBON_LEDGER"] = "off"
    t = time.perf_counter()
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                           dashboard_address=":0", silence_logs=50)
    client = Client(cluster)
    client.wait_for_workers(n, timeout=600)
    start_s = time.perf_counter() - t
    session = Session(Settings(powercap_root=root, ledger=None), {"NBCARBON_REGION": "SE"})
    try:
        collector: ClusterCollector = attach(client, session, timeout_s=5.0, use_gpu=False)
        for _ in range(5):
            session.end(session.begin())
        collect_ms, end_ms, window_ms = [], [], []
        answered = 0
        for _ in range(repeat):
            t0 = time.perf_counter()
            snap = collector.collect()
            collect_ms.append((time.perf_counter() - t0) * 1e3)
            answered = len(snap.readings)
        components: list = []
        warnings: list = []
        for _ in range(repeat):
            token = collector.begin()
            t0 = time.perf_counter()
            components, warnings = collector.end(token, 1.0)
            end_ms.append((time.perf_counter() - t0) * 1e3)
        for _ in range(repeat):
            t0 = time.perf_counter()
            fp = session.end(session.begin())
            window_ms.append((time.perf_counter() - t0) * 1e3)
        client.run(_add_noop)
        noop_ms = []

        async def noop() -> int:
            return await client.run_on_scheduler(_noop_fan_out, 5.0)

        for i in range(repeat + 5):
            t0 = time.perf_counter()
            client.sync(noop)
            if i >= 5:
                noop_ms.append((time.perf_counter() - t0) * 1e3)
        dask = sum(1 for c in fp.components if c.device.startswith("dask:"))
    finally:
        session.close()
        client.close()
        cluster.close()
    return {"n": n, "processes": processes, "start_s": start_s, "answered": answered,
            "collect_ms": collect_ms, "end_ms": end_ms, "window_ms": window_ms,
            "noop_ms": noop_ms,
            "components": len(components), "record_dask_components": dask,
            "warnings": warnings}


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"{statistics.median(ordered):.2f} / {p90:.2f} / {ordered[-1]:.2f}"


def measure(sizes: list[int], repeat: int, processes: bool = True) -> dict:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "powercap"
        root.mkdir()
        fake = FakePowercap(root)  # still counters: what a read costs does not depend on them
        fake.add_package(0, power=20.0)
        for n in sizes:
            rows.append(one_size(n, processes, repeat, root))
            print(f"bench_cluster: N={n} done", file=sys.stderr, flush=True)
    return {"cores": os.cpu_count() or 1, "repeat": repeat, "rows": rows}


def render(r: dict) -> str:
    lines = [
        f"A `LocalCluster` of N worker processes (one thread each, with their nannies) on this "
        f"{r['cores']}-core machine, attached to a session with `nbcarbon.dask.attach`; each "
        "worker reads a fake RAPL counter and a memory model. ms, median / 90th percentile / max "
        f"of {r['repeat']} boundaries after 5 warm-up ones. collect: one boundary (client -> "
        "scheduler -> every worker -> back); end: collect and combine; window: a whole "
        "`Session.begin()` + `end()` with the cluster attached (two boundaries).",
        "",
        "| workers | kind | answered | collect (one boundary) | end (collect + combine) "
        "| window (begin + end) | floor: the same fan-out, no-op handler | cluster start |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        kind = "processes" if row["processes"] else "threads"
        lines.append(
            f"| {row['n']} | {kind} | {row['answered']}/{row['n']} | {summary(row['collect_ms'])} | "
            f"{summary(row['end_ms'])} | {summary(row['window_ms'])} | "
            f"{summary(row['noop_ms'])} | {row['start_s']:.1f} s |")
    lines += ["", "The records' cluster components: "
              + ", ".join(str(row["record_dask_components"]) for row in r["rows"])
              + " (a `LocalCluster` on the notebook's machine adds nothing the notebook's own meters "
              "do not already count: its counters are the same, its workers are in the notebook's "
              "process tree). The floor column is distributed's own cost for the same fan-out "
              "(`client.run_on_scheduler`, one RPC per worker) to a handler that does nothing."]
    warned = sorted({w for row in r["rows"] for w in row["warnings"]})
    if warned:
        lines += ["", "Warnings in the records: " + "; ".join(f"`{w}`" for w in warned[:5])]
    return "\n".join(lines)


def run(quick: bool) -> dict:
    """For ``bench.py``: 2, 8 and 32 worker processes (quick: fewer boundaries)."""
    return measure([2, 8, 32], 20 if quick else 50)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="2,8,32")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--processes", choices=("yes", "no"), default="yes")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(render(measure(sizes, args.repeat, args.processes == "yes")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
