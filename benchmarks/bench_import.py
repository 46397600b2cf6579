"""Measures 1 and 2: import time and cold start, each in a fresh process per repetition.

nbcarbon's modules are byte-compiled first (``compileall``), as an installed package's are.

Why fresh processes: a second import in the same interpreter costs nothing, and a tracker's
first start pays for lazy imports and hardware look-ups that later starts do not. Tools are
interleaved round-robin (order rotated per repetition), so a burst of load on a shared machine
hits them alike. Wall time is taken inside the child, around the import or the start/stop only
(interpreter start-up is the same for every tool and is left out).

Cold start = construct a tracker, start it with one window open, close the window and stop it,
after the tracker's module is imported (import is measure 1): ``nbcarbon.track()`` entered and
exited then the session closed; CodeCarbon ``start()``/``stop()``; Carbontracker with
``epochs=1``, ``epoch_start()``/``epoch_end()``; ``ZeusMonitor()`` with one window.
"""

from __future__ import annotations

import ast
import json
import os
import py_compile
import subprocess
import sys
import tempfile
from pathlib import Path

from common import REPO, TOOLS, fmt, rotate, run_child, table

#: Where nbcarbon's cold start goes, phase by phase, in a fresh process (CPU time, so a busy
#: machine disturbs it less than wall time): the floor each part of the code sets.
_PHASES = r"""
import json, os, sys, time
from pathlib import Path
T = time.process_time
out = {}
def lap(name, f):
    t = T(); r = f(); out[name] = (T() - t) * 1e3; return r
lap("import nbcarbon.api", lambda: __import__("nbcarbon.api"))
from nbcarbon import intensity
env = dict(os.environ)
lap("region: time zone and bundled table (intensity.py)",
    lambda: intensity.detect(env, intensity.system_timezone(env)))
lap("import psutil (the models; probe.py)", lambda: __import__("psutil"))
from nbcarbon.meters.rapl import open_rapl
lap("RAPL: scan the powercap tree (rapl.py)", lambda: open_rapl(Path("/sys/class/powercap")))
from nbcarbon.meters import cputime
lap("CPU model: cpuinfo and power table (cputime.py)",
    lambda: cputime.watts_per_core(cputime.cpu_model_name()))
lap("process tree, CPU and memory models (cputime.py, memory.py)", lambda: __import__(
    "nbcarbon.meters.memory").meters.memory.MemoryModelMeter(os.getpid()))
from nbcarbon.meters import nvml
lap("GPU: look for an NVIDIA driver, pynvml only if one is there (nvml.py)",
    lambda: nvml.open_gpus(None))
import nbcarbon.api as api
def rest():
    s = api.default_session(); s.start(); s.end(s.begin()); api.close_default_session()
lap("the rest: session, probe again (warm), sampler, one window, stop", rest)
print(json.dumps(out))
"""

IMPORT_TOOLS = ("nbcarbon", "nbcarbon-pkg", "nbcarbon-stdlib", "nbcarbon-records", "nbcarbon-ipython",
                "codecarbon", "carbontracker", "zeus")

#: The modules ``import nbcarbon.api`` adds to a bare interpreter's, in import order, other than
#: nbcarbon's own: what its import costs at the least, whatever nbcarbon's modules do.
_STDLIB_MODULES = r"""
import sys
before = set(sys.modules)
import nbcarbon.api
print(",".join(m for m in sys.modules if m not in before and m.split(".")[0] != "nbcarbon"))
"""


#: Writes, as Python source, dataclasses with the names, fields (annotation text, whether each has
#: a default or a factory, its field options) and decorator options of every dataclass that
#: ``import nbcarbon.api`` defines, in the order they are defined, and nothing else: building
#: them is what keeping the records in dataclasses costs at import on this Python (3.11 compiles
#: each generated method on its own), whatever the rest of nbcarbon does.
_RECORDS_SOURCE = r"""
import dataclasses, sys
import nbcarbon.api
out = ["from __future__ import annotations", "from dataclasses import dataclass, field", ""]
for name, module in list(sys.modules.items()):
    if not name.startswith("nbcarbon") or module is None:
        continue
    for cls in vars(module).values():
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == name):
            continue
        p = cls.__dataclass_params__
        out.append(f"@dataclass(init={p.init}, repr={p.repr}, eq={p.eq}, order={p.order}, "
                   f"unsafe_hash={p.unsafe_hash}, frozen={p.frozen})")
        out.append(f"class {cls.__name__}:")
        out.append("    'A record (a docstring spares dataclass an inspect.signature).'")
        for f in dataclasses.fields(cls):  # written as nbcarbon writes them: field() if needed
            plain = f.init and f.repr and f.compare and f.hash is None
            options = "" if plain else f"init={f.init}, repr={f.repr}, compare={f.compare}, hash={f.hash}"
            if f.default is not dataclasses.MISSING:
                value = " = None" if plain else f" = field(default=None, {options})"
            elif f.default_factory is not dataclasses.MISSING:
                value = " = field(" + ", ".join(x for x in ("default_factory=list", options) if x) + ")"
            else:
                value = "" if plain else f" = field({options})"
            out.append(f"    {f.name}: {f.type}{value}")
        out.append("")
print(repr("\n".join(out)))
"""


