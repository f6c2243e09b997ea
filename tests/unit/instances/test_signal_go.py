"""The go signal to a shell's launcher over its FIFO (``launcher.signal_go``): written when the
launcher reads; a launcher that exited, and one that never opens, are told apart; a go frame
larger than the pipe is written as the launcher reads it; a reader gone mid-frame is an error."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from fluidedge.instances.errors import RuntimeFailure
from fluidedge.instances.launcher import GO_BYTES, go_frame, signal_go


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


def test_a_frame_larger_than_the_pipe_is_written_as_it_is_read(tmp_path: Path) -> None:
    path = fifo(tmp_path)
    assignment = bytes(range(256)) * 1000  # 256 kB: four times the pipe
    got: list[bytes] = []

    def launcher() -> None:
        with open(path, "rb", buffering=0) as f:
            chunks = []
            while chunk := f.read(4096):
                chunks.append(chunk)
                time.sleep(0.0005)  # a slow reader: the writer meets a full pipe
            got.append(b"".join(chunks))

    reader = threading.Thread(target=launcher)
    reader.start()
    signal_go(path, os.getpid(), go_frame(assignment))
    reader.join(10)
    frame = got[0]
    assert frame[:1] == b"a"
    assert int.from_bytes(frame[1:5], "little") == len(assignment)
    assert frame[5:] == assignment


def test_a_reader_gone_mid_frame_is_an_error(tmp_path: Path) -> None:
    path = fifo(tmp_path)

    def launcher() -> None:  # reads a little, then closes: the rest cannot be delivered
        with open(path, "rb", buffering=0) as f:
            f.read(10)

    reader = threading.Thread(target=launcher)
    reader.start()
    with pytest.raises(RuntimeFailure, match="Broken pipe"):
        signal_go(path, os.getpid(), go_frame(bytes(300_000)))
    reader.join(10)
