"""fluidedge.linux.libc: each call reaches the C library and a refusal is an OSError with errno."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fluidedge.linux import libc


def test_setns_into_the_threads_own_namespace_and_a_refusal() -> None:
    fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if os.geteuid() == 0:
            libc.setns(fd, libc.CLONE_NEWNET)  # the same namespace: accepted, nothing moves
        with pytest.raises(OSError, match="Invalid argument") as caught:
            libc.setns(fd, 0x00020000)  # CLONE_NEWNS: not what the descriptor is
        assert caught.value.errno == errno.EINVAL
    finally:
        os.close(fd)
    with pytest.raises(OSError, match="Bad file descriptor") as bad:
        libc.setns(-1, libc.CLONE_NEWNET)
    assert bad.value.errno == errno.EBADF
    assert bad.value.strerror == os.strerror(errno.EBADF)


def test_mount_and_umount2_refusals_carry_errno(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=r"No such device|Operation not permitted") as unknown:
        libc.mount(b"none", bytes(tmp_path), b"no-such-filesystem", 0, b"")
    assert unknown.value.errno in (errno.ENODEV, errno.EPERM)
    with pytest.raises(OSError, match=r"Invalid argument|Operation not permitted") as not_mounted:
        libc.umount2(bytes(tmp_path), libc.MNT_DETACH)
    assert not_mounted.value.errno in (errno.EINVAL, errno.EPERM)


def test_sync_file_range_on_a_file_and_on_a_pipe(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 8192)
    fd = os.open(path, os.O_RDWR)
    try:
        libc.sync_file_range(fd, 0, 0, libc.SYNC_FILE_RANGE_WRITE)
    finally:
        os.close(fd)
    read, write = os.pipe()
    try:
        with pytest.raises(OSError, match="Illegal seek") as pipe:
            libc.sync_file_range(read, 0, 0, libc.SYNC_FILE_RANGE_WRITE)
        assert pipe.value.errno == errno.ESPIPE
    finally:
        os.close(read)
        os.close(write)


def test_parent_death_signal_reaches_the_child() -> None:
    # A child that asks for SIGTERM on its parent's death reads it back with PR_GET_PDEATHSIG.
    code = (
        "import ctypes, signal\n"
        "from fluidedge.linux import libc\n"
        "libc.set_parent_death_signal(signal.SIGTERM)\n"
        "value = ctypes.c_int()\n"
        "libc.LIBC.prctl(2, ctypes.addressof(value), 0, 0, 0)\n"
        "print(value.value)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, text=True)
    assert int(out.stdout) == signal.SIGTERM
