"""Short, non-blocking system calls made *without* releasing the GIL.

WHY: CPython releases the GIL around every system call (``os.pwrite``, ``os.read``, a ctypes
``CDLL`` call). In a daemon whose packet path is a Python thread, each release is a chance for
another thread that woke meanwhile (the API, timers, the instance pool's workers) to take the
GIL; the packet then waits until that thread blocks or the switch interval (5 ms by default)
ends. Calls that cannot block and take microseconds (a ``recvmmsg`` with ``MSG_DONTWAIT``, the
write that thaws a cgroup and the read that confirms it) are cheaper with the GIL kept: no
hand-off, no wait. ``ctypes.PyDLL`` calls libc that way.

Only for calls that never block: anything that may sleep would stop every thread of the
process while it does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["libc", "pread", "pwrite"]

#: libc, called with the GIL held (``errno`` kept: ``ctypes.get_errno()``).
libc = ctypes.PyDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
libc.pwrite.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_long)
libc.pwrite.restype = ctypes.c_ssize_t
libc.pread.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long)
libc.pread.restype = ctypes.c_ssize_t


def _check(n: int) -> int:
    if n < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return n


def pwrite(fd: int, data: bytes, offset: int) -> int:
    """``os.pwrite`` with the GIL held (for a write that cannot block)."""
    return _check(int(libc.pwrite(fd, data, len(data), offset)))


def pread(fd: int, size: int, offset: int) -> bytes:
    """``os.pread`` with the GIL held (for a read that cannot block)."""
    buffer = ctypes.create_string_buffer(size)
    n = _check(int(libc.pread(fd, buffer, size, offset)))
    return buffer.raw[:n]
