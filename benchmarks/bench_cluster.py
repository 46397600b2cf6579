"""Cost of collecting a Dask cluster's counters at one window boundary, for N = 2, 8, 32 workers.

What is timed: :meth:`nbcarbon.cluster.ClusterCollector.collect`, the whole boundary as a cell
pays it (one client -> scheduler call; the scheduler asks every worker at once; each worker reads
its meters), and :meth:`ClusterCollector.end`, which also combines the two snapshots into
components. Workers are local (``LocalCluster``, one thread each) on a shared fake RAPL tree, so
each worker has a machine-wide counter and a memory model to read. Target: < 20 ms for 32.

Processes: ``--processes auto`` (the default) uses worker processes for N <= 8 and, on machines
with fewer than 8 cores, threads (``processes=False``) for 32, where 32 worker processes would
time-share two cores and measure the scheduler of the operating system more than nbcarbon; pass
``--processes yes`` to force processes. The table says which was used. Summaries are median,
90th percentile and max of ``--repeat`` boundaries after 5 warm-up ones.

    python benchmarks/bench_cluster.py [--sizes 2,8,32] [--repeat 50] [--processes auto|yes|no]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from nbcarbon.cluster import ClusterCollector, register  # noqa: E402
from tests.fakes.powercap import FakePowercap  # noqa: E402


def one_size(n: int, processes: bool, repeat: int, root: Path) -> dict:
    from distributed import Client, LocalCluster

    os.environ["NBCARBON_POWERCAP_ROOT"] = str(root)  # inherited by worker processes and threads
    t = time.perf_counter()
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                           dashboard_address=":0", silence_logs=50)
    client = Client(cluster)
    client.wait_for_workers(n, timeout=300)
    start_s = time.perf_counter() - t
    try:
        register(client, use_gpu=False)
        collector = ClusterCollector(client, timeout_s=5.0)
        for _ in range(5):
            collector.collect()
        collect_ms, end_ms = [], []
        answered = 0
        for _ in range(repeat):
            t0 = time.perf_counter()
            snap = collector.collect()
            collect_ms.append((time.perf_counter() - t0) * 1e3)
            answered = len(snap.readings)
        for _ in range(max(5, repeat // 5)):
            token = collector.begin()
            t0 = time.perf_counter()
            components, warnings = collector.end(token, 1.0)
            end_ms.append((time.perf_counter() - t0) * 1e3)
    finally:
        client.close()
        cluster.close()
    return {"n": n, "processes": processes, "start_s": start_s, "answered": answered,
            "collect_ms": collect_ms, "end_ms": end_ms, "components": len(components),
            "warnings": warnings}


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"{statistics.median(ordered):.2f} / {p90:.2f} / {ordered[-1]:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="2,8,32")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--processes", choices=("auto", "yes", "no"), default="auto")
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "powercap"
        root.mkdir()
        fake = FakePowercap(root)  # still counters: what a read costs does not depend on them
        fake.add_package(0, power=20.0)
        for n in (int(s) for s in args.sizes.split(",")):
            processes = {"yes": True, "no": False}.get(args.processes, n <= 8 or cores >= 8)
            rows.append(one_size(n, processes, args.repeat, root))
            print(f"N={n} done", file=sys.stderr)
    print(f"Cluster boundary cost on {cores} cores, {args.repeat} boundaries per size "
          "(ms: median / p90 / max)\n")
    print("| workers | worker kind | answered | collect (one boundary) | end (collect + combine) "
          "| cluster start |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        kind = "processes" if r["processes"] else "threads (processes=False)"
        print(f"| {r['n']} | {kind} | {r['answered']}/{r['n']} | {summary(r['collect_ms'])} | "
              f"{summary(r['end_ms'])} | {r['start_s']:.1f} s |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
