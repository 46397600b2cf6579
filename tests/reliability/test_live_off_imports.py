"""With live data off, the %carbon commands import no network code (the README's promise).

In a fresh interpreter (``sys.modules`` is per process): an IPython shell loads the extension
with live off and runs every command that does not ask for the network, and ``nbcarbon status``'s
text is built; after each, none of :mod:`urllib.request`, :mod:`http.client`, :mod:`ssl` or
``nbcarbon.live`` may be loaded. ``%carbon forecast`` and ``greenest_window()`` are left out:
calling them is the opt-in to the network. ``%carbon dask`` is left out too: it is about a Dask
cluster, whose client is network code by nature.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

COMMANDS = [
    "%carbon",
    "%carbon status",
    "%carbon regions DE",
    "%carbon region DE",
    "%carbon pue 1.2",
    "%carbon auto on",
    "y = sum(range(1000))",
    "%carbon auto off",
    "%%carbon\nx = sum(range(10000))",
    "%carbon summary",
    "%carbon compare SE FR",
    "%carbon plot",
    "%carbon live off",
    "%carbon reset",
    "import nbcarbon\nwith nbcarbon.track('block', display=False):\n    pass",
    "%carbon status",
]

CHECK = """
import json, sys

NETWORK = ("urllib.request", "http.client", "ssl")


def network_modules():
    return sorted(m for m in sys.modules
                  if m in NETWORK or m == "nbcarbon.live" or m.startswith("nbcarbon.live."))


from IPython.core.interactiveshell import InteractiveShell

ip = InteractiveShell.instance()
found = {"IPython itself": network_modules()}  # must be empty, or the check below means nothing
ip.run_line_magic("load_ext", "nbcarbon")
found["%load_ext nbcarbon"] = network_modules()
failed = []
for i, line in enumerate(json.loads(sys.argv[1])):
    result = ip.run_cell(line)
    if not result.success:
        failed.append(line)
    found[f"{i}: {line}"] = network_modules()
from nbcarbon.settings import Settings
from nbcarbon.status import machine_status

text = machine_status(Settings(ledger=None), {"NBCARBON_REGION": "SE"})
assert "live: off" in text, text
found["nbcarbon status"] = network_modules()
ip.run_line_magic("unload_ext", "nbcarbon")
print(json.dumps({"found": found, "failed": failed}))
"""


def test_no_network_module_is_imported_while_live_is_off(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBCARBON_")}
    env.update(NBCARBON_LEDGER="off", NBCARBON_REGION="SE", NBCARBON_POWERCAP_ROOT=str(tmp_path / "none"),
               IPYTHONDIR=str(tmp_path / "ipython"), MPLCONFIGDIR=str(tmp_path / "mpl"), MPLBACKEND="Agg")
    out = subprocess.run([sys.executable, "-c", CHECK, json.dumps(COMMANDS)], capture_output=True, text=True,
                         timeout=240, env=env, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["failed"] == [], out.stdout[-3000:]
    imported = {step: modules for step, modules in report["found"].items() if modules}
    assert imported == {}, f"network code imported with live off, first after: {next(iter(imported))!r}"
