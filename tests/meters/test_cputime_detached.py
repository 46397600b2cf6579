"""Background processes that leave the kernel's process tree: ``sh -c 'job &'``.

``sh`` starts ``job`` and exits at once, so ``job`` is re-parented to init and no walk from the
kernel reaches it. Each test runs a real "kernel" process (a session leader like a Jupyter
kernel, a process-group leader like a script from an interactive shell, or neither) holding the
real CPU-time and memory meters, which starts a real detached busy loop and reports what its
meters attributed. The busy loop spins on its own CPU clock, so its CPU seconds are known
whatever the machine's load; bounds are generous, never timed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

JOB_CPU_S = 1.5

#: The job: spins for JOB_CPU_S of its own CPU time, then writes what it used.
JOB = (
    "import sys, time\n"
    "end = time.process_time() + float(sys.argv[2])\n"
    "while time.process_time() < end: pass\n"
    "open(sys.argv[1], 'w').write(repr(time.process_time()))\n"
)

#: The kernel: opens the meters, detaches the job through sh, runs the sampler's upkeep often
#: (instead of every 2 s, to keep the test short), then spins itself so that a lost job would
#: hide the kernel's own later CPU time (the total must keep rising after the job ends).
KERNEL = r"""
import json, os, subprocess, sys, time
from nbcarbon.meters.cputime import CpuTimeMeter
from nbcarbon.meters.memory import MemoryModelMeter

done, job = sys.argv[1], sys.argv[2]
cpu = CpuTimeMeter(os.getpid(), 1.0)
memory = MemoryModelMeter(os.getpid(), tree=cpu.tree, states_caveat=False)
cpu.background()
e0 = cpu.read()
start_own = time.process_time()
subprocess.run(["sh", "-c", f'"{sys.executable}" -c "$1" "{done}" {sys.argv[3]} &', "sh", job], check=True)
seen = set()
deadline = time.monotonic() + 120
while not os.path.exists(done) and time.monotonic() < deadline:
    cpu.background()
    memory.background()
    cpu.read()
    memory.read()
    seen |= {p.pid for p in cpu.tree.children}
    time.sleep(0.05)
# The job has ended; wait until its parent (init, or whoever adopted it) has reaped it, so the
# meter no longer sees it at all and its last reading is what counts.
while any(os.path.exists(f"/proc/{pid}") for pid in seen) and time.monotonic() < deadline:
    cpu.background()
    cpu.read()
    time.sleep(0.05)
time.sleep(0.1)
cpu.background()
after_job = cpu.read()
end = time.process_time() + 0.5
while time.process_time() < end:
    pass
final = cpu.read()
print(json.dumps({
    "job_s": float(open(done).read()), "attributed_s": after_job - e0,
    "own_s": time.process_time() - start_own, "rise_after_s": final - after_job,
    "mode": cpu.tree.mode, "caveat": cpu.channel.caveat, "memory_caveat": memory.channel.caveat,
    "followed": len(seen), "still_followed": len(cpu.tree.children),
}))
"""


def run_kernel(tmp_path: Path, under_shell: bool = False, **popen: object) -> dict:
    """Runs KERNEL; ``under_shell`` starts it from a shell that leads a new session, so the
    kernel leads neither its session nor its group (and nothing it detaches joins pytest's)."""
    done = tmp_path / "job-done"
    argv = [sys.executable, "-c", KERNEL, str(done), JOB, str(JOB_CPU_S)]
    if under_shell:
        argv = ["sh", "-c", '"$@"; exit $?', "sh", *argv]  # not the last command: sh stays the parent
    out = subprocess.run(argv, capture_output=True, text=True, timeout=180,
                         cwd=Path(__file__).resolve().parents[2], **popen)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("popen, mode", [
    ({"start_new_session": True}, "session"),  # a Jupyter kernel (jupyter_client's start_new_session)
    ({"process_group": 0}, "process group"),  # a script started from an interactive shell
])
def test_a_detached_job_is_followed_by_the_kernels_session_or_group(tmp_path: Path, popen: dict,
                                                                    mode: str) -> None:
    got = run_kernel(tmp_path, **popen)
    assert got["mode"] == mode
    assert got["job_s"] >= JOB_CPU_S
    # Counted from when first seen (upkeep every 50 ms) to its last read before it ended.
    assert 0.6 * got["job_s"] <= got["attributed_s"] <= got["job_s"] + got["own_s"] + 0.3, got
    # Once the job has ended its time stays counted, and the kernel's own CPU still adds up.
    assert got["rise_after_s"] >= 0.4, got
    assert got["caveat"] is None and got["memory_caveat"] is None
    assert got["followed"] >= 1 and got["still_followed"] == 0, got


def test_where_it_cannot_be_followed_the_record_says_so(tmp_path: Path) -> None:
    """A process that leads neither its session nor its group shares the group with processes
    it did not start: the job is not counted, and the channel's caveat says so."""
    got = run_kernel(tmp_path, under_shell=True, start_new_session=True)
    assert got["mode"] == "noticed"
    assert got["attributed_s"] <= got["own_s"] + 0.3, got  # the job's 1.5 s are not in it
    assert got["caveat"] is not None and "sh -c 'job &'" in got["caveat"]
    assert got["rise_after_s"] >= 0.4, got


#: A kernel that leads its process group and only watches for a while.
WATCHER = r"""
import json, os, subprocess, sys, time
from nbcarbon.meters.cputime import CpuTimeMeter

cpu = CpuTimeMeter(os.getpid(), 1.0)
cpu.background()
def own():  # this process and the children it reaped
    t = os.times()
    return time.process_time() + t.children_user + t.children_system

e0, own0 = cpu.read(), own()
print("ready", flush=True)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    time.sleep(0.05)
    subprocess.run(["true"])  # the kernel's own short children: each one makes the upkeep scan
    cpu.background()
    cpu.read()
print(json.dumps({"attributed_s": cpu.read() - e0, "own_s": own() - own0,
                  "mode": cpu.tree.mode, "followed": len(cpu.tree.children)}), flush=True)
"""

#: A pipeline partner: busy itself, with a busy child of its own.
PARTNER = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', sys.argv[1]])\n"
    "end = time.process_time() + 1.0\n"
    "while time.process_time() < end: pass\n"
    "child.wait()\n"
)
SPIN = "import time\nend = time.process_time() + 1.0\nwhile time.process_time() < end: pass\n"


def test_a_pipeline_partner_in_the_kernels_group_is_not_its_own(tmp_path: Path) -> None:
    """``python kernel.py | tee log``: the shell puts ``tee`` in the kernel's process group, as
    its own child. Neither it nor what it starts is the kernel's, though they share the group."""
    root = Path(__file__).resolve().parents[2]
    kernel = subprocess.Popen([sys.executable, "-c", WATCHER, "4"], stdout=subprocess.PIPE, text=True,
                              cwd=root, process_group=0)
    try:
        assert kernel.stdout is not None and kernel.stdout.readline().strip() == "ready"
        partner = subprocess.run([sys.executable, "-c", PARTNER, SPIN], process_group=kernel.pid,
                                 timeout=120)
        assert partner.returncode == 0
        got = json.loads(kernel.stdout.readline())
    finally:
        kernel.kill()
        kernel.wait()
    assert got["mode"] == "process group"
    assert got["attributed_s"] <= got["own_s"] + 0.3, got  # not the partner's 2 s
