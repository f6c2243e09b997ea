"""The C library's calls that Python 3.11's ``os`` lacks, typed once, failing with ``OSError``.

WHY one module: each caller used to open its own ``ctypes.CDLL`` handle on libc and turn
``errno`` into an error its own way. Here every call has its argument and result types declared
(a wrong type fails in Python, not in the C library) and a failure raises ``OSError`` with
``errno`` and ``strerror`` set, so a caller wraps it in its package's error with its own
context (``raise OverlayError(exc.errno, f"... {exc.strerror}") from exc``).

:data:`LIBC` is the handle, released GIL and ``errno`` kept, for calls with structures of their
own (``fluidedge.tof.mmsg``). Calls that must keep the GIL are in
:mod:`fluidedge.linux.heldcalls`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = [
    "CLONE_NEWNET",
    "LIBC",
    "MNT_DETACH",
    "SYNC_FILE_RANGE_WRITE",
    "mount",
    "set_parent_death_signal",
    "setns",
    "sync_file_range",
    "umount2",
]

#: setns(2)'s namespace type for a network namespace.
CLONE_NEWNET = 0x40000000
#: umount2(2): detach now, unmount when the last user lets go.
MNT_DETACH = 2
#: sync_file_range(2): start the write-out of dirty pages without waiting for it.
SYNC_FILE_RANGE_WRITE = 2
_PR_SET_PDEATHSIG = 1

#: libc, called with the GIL released (``errno`` kept: ``ctypes.get_errno()``).
LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
LIBC.setns.argtypes = (ctypes.c_int, ctypes.c_int)
LIBC.setns.restype = ctypes.c_int
LIBC.mount.argtypes = (
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
)
LIBC.mount.restype = ctypes.c_int
LIBC.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
LIBC.umount2.restype = ctypes.c_int
LIBC.sync_file_range.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
LIBC.sync_file_range.restype = ctypes.c_int
LIBC.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
LIBC.prctl.restype = ctypes.c_int


def _check(result: int) -> None:
    """Raise the ``OSError`` of ``errno`` when a call returned -1 (any non-zero)."""
    if result != 0:
        err = ctypes.get_errno() or 5  # EIO when the library set none
        raise OSError(err, os.strerror(err))


def setns(fd: int, nstype: int) -> None:
    """Move the calling *thread* into the namespace open at ``fd`` (``os.setns`` is 3.12+)."""
    _check(LIBC.setns(fd, nstype))


def mount(source: bytes, target: bytes, fstype: bytes, flags: int, data: bytes) -> None:
    """mount(2)."""
    _check(LIBC.mount(source, target, fstype, flags, data))


def umount2(target: bytes, flags: int) -> None:
    """umount2(2)."""
    _check(LIBC.umount2(target, flags))


def sync_file_range(fd: int, offset: int, nbytes: int, flags: int) -> None:
    """sync_file_range(2); ``nbytes`` 0 reaches the end of the file."""
    _check(LIBC.sync_file_range(fd, offset, nbytes, flags))


def set_parent_death_signal(signum: int) -> None:
    """prctl(PR_SET_PDEATHSIG): the calling process gets ``signum`` when its parent dies (for
    a child between fork and exec)."""
    _check(LIBC.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0))
