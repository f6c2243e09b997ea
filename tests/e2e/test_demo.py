"""``fluidedge demo``, the README's main job: the whole product, end to end, and nothing left.

The demo brings the lab up, runs one daemon with the TOF and the instance manager, creates an
httpd instance through the API on the lab's apps network and maps the demo service to it. These
tests run it as the user would (a subprocess) and check, independently of the demo's own
leftover check, that the UEs' edge answers came from the instance and that nothing the demo
created survives it: no lab namespace, no cgroup or process of any of its containers, no state
directory.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fluidedge.instances.runc import leftover_cgroups
from fluidedge.linux import netns

pytestmark = [pytest.mark.root, pytest.mark.slow]

INSTANCE_PAGE = "fluidedge instance edge1"


def _demo_argv(prefix: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "fluidedge", "demo", "--prefix", prefix, *extra]


def _processes_in_cgroups(ids: list[str]) -> list[str]:
    """Live processes (not zombies) whose ``/proc/<pid>/cgroup`` names a container's cgroup.

    A SIGKILLed container process is a zombie until pid 1 reaps it, and a zombie still reads its
    old cgroup path: it holds no resource, so it is not counted.
    """
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            text = (proc / "cgroup").read_text()
            state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if state in ("Z", "X"):
            continue
        found.extend(f"{proc.name}: {cid}" for cid in ids if f"/fluidedge/{cid}" in text)
    return found


def _assert_nothing_left(prefix: str, output: str) -> None:
    assert "Nothing left behind" in output, output
    ids = re.search(r"Containers checked after teardown: (.*)", output)
    assert ids is not None, output
    containers = [] if ids.group(1).strip() == "-" else ids.group(1).split()
    assert not [n for n in netns.list_names() if n.startswith(f"{prefix}-")]
    assert not [path for cid in containers for path in leftover_cgroups(cid)]
    assert not _processes_in_cgroups(containers)
    state = re.search(r"under (/\S+)/state/instances", output)
    if containers:
        assert state is not None, output
        assert not Path(state.group(1)).exists(), "the daemon's state directory was left"


def test_demo_instance_serves_the_ues_and_everything_is_torn_down() -> None:
    prefix = f"dmo{os.getpid() % 100000}"
    result = subprocess.run(
        _demo_argv(prefix, "--duration", "4"),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    # The instance came from the warm pool, with its per-phase breakdown printed.
    assert "Instance edge1 running at 198.19.0.20 (from the warm pool)" in out
    # The edge app runs from an image (issue 12 §2), not from the host's files.
    flat = " ".join(out.split())  # the console wraps long lines
    assert re.search(
        r"Template edge-httpd: /bin/busybox httpd .* from image busybox \(rootfs sha256:", flat
    ), out
    for phase in ("accept", "placement", "shell", "config", "network", "start", "durable", "ready"):
        assert re.search(rf"│ {phase}\s+│ \d+\.\d\d", out), phase
    # The live table showed it, and the UEs' edge answers came from it (its page names it).
    assert re.search(r"│ edge1\s+│ edge-httpd\s+│ 198\.19\.0\.20\s+│ running\s+│ warm", out), out
    assert f"│ {INSTANCE_PAGE}" in out
    answered = re.search(r"answered by the edge: (\d+) \(by instance 'edge1': (\d+)\)", out)
    assert answered is not None, out
    assert int(answered.group(2)) > 0
    assert int(answered.group(1)) == int(answered.group(2)), "an edge answer from elsewhere"
    assert "Instance edge1 deleted" in out
    assert re.search(r"Web GUI: http://127\.0\.0\.1:\d+/ui/ \(log in with the API token in ", out)
    assert re.search(r"purged \d+ instances/shells", out), out
    _assert_nothing_left(prefix, out)


def test_demo_interrupted_twice_still_tears_everything_down() -> None:
    """A signal to the demo's whole process group, as a terminal's Ctrl-C or ``timeout``
    sends it (the demo is the job); then an impatient second one. The daemon (its own group)
    must not get them: the demo deletes its instance through the API before stopping it.

    The first is SIGTERM: a job started in the background by a non-interactive shell (as CI
    may run this suite) inherits SIGINT ignored, and the demo rightly keeps it ignored."""
    prefix = f"dmi{os.getpid() % 100000}"
    process = subprocess.Popen(
        _demo_argv(prefix),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        process_group=0,  # a job of its own, as a shell starts it
    )
    assert process.stdout is not None
    lines: list[str] = []
    rest = ""
    try:
        deadline = time.monotonic() + 120
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Registered service") or time.monotonic() > deadline:
                break
        time.sleep(2)  # the UEs' traffic runs, the daemon has settled
        daemons = _daemon_pids("".join(lines))
        assert len(daemons) == 1, lines
        # a group of its own: what the job is sent does not reach it
        assert os.getpgid(daemons[0]) != process.pid
        os.killpg(process.pid, signal.SIGTERM)  # mid-run, to the whole job
        for line in process.stdout:
            lines.append(line)
            if "deleted" in line or "Daemon stopped" in line or time.monotonic() > deadline:
                break  # the teardown is under way
        os.killpg(process.pid, signal.SIGINT)  # an impatient second one: ignored in teardown
        rest, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:  # a failure: bring down what the demo could not
            process.kill()
            process.communicate()
            _bring_down("".join(lines), prefix)
    out = "".join(lines) + rest
    assert any(line.startswith("Registered service") for line in lines), out
    assert "Instance edge1 deleted" in out
    assert "instance delete failed" not in out, out  # the daemon was still there to do it
    assert "Demo torn down" in out
    _assert_nothing_left(prefix, out)


def _workdir(out: str) -> str | None:
    """The demo's daemon's work directory, as the demo printed it (its token is there)."""
    found = re.search(r"API token in (/\S+)/token", " ".join(out.split()))
    return found.group(1) if found else None


def _daemon_pids(out: str) -> list[int]:
    """The pids of ``fluidedge serve`` started with the demo's work directory."""
    workdir = _workdir(out)
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or workdir is None:
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in argv and any(workdir.encode() in arg for arg in argv):
            pids.append(int(proc.name))
    return pids


def _bring_down(out: str, prefix: str) -> None:
    """After a failed run: stop the demo's daemon (found by its work directory, which the
    demo printed), purge its instances, remove its lab."""
    workdir = _workdir(out)
    if workdir is not None:
        for pid in _daemon_pids(out):
            os.kill(pid, signal.SIGTERM)
        time.sleep(2)
        config = Path(workdir) / "fluidedge.toml"
        subprocess.run(
            [sys.executable, "-m", "fluidedge", "pool", "purge", "-c", str(config)],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "fluidedge", "lab", "down", "--prefix", prefix],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
