"""``Runc.start_fast`` returns only once the runtime's init has exec'd (real processes).

runc since its CVE-2024-21626 fix closes the exec FIFO's write end *before* its ``execve``, so
the FIFO's EOF does not mean the exec happened; a memory limit lowered in that window had
cgroup v2 OOM-kill runc init. These tests stand a real process in for the runtime's init: its
executable is a copy of busybox named like the runtime, it writes the FIFO byte (runc) or reads
it (crun), closes the FIFO, stays the "runtime" a while, then execs ``sleep``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from fluidedge.instances import runc
from fluidedge.instances.errors import RuntimeFailure

LINGER_S = 0.3  # how long the fake init stays the runtime after its FIFO is done


def _busybox() -> str:
    found = shutil.which("busybox")
    if found is None:
        pytest.fail("busybox is not installed (scripts/setup installs busybox-static)")
    return found


def _fake_init(tmp_path: Path, kind: str, script: str) -> subprocess.Popen[bytes]:
    """A process whose executable is named ``kind`` (as runc init's is) running ``script``."""
    binary = tmp_path / kind
    shutil.copy(_busybox(), binary)
    return subprocess.Popen(["sh", "-c", script], executable=binary)


def _runtime(tmp_path: Path, kind: str) -> tuple[runc.Runc, Path]:
    runtime = runc.Runc(tmp_path / "state", kind=kind)
    container = runtime.root / "c1"
    container.mkdir()
    fifo = container / "exec.fifo"
    os.mkfifo(fifo, 0o600)
    return runtime, fifo


@pytest.mark.parametrize("kind", ["runc", "crun"])
def test_start_fast_waits_for_the_exec_not_for_the_fifo(tmp_path: Path, kind: str) -> None:
    runtime, fifo = _runtime(tmp_path, kind)
    # runc's init writes the byte, crun's reads it; both then close the FIFO and linger.
    io = f"echo -n 0 > {fifo}" if kind == "runc" else f"head -c 1 {fifo} > /dev/null"
    sleep = shutil.which("sleep") or "/bin/sleep"  # a program of its own, not busybox's applet
    init = _fake_init(tmp_path, kind, f"{io}; sleep {LINGER_S}; exec {sleep} 30")
    try:
        begin = time.monotonic()
        runtime.start_fast("c1", init.pid, timeout=10)
        waited = time.monotonic() - begin
        exe = runc.exe_of(init.pid) or ""
        assert kind not in exe, exe  # the process is the workload now, not the runtime
        assert exe == os.path.realpath(sleep), exe
        assert waited >= LINGER_S * 0.8, waited
        assert not fifo.exists()
    finally:
        init.kill()
        init.wait()


def test_start_fast_reports_an_init_that_dies_before_its_exec(tmp_path: Path) -> None:
    runtime, fifo = _runtime(tmp_path, "runc")
    init = _fake_init(tmp_path, "runc", f"echo -n 0 > {fifo}; sleep {LINGER_S}; exit 3")
    try:
        with pytest.raises(RuntimeFailure, match="is gone"):
            runtime.start_fast("c1", init.pid, timeout=10)
    finally:
        init.kill()
        init.wait()
