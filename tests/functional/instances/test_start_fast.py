"""``Runc.start_fast`` returns only once the runtime's init has exec'd (real processes).

runc since its CVE-2024-21626 fix closes the exec FIFO's write end *before* its ``execve``, so
the FIFO's EOF does not mean the exec happened; a memory limit lowered in that window had
cgroup v2 OOM-kill runc init. These tests stand a real process in for the runtime's init, as
the runtime shows it in ``/proc`` (runc: the name ``runc:[2:INIT]``; crun: its binary), that
writes the FIFO byte (runc) or reads it (crun), stays the "runtime" a while, then execs
``sleep``.
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


def test_start_fast_waits_for_runcs_exec_not_for_the_fifo(tmp_path: Path) -> None:
    """runc's init as Debian 12's runc shows it: named ``runc:[2:INIT]``, its exe reading
    ``/`` (here: busybox's, with no "runc" in it); it writes the byte, closes the FIFO, lingers,
    then execs."""
    runtime, fifo = _runtime(tmp_path, "runc")
    sleep = shutil.which("sleep") or "/bin/sleep"  # a program of its own, not busybox's applet
    script = (
        f"echo -n 'runc:[2:INIT]' > /proc/$$/comm; echo -n 0 > {fifo}; "
        f"sleep {LINGER_S}; exec {sleep} 30"
    )
    init = subprocess.Popen([_busybox(), "sh", "-c", script])
    try:
        _wait_name(init.pid, "runc:[2:INIT]")
        begin = time.monotonic()
        runtime.start_fast("c1", init.pid, timeout=10)
        waited = time.monotonic() - begin
        assert Path(f"/proc/{init.pid}/comm").read_text().strip() == "sleep"
        assert not runc.runtime_init(init.pid, "runc")
        assert waited >= LINGER_S * 0.8, waited
        assert not fifo.exists()
    finally:
        init.kill()
        init.wait()


def test_start_fast_waits_for_cruns_exec(tmp_path: Path) -> None:
    """crun's init runs the crun binary (here: a busybox copy named crun): it reads the byte,
    lingers, then execs."""
    runtime, fifo = _runtime(tmp_path, "crun")
    sleep = shutil.which("sleep") or "/bin/sleep"
    script = f"head -c 1 {fifo} > /dev/null; sleep {LINGER_S}; exec {sleep} 30"
    init = _fake_init(tmp_path, "crun", script)
    try:
        begin = time.monotonic()
        runtime.start_fast("c1", init.pid, timeout=10)
        waited = time.monotonic() - begin
        assert runc.exe_of(init.pid) == os.path.realpath(sleep)
        assert waited >= LINGER_S * 0.8, waited
    finally:
        init.kill()
        init.wait()


def _wait_name(pid: int, name: str) -> None:
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}/comm").read_text().strip() != name:
        if time.monotonic() > deadline:
            pytest.fail(f"process {pid} never named itself {name}")
        time.sleep(0.005)


def test_start_fast_reports_an_init_that_dies_before_its_exec(tmp_path: Path) -> None:
    runtime, fifo = _runtime(tmp_path, "runc")
    script = f"echo -n 'runc:[2:INIT]' > /proc/$$/comm; echo -n 0 > {fifo}; sleep {LINGER_S}"
    init = subprocess.Popen([_busybox(), "sh", "-c", f"{script}; exit 3"])
    try:
        with pytest.raises(RuntimeFailure, match="is gone"):
            runtime.start_fast("c1", init.pid, timeout=10)
    finally:
        init.kill()
        init.wait()
