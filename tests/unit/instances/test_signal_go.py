"""The go signal to a shell's launcher over its FIFO (``launcher.signal_go``): written when the
launcher reads; a launcher that exited, and one that never opens, are told apart."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from fluidedge.instances.errors import RuntimeFailure
from fluidedge.instances.launcher import GO_BYTES, signal_go


def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "go"
    os.mkfifo(path, 0o600)
    return path


def test_a_waiting_launcher_gets_the_go_byte(tmp_path: Path) -> None:
    path = fifo(tmp_path)
    got: list[bytes] = []

    def launcher() -> None:  # opens a moment later, as a launcher just started would
        with open(path, "rb") as f:
            got.append(f.read())

    reader = threading.Timer(0.05, launcher)
    reader.start()
    signal_go(path, os.getpid())
    reader.join(5)
    assert got == [GO_BYTES]


def test_a_launcher_that_exited_is_named_at_once(tmp_path: Path) -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    with pytest.raises(RuntimeFailure, match="exited before its go"):
        signal_go(fifo(tmp_path), child.pid, timeout=30)


def test_a_launcher_that_never_opens_times_out(tmp_path: Path) -> None:
    with pytest.raises(RuntimeFailure, match=r"did not open its go FIFO within 0\.2 s"):
        signal_go(fifo(tmp_path), os.getpid(), timeout=0.2)
