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
  ``%%carbon`` adds to a cell on top of its own meters;
- two floors, the same fan-out to a worker handler that does nothing: ``noop`` through
  ``client.run_on_scheduler`` with one ``asyncio.wait_for`` per worker (distributed's general route,
  the one nbcarbon took before), and ``route_noop`` through nbcarbon's own route
  (``nbcarbon.cluster._ask_workers`` on the scheduler, called without a comm when the scheduler
  runs in the notebook's process, as a ``LocalCluster``'s does).

The five are measured in turn within each round (interleaved), so that all see the same machine:
a cluster of 32 processes keeps settling for seconds after it starts, and a busy machine comes
and goes. Summaries are median, 90th percentile and max of ``repeat`` rounds after 5 warm-up ones.
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

from nbcarbon import cluster as nbcluster  # noqa: E402
from nbcarbon.cluster import ClusterCollector, attach  # noqa: E402
from tests.fakes.powercap import FakePowercap  # noqa: E402


async def _noop_fan_out(timeout_s: float, dask_scheduler: Any = None) -> int:
    """distributed's general route for a fan-out (``client.run_on_scheduler``: one RPC to every
    worker at once, each under its own ``asyncio.wait_for``; nbcarbon's route until it had its
    own) to a handler that does nothing: distributed's floor for that route."""

    async def one(address: str) -> bool:
        try:
            await asyncio.wait_for(dask_scheduler.rpc(address).bench_noop(), timeout_s)
        except Exception:  # noqa: BLE001 - counted as not answered
            return False
        return True

    answers = await asyncio.gather(*(one(ws.address) for ws in dask_scheduler.workers.values()))
    return sum(answers)


def _add_noop(dask_worker: Any = None) -> None:
    dask_worker.handlers["bench_noop"] = lambda salt="": None


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
        client.run(_add_noop)

        async def noop() -> int:
            return await client.run_on_scheduler(_noop_fan_out, 5.0)

        async def route_noop() -> int:
            scheduler = nbcluster._scheduler_here(client)
            if scheduler is None:
                raise RuntimeError("the scheduler is not in this process: no route floor")
            rows = await nbcluster._ask_workers(scheduler, "", 5.0, op="bench_noop")
            return sum(1 for row in rows if row[3] is None)

        has_route = hasattr(nbcluster, "_ask_workers")  # not in nbcarbon before its own route
        collect_ms, end_ms, window_ms, noop_ms, route_ms = [], [], [], [], []
        answered = 0
        components: list = []
        warnings: list = []
        fp: Any = None
        for i in range(5 + repeat):
            keep = i >= 5
            t0 = time.perf_counter()
            snap = collector.collect()
            took = (time.perf_counter() - t0) * 1e3
            answered = len(snap.readings)
            if keep:
                collect_ms.append(took)
            t0 = time.perf_counter()
            client.sync(noop)
            if keep:
                noop_ms.append((time.perf_counter() - t0) * 1e3)
            if has_route:
                t0 = time.perf_counter()
                client.sync(route_noop)
                if keep:
                    route_ms.append((time.perf_counter() - t0) * 1e3)
            token = collector.begin()
            t0 = time.perf_counter()
            components, warnings = collector.end(token, 1.0)
            if keep:
                end_ms.append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            fp = session.end(session.begin())
            if keep:
                window_ms.append((time.perf_counter() - t0) * 1e3)
        dask = sum(1 for c in fp.components if c.device.startswith("dask:"))
    finally:
        session.close()
        client.close()
        cluster.close()
    return {"n": n, "processes": processes, "start_s": start_s, "answered": answered,
            "collect_ms": collect_ms, "end_ms": end_ms, "window_ms": window_ms,
            "noop_ms": noop_ms, "route_noop_ms": route_ms,
            "components": len(components), "record_dask_components": dask,
            "warnings": warnings}


def summary(values: list[float]) -> str:
    if not values:
        return "—"
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
        f"of {r['repeat']} rounds after 5 warm-up ones, the five measured in turn in each round. "
        "collect: one boundary (the scheduler asks every worker at once, each reads its meters "
        "and answers); end: collect and combine; window: a whole `Session.begin()` + `end()` "
        "with the cluster attached (two boundaries). Floors: the same fan-out to a worker "
        "handler that does nothing, through `client.run_on_scheduler` (distributed's general "
        "route) and through nbcarbon's own route (the scheduler asked without a comm, as it runs "
        "in the notebook's process here).",
        "",
        "| workers | kind | answered | collect (one boundary) | end (collect + combine) "
        "| window (begin + end) | floor: run_on_scheduler, no-op handler "
        "| floor: nbcarbon's route, no-op handler | cluster start |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        kind = "processes" if row["processes"] else "threads"
        lines.append(
            f"| {row['n']} | {kind} | {row['answered']}/{row['n']} | {summary(row['collect_ms'])} | "
            f"{summary(row['end_ms'])} | {summary(row['window_ms'])} | "
            f"{summary(row['noop_ms'])} | {summary(row.get('route_noop_ms') or [])} | "
            f"{row['start_s']:.1f} s |")
    lines += ["", "The records' cluster components: "
              + ", ".join(str(row["record_dask_components"]) for row in r["rows"])
              + " (a `LocalCluster` on the notebook's machine adds nothing the notebook's own meters "
              "do not already count: its counters are the same, its workers are in the notebook's "
              "process tree). The floor columns are distributed's own cost for the same fan-out "
              "(one RPC per worker) to a handler that does nothing: through "
              "`client.run_on_scheduler` and through the route nbcarbon takes."]
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
