"""What runs inside each fresh measuring process: ``python _child.py MODE TOOL OUT.json [N] [S]``.

Why a child per run: import time and cold start only mean something in a fresh interpreter, and
background cost must be the tracker's own, not left over from another tool's threads. The child
writes its numbers to OUT.json and prints nothing itself, so every line on its stdout and stderr
was printed by the tool: the parent counts them (a tracker that floods a notebook with log lines
costs its user too).

Modes: ``cells`` (nbcarbon's ``%%carbon`` per-cell overhead, N cells), ``import`` (time the
tracker's import), ``cold`` (construct, start, one window, stop), ``window`` (a warm tracker's
begin/end pairs), ``idle`` (CPU time and memory over S seconds of sleep, after N seconds of
settling), ``workload`` (a fixed
pure-Python loop of N iterations before, while and after the tracker runs).
"""

from __future__ import annotations

import json
import os
import sys
import time


def rss_bytes() -> int:
    """Resident set size from /proc (no psutil: the baseline process must not import it)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def busy_loop(n: int) -> int:
    """A CPU-bound loop that allocates nothing: pure interpreter work under the GIL."""
    acc = 0
    for i in range(n):
        acc = (acc + i * i) % 1_000_003
    return acc


def main() -> None:
    mode, tool, out = sys.argv[1], sys.argv[2], sys.argv[3]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    here = os.path.dirname(os.path.abspath(__file__))
    result: dict[str, object] = {}

    if mode == "import":
        from peers import IMPORT_SETUP, IMPORTS  # tiny, imports nothing

        stmt = IMPORTS[tool]
        if tool in IMPORT_SETUP:
            exec(IMPORT_SETUP[tool], {})
        t0 = time.perf_counter()
        exec(stmt, {})
        result["ms"] = (time.perf_counter() - t0) * 1e3
        _write(out, result)
        return

    sys.path.insert(0, here)
    if mode == "cells":  # nbcarbon only: %%carbon in a real IPython shell, readout included
        from cell_overhead import SWEEP_MB, cell_overhead

        result.update(cell_overhead(n, history=False))
        cold = cell_overhead(max(1, n // 2), history=False, sweep_mb=SWEEP_MB)
        result.update({f"cold_{k}": v for k, v in cold.items()}, sweep_mb=SWEEP_MB)
        _write(out, result)
        return
    from peers import IMPORTS, adapter

    exec(IMPORTS[tool], {})
    a = adapter(tool)

    if mode == "cold":
        t0 = time.perf_counter()
        a.start()
        t1 = time.perf_counter()
        a.stop()
        t2 = time.perf_counter()
        result.update(ms=(t2 - t0) * 1e3, start_ms=(t1 - t0) * 1e3, stop_ms=(t2 - t1) * 1e3)
    elif mode == "window":
        a.open()
        for _ in range(max(20, n // 5)):  # warm-up pairs, not timed
            a.begin()
            a.end()
        begins, ends = [], []
        with _CapturedOutput() as captured:
            for _ in range(n):
                t0 = time.perf_counter()
                a.begin()
                t1 = time.perf_counter()
                a.end()
                t2 = time.perf_counter()
                begins.append((t1 - t0) * 1e6)
                ends.append((t2 - t1) * 1e6)
        from peers import boundary_reads_us

        reads, reads_what = boundary_reads_us(a, n)
        a.close()
        result.update(begin_us=begins, end_us=ends, lines=captured.lines, reads_us=reads,
                      reads_what=reads_what)
    elif mode == "idle":
        a.start_idle()
        # Let start-up threads settle (and nbcarbon's sampler finish the 5 s of full rate that
        # follow a measured cell); the idle period starts after. N is the settling time.
        time.sleep(n if n > 0 else 1.0)
        rss0, cpu0, w0 = rss_bytes(), time.process_time(), time.perf_counter()
        time.sleep(seconds)
        cpu1, w1, rss1 = time.process_time(), time.perf_counter(), rss_bytes()
        a.stop_idle()
        result.update(cpu_s=cpu1 - cpu0, wall_s=w1 - w0, rss_bytes=rss1, rss_growth_bytes=rss1 - rss0)
    elif mode == "workload":
        # off, on, off in one process: the same imports and memory state, only the running
        # tracker differs (processes that imported more run this loop at a different speed).
        def timed() -> tuple[float, float]:
            w0, c0 = time.perf_counter(), time.process_time()
            busy_loop(n)
            return time.perf_counter() - w0, time.process_time() - c0

        off1 = timed()
        a.start()
        on = timed()
        a.stop()
        off2 = timed()
        result.update(wall_s=on[0], cpu_s=on[1], off_wall_s=(off1[0] + off2[0]) / 2,
                      off_cpu_s=(off1[1] + off2[1]) / 2)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    result["describe"] = a.describe()
    _write(out, result)


class _CapturedOutput:
    """Sends fds 1 and 2 to a temporary file for a block and counts the lines written there."""

    def __enter__(self) -> "_CapturedOutput":
        import tempfile

        sys.stdout.flush()
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile()
        self._saved = (os.dup(1), os.dup(2))
        os.dup2(self._file.fileno(), 1)
        os.dup2(self._file.fileno(), 2)
        self.lines = 0
        return self

    def __exit__(self, *exc: object) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        for fd in self._saved:
            os.close(fd)
        self._file.seek(0)
        self.lines = self._file.read().count(b"\n")
        self._file.close()


def _write(path: str, result: dict[str, object]) -> None:
    with open(path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
