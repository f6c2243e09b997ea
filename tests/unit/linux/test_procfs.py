"""The liveness test every keeper of processes uses (:mod:`fluidedge.linux.procfs`): a live
process is running; a zombie, a reaped or an impossible pid is not; the state is read after
the last ``)`` of the stat line, whatever the command name holds."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.fixtures.wait import scaled

from fluidedge.linux import procfs


def test_process_running_tells_live_from_zombie_and_gone() -> None:
    assert procfs.process_running(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])  # exits; not reaped: a zombie
    deadline = time.monotonic() + scaled(10)
    while procfs.process_running(child.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert Path(f"/proc/{child.pid}").exists()  # still there, as a zombie
    os.kill(child.pid, 0)  # which kill(pid, 0) does not tell
    assert not procfs.process_running(child.pid)
    child.wait()
    assert not procfs.process_running(child.pid)  # reaped: gone


@pytest.mark.parametrize("pid", [0, -1, 4_194_305])  # 4194305: above any pid_max
def test_impossible_pids_are_not_running(pid: int) -> None:
    assert not procfs.process_running(pid)


@pytest.mark.parametrize(
    ("line", "state"),
    [
        (b"42 (sleep) S 1 42 42 0 -1", b"S"),
        (b"42 (a) Z (b) R 1 42", b"R"),  # a name holding ") Z (": the last ")" decides
        (b"42 (x) Z 1 42", b"Z"),
        (b"42 (x)", None),
        (b"", None),
    ],
)
def test_stat_state_reads_after_the_last_parenthesis(line: bytes, state: bytes | None) -> None:
    assert procfs.stat_state(line) == state


@given(st.binary(max_size=64))
def test_stat_state_of_any_bytes_is_none_or_one_word(line: bytes) -> None:
    state = procfs.stat_state(line)
    assert state is None or (state and state == state.split()[0] and b")" not in state)


def test_proc_bytes_reads_at_most_size_and_none_when_unreadable() -> None:
    comm = procfs.proc_bytes(os.getpid(), "comm", 64)
    assert comm is not None
    assert comm.endswith(b"\n")
    assert len(comm) <= 64
    assert procfs.proc_bytes(os.getpid(), "stat", 3) == str(os.getpid()).encode()[:3]
    assert procfs.proc_bytes(4_194_305, "stat", 64) is None