def records_floor_dir(where: Path) -> int:
    """Write and byte-compile ``_records_floor.py`` (see :data:`_RECORDS_SOURCE`) in ``where``;
    the number of classes in it."""
    env = dict(os.environ, NBCARBON_LEDGER="off")
    proc = subprocess.run([sys.executable, "-c", _RECORDS_SOURCE], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120, check=True)
    source = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    path = where / "_records_floor.py"
    path.write_text(source)
    py_compile.compile(str(path), doraise=True)  # read from its .pyc, as nbcarbon's modules are
    return source.count("\n@dataclass(")


def stdlib_modules() -> list[str]:
    env = dict(os.environ, NBCARBON_LEDGER="off")
    proc = subprocess.run([sys.executable, "-c", _STDLIB_MODULES], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120, check=True)
    return [m for m in proc.stdout.strip().splitlines()[-1].split(",") if m]


def run(quick: bool) -> dict:
    reps = 5 if quick else 15
    # Byte-compile nbcarbon first, as pip does when it installs a package: with an editable
    # install under PYTHONDONTWRITEBYTECODE (or a checkout just edited), every fresh process
    # would otherwise compile the changed modules from source and time that too.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "nbcarbon")],
                   capture_output=True, check=False)
    modules = stdlib_modules()
    os.environ["BENCH_STDLIB_MODULES"] = ",".join(modules)  # for the nbcarbon-stdlib children
    records_dir = Path(tempfile.mkdtemp(prefix="nbcarbon-records-floor-"))
    records = records_floor_dir(records_dir)
    os.environ["BENCH_RECORDS_DIR"] = str(records_dir)  # for the nbcarbon-records children
    imports: dict[str, list[float]] = {t: [] for t in IMPORT_TOOLS}
    cold: dict[str, list[float]] = {t: [] for t in TOOLS}
    lines: dict[str, list[int]] = {t: [] for t in TOOLS}
    errors: dict[str, str] = {}
    describe: dict[str, str] = {}
    for rep in range(reps):
        for tool in rotate(IMPORT_TOOLS, rep):
            r = run_child("import", tool)
            if "error" in r:
                errors[f"import {tool}"] = r["error"]
            else:
                imports[tool].append(r["ms"])
        for tool in rotate(TOOLS, rep):
            r = run_child("cold", tool)
            if "error" in r:
                errors[f"cold start {tool}"] = r["error"]
                continue
            cold[tool].append(r["ms"])
            lines[tool].append(r["printed_lines"])
            describe[tool] = r["describe"]
            if rep == 0:
                describe[tool + " output"] = r["printed"][:6]
    return {"reps": reps, "imports": imports, "cold": cold, "lines": lines, "errors": errors,
            "describe": describe, "phases": _phases(reps), "modules": _import_modules(reps),
            "stdlib": modules, "records": records}


def _phases(reps: int) -> dict[str, float]:
    """The least CPU ms of each cold-start phase over ``reps`` fresh processes."""
    best: dict[str, float] = {}
    env = dict(os.environ, NBCARBON_LEDGER="off")
    env.pop("NBCARBON_POWERCAP_ROOT", None)
    for _ in range(reps):
        proc = subprocess.run([sys.executable, "-c", _PHASES], capture_output=True, text=True,
                              cwd=REPO, env=env, timeout=120)
        if proc.returncode != 0:
            return {"failed": float("nan")}
        for name, ms in json.loads(proc.stdout.strip().splitlines()[-1]).items():
            best[name] = min(ms, best.get(name, float("inf")))
    return best


