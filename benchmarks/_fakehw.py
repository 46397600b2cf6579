"""Serve a fake powercap tree at ROOT until stdin closes: ``python _fakehw.py ROOT``.

Why: the measures that compare nbcarbon on counters with its model fallback need RAPL files
that advance, and this machine (like most CI and cloud VMs) has none. The tree is the test
suite's ``FakePowercap``; it runs here, in its own process, so its writer thread costs nothing
to the process being measured. It ticks every 10 ms (tick rate does not change what a read
costs) and stops by itself after an hour at the latest.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for tests.fakes

from tests.fakes.powercap import FakePowercap  # noqa: E402


def main() -> None:
    root = Path(sys.argv[1])
    root.mkdir(parents=True)
    fake = FakePowercap(root, tick_s=0.01)
    fake.add_package(0, 40.0, dram=5.0)
    done = threading.Event()

    def wait_stdin() -> None:
        sys.stdin.read()
        done.set()

    threading.Thread(target=wait_stdin, daemon=True).start()
    with fake:
        print("ready", flush=True)
        done.wait(timeout=3600)


if __name__ == "__main__":
    main()
