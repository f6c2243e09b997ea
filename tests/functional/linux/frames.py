"""The linux tests' traffic: frames of an EtherType no kernel sends, and the packet sockets'
drain."""

from __future__ import annotations

import errno
import socket

KIND = 0x88B5  # IEEE 802 local experimental: no frame of the kernel's own has it


def frame(tag: int = 0) -> bytes:
    """A broadcast frame of :data:`KIND` whose 50 payload bytes are all ``tag``."""
    return b"\xff" * 6 + b"\x02" * 6 + KIND.to_bytes(2, "big") + bytes([tag]) * 50


def drained(sock: socket.socket) -> list[bytes]:
    """The frames a non-blocking ``sock`` holds, drained. A socket bound while its device was
    down reports that once (ENETDOWN), before its frames."""
    out = []
    while True:
        try:
            out.append(sock.recv(2048))
        except BlockingIOError:
            return out
        except OSError as exc:
            if exc.errno != errno.ENETDOWN:
                raise
