"""Serve a fake powercap tree at ROOT until stdin closes: ``python _fakehw.py ROOT``.

Why: the measures that compare nbcarbon on counters with its model fallback need RAPL files
that advance, and this machine (like most CI and cloud VMs) has none. The tree is the test
suite's ``FakePowercap``, advanced to the clock here, in a process of its own, so keeping it
moving costs nothing to the process being measured. It advances every 10 ms (the rate does not
change what a read costs) and stops by itself after an hour at the latest.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for tests.fakes

from tests.fakes.powercap import FakePowercap  # noqa: E402

TICK_S = 0.01
LIFETIME_S = 3600.0


def main() -> None:
    root = Path(sys.argv[1])
    root.mkdir(parents=True)
    fake = FakePowercap(root)
    fake.add_package(0, 40.0, dram=5.0)
    done = threading.Event()

    def wait_stdin() -> None:
        sys.stdin.read()
        done.set()

    threading.Thread(target=wait_stdin, daemon=True).start()
    print("ready", flush=True)
    t0 = time.monotonic()
    while not done.wait(TICK_S):
        elapsed = time.monotonic() - t0
        if elapsed > LIFETIME_S:
            break
        fake.advance(elapsed - fake.elapsed_s)  # to the clock: the counters never run ahead


if __name__ == "__main__":
    main()