def _import_modules(reps: int, top: int = 12) -> list[tuple[str, float, str]]:
    """The modules whose own import time (``-X importtime``, least over ``reps`` processes) is
    largest in ``import nbcarbon.api``, beyond what a bare interpreter imports, and who imports
    each (its nearest importer in the tree)."""
    bare = _importtime("pass")
    best: dict[str, float] = {}
    parent: dict[str, str] = {}
    for _ in range(reps):
        for name, self_us, importer in _importtime("import nbcarbon.api"):
            if name in {n for n, _, _ in bare}:
                continue
            best[name] = min(self_us, best.get(name, float("inf")))
            parent[name] = importer
    ranked = sorted(best.items(), key=lambda kv: -kv[1])[:top]
    return [(name, us / 1e3, parent.get(name, "")) for name, us in ranked]


def _importtime(stmt: str) -> list[tuple[str, float, str]]:
    env = dict(os.environ, NBCARBON_LEDGER="off")
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", stmt], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=120)
    rows: list[tuple[str, float, int]] = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = (part for part in line[len("import time:"):].split("|"))
        rows.append((name.strip(), float(self_us), len(name) - len(name.lstrip())))
    out = []
    for i, (name, self_us, depth) in enumerate(rows):  # the importer comes later, less indented
        importer = next((n for n, _, d in rows[i + 1:] if d < depth), "")
        out.append((name, self_us, importer))
    return out


def render(r: dict) -> str:
    imp, cold, lines = r["imports"], r["cold"], r["lines"]
    rows = [
        ["import of the tracker module, ms"] + [fmt(imp[t]) for t in TOOLS],
        ["`import nbcarbon` alone (lazy package), ms", fmt(imp["nbcarbon-pkg"]), "—", "—", "—"],
        [f"the floor: the {len(r.get('stdlib', []))} standard-library modules `nbcarbon.api` "
         "imports, alone, ms", fmt(imp["nbcarbon-stdlib"]), "—", "—", "—"],
        [f"the floor with the records: those modules, then {r.get('records', '?')} dataclasses "
         "with the names, fields and options of those `nbcarbon.api` defines (no methods), ms",
         fmt(imp.get("nbcarbon-records", [])), "—", "—", "—"],
        ["`import nbcarbon.api` in a process that has imported IPython and ipykernel (as "
         "`%load_ext nbcarbon` meets it), ms", fmt(imp.get("nbcarbon-ipython", [])), "—", "—", "—"],
        ["cold start (construct, start, 1 window, stop), ms"] + [fmt(cold[t]) for t in TOOLS],
        ["import + cold start (medians), ms"]
        + [_sum_medians(imp[t], cold[t]) for t in TOOLS],
        ["lines printed by the tool during a cold start"] + [fmt(lines[t], digits=0) for t in TOOLS],
        ["measured on this machine"] + [r["describe"].get(t, "failed") for t in TOOLS],
    ]
    out = [
        "Import: `" + "`, `".join(
            ["import nbcarbon.api", "from codecarbon import OfflineEmissionsTracker",
             "from carbontracker.tracker import CarbonTracker", "from zeus.monitor import ZeusMonitor"]
        ) + f"`. {r['reps']} fresh processes per tool, interleaved; median (min–max).",
        "",
        table(["measure", *TOOLS], rows),
    ]
    if r["errors"]:
        out += ["", "Failures:"] + [f"- {k}: `{v}`" for k, v in r["errors"].items()]
    phases = r.get("phases") or {}
    if phases:
        total = sum(v for v in phases.values() if v == v)
        out += ["", "Where nbcarbon's import and cold start go (this machine's meters; least CPU time "
                f"of each phase over {r['reps']} fresh processes, in order; {total:.1f} ms in all):", "",
                table(["phase", "CPU ms"], [[k, f"{v:.1f}"] for k, v in phases.items()])]
    modules = r.get("modules") or []
    if modules:
        out += ["", "The largest imports in `import nbcarbon.api` (own time per `-X importtime`, "
                "least of the runs; beyond a bare interpreter's): "
                + "; ".join(f"`{name}` {ms:.1f} ms (by `{importer}`)" for name, ms, importer
                            in modules) + "."]
    samples = [(t, r["describe"].get(t + " output")) for t in TOOLS]
    samples = [(t, s) for t, s in samples if s]
    if samples:
        out += ["", "First lines each tool printed in its first cold start (stdout and stderr):", ""]
        for t, s in samples:
            out += [f"- {t}:"] + [f"  - `{_clip(line)}`" for line in s]
    return "\n".join(out)


def _sum_medians(a: list[float], b: list[float]) -> str:
    import statistics

    if not a or not b:
        return "n/a"
    return f"{statistics.median(a) + statistics.median(b):.1f}"


def _clip(line: str, n: int = 160) -> str:
    line = line.replace("`", "'")
    return line if len(line) <= n else line[: n - 1] + "…"
