"""Whether a daemon's pidfile names a live process (:func:`fluidedge.ovs.daemons.alive`).

A killed daemon whose parent does not reap it (a container whose pid 1 is ``sleep``) stays a
zombie: ``kill(pid, 0)`` succeeds on it, yet it forwards nothing. It must count as dead, or
the switch (or OVN chassis) it belongs to is never restarted."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from fluidedge.ovs.daemons import alive


def test_a_live_process_is_alive(tmp_path: Path) -> None:
    pidfile = tmp_path / "x.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    assert alive(pidfile) == os.getpid()


def test_a_zombie_is_not(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])  # not waited for: a zombie
    pidfile = tmp_path / "x.pid"
    pidfile.write_text(f"{child.pid}\n")
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child.pid}/stat").read_bytes().split(b") ")[-1][:1] != b"Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(child.pid, 0)  # the kernel still says it exists
    assert alive(pidfile) is None
    child.wait()
    assert alive(pidfile) is None  # reaped: gone


def test_no_pidfile_or_garbage_is_not(tmp_path: Path) -> None:
    assert alive(tmp_path / "missing.pid") is None
    (tmp_path / "bad.pid").write_text("not a pid\n")
    assert alive(tmp_path / "bad.pid") is None
