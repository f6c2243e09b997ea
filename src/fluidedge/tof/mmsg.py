"""Batched packet I/O with ``recvmmsg(2)``/``sendmmsg(2)`` (Python's socket module has neither).

WHY: in the userspace data plane the per-frame cost is dominated by the interpreter and by one
system call per frame in each direction. ``recvmmsg`` fills up to ``batch`` preallocated buffers
in one call, and ``sendmmsg`` sends the pass-through frames of a batch straight from those
buffers (metadata + frame, untouched) in one call: no copy, two syscalls per batch.

The buffers are ctypes arrays owned by :class:`RxRing`; a frame handed to the pipeline is copied
out (``string_at``) so the pipeline never sees memory that the next ``recvmmsg`` overwrites.
"""

from __future__ import annotations

import ctypes
import errno
import os

from fluidedge.linux.heldcalls import libc as _held_libc
from fluidedge.linux.libc import LIBC as _libc

MSG_DONTWAIT = 0x40


class _Iovec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class _Msghdr(ctypes.Structure):
    _fields_ = (
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_Iovec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    )


class _Mmsghdr(ctypes.Structure):
    _fields_ = (("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint))


_libc.recvmmsg.argtypes = (
    ctypes.c_int,
    ctypes.POINTER(_Mmsghdr),
    ctypes.c_uint,
    ctypes.c_int,
    ctypes.c_void_p,
)
_libc.recvmmsg.restype = ctypes.c_int
# recvmmsg with MSG_DONTWAIT never blocks: it keeps the GIL (fluidedge.linux.heldcalls), so no
# other daemon thread takes it between the poll and the packet's processing.
_held_libc.recvmmsg.argtypes = _libc.recvmmsg.argtypes
_held_libc.recvmmsg.restype = ctypes.c_int
_libc.sendmmsg.argtypes = (ctypes.c_int, ctypes.POINTER(_Mmsghdr), ctypes.c_uint, ctypes.c_int)
_libc.sendmmsg.restype = ctypes.c_int


def _messages(count: int) -> tuple[ctypes.Array[_Mmsghdr], ctypes.Array[_Iovec]]:
    msgs = (_Mmsghdr * count)()
    iovs = (_Iovec * count)()
    for i in range(count):
        msgs[i].msg_hdr.msg_iov = ctypes.pointer(iovs[i])
        msgs[i].msg_hdr.msg_iovlen = 1
    return msgs, iovs


class RxRing:
    """``batch`` receive buffers of ``size`` bytes, filled by one ``recvmmsg`` call."""

    def __init__(self, fd: int, batch: int, size: int) -> None:
        self.fd = fd
        self.batch = batch
        self.buffers = [ctypes.create_string_buffer(size) for _ in range(batch)]
        self.addresses = [ctypes.addressof(b) for b in self.buffers]
        self.msgs, self.iovs = _messages(batch)
        for i, address in enumerate(self.addresses):
            self.iovs[i].iov_base = address
            self.iovs[i].iov_len = size

    def receive(self) -> int:
        """Fill up to ``batch`` buffers without blocking; the number received (0 if none)."""
        n = _held_libc.recvmmsg(self.fd, self.msgs, self.batch, MSG_DONTWAIT, None)
        if n < 0:
            err = ctypes.get_errno()
            if err in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                return 0
            raise OSError(err, os.strerror(err))
        return int(n)

    def length(self, i: int) -> int:
        return int(self.msgs[i].msg_len)

    def copy(self, i: int, start: int, end: int) -> bytes:
        """Bytes ``start:end`` of buffer ``i`` (a copy)."""
        return ctypes.string_at(self.addresses[i] + start, end - start)


class TxBatch:
    """Frames (address, length) queued for one ``sendmmsg`` on ``fd``."""

    def __init__(self, fd: int, batch: int) -> None:
        self.fd = fd
        self.capacity = batch
        self.count = 0
        self.msgs, self.iovs = _messages(batch)

    def add(self, address: int, length: int) -> bool:
        """Queue a frame; False when full (flush first)."""
        if self.count == self.capacity:
            return False
        self.iovs[self.count].iov_base = address
        self.iovs[self.count].iov_len = length
        self.count += 1
        return True

    def flush(self) -> tuple[int, int]:
        """Send what is queued: (frames sent, errno of the first failure or 0)."""
        done = failures = first = 0
        while done < self.count:
            msgs = ctypes.cast(ctypes.byref(self.msgs, done * ctypes.sizeof(_Mmsghdr)),
                               ctypes.POINTER(_Mmsghdr))  # fmt: skip
            n = _libc.sendmmsg(self.fd, msgs, self.count - done, 0)
            if n <= 0:
                failures += 1
                first = first or ctypes.get_errno() or errno.EIO
                done += 1  # skip the frame that failed, keep going
                continue
            done += n
        sent = self.count - failures
        self.count = 0
        return sent, first
