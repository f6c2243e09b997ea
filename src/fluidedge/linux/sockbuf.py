"""Socket buffer sizes that hold on a stock host, past ``net.core.rmem_max``/``wmem_max``.

``SO_RCVBUF``/``SO_SNDBUF`` are silently capped by the ``net.core.rmem_max``/``wmem_max``
sysctls. Those are 212,992 bytes on a stock Debian host; these development machines raise them
to 4 MiB. A socket that asks for 4 MiB gets it here and about 10x less on an operator's host:
the userspace TOF's S1 sockets, the fast path's punt and send sockets, the intercept reader.
Under a burst such a socket drops frames (counted, but lost) that our lab never drops. Found in
the stock-kernel VM tier, where the suite's own capture sockets overflowed the same way.

The daemon runs with ``CAP_NET_ADMIN``, which lets ``SO_RCVBUFFORCE``/``SO_SNDBUFFORCE`` set
the size asked whatever the sysctls say; without that capability (a user running the lab or a
probe unprivileged), the plain option is used and the sysctl's cap applies. The kernel doubles
the value for its bookkeeping (socket(7)); :func:`sizes` reads back what it holds.
:func:`stock_caps` puts a stock host's caps on this one for a while (root), for the
measurements and tests that show what such a host does.
``tests/unit/linux/test_sockbuf.py`` holds every buffer size set in ``src/`` to this module.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "CAPS",
    "SO_RCVBUFFORCE",
    "SO_SNDBUFFORCE",
    "STOCK_CAP",
    "size_buffers",
    "sizes",
    "stock_caps",
]

# <asm-generic/socket.h>: the buffer options that ignore the sysctls' caps (CAP_NET_ADMIN)
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33

# net.core.rmem_max/wmem_max (and rmem_default) on a stock Debian 12 kernel, in bytes
STOCK_CAP = 212992
CAPS = (Path("/proc/sys/net/core/rmem_max"), Path("/proc/sys/net/core/wmem_max"))


def _set(sock: socket.socket, force: int, plain: int, size: int) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, size)
    except PermissionError:  # no CAP_NET_ADMIN: as much as the sysctl allows
        sock.setsockopt(socket.SOL_SOCKET, plain, size)


def size_buffers(
    sock: socket.socket, *, receive: int | None = None, send: int | None = None
) -> None:
    """Give ``sock`` a receive and/or send buffer of the bytes asked, uncapped by the host's
    sysctls where the process may (see the module docstring). ``OSError`` as ``setsockopt``."""
    if receive is not None:
        _set(sock, SO_RCVBUFFORCE, socket.SO_RCVBUF, receive)
    if send is not None:
        _set(sock, SO_SNDBUFFORCE, socket.SO_SNDBUF, send)


def sizes(sock: socket.socket) -> tuple[int, int]:
    """The (receive, send) buffer sizes the kernel holds for ``sock`` (twice what was set)."""
    return (
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
    )


@contextmanager
def stock_caps(cap: int = STOCK_CAP, caps: tuple[Path, ...] = CAPS) -> Iterator[None]:
    """The host's ``rmem_max``/``wmem_max`` set to ``cap`` for the block, then put back as
    found (root: they are host-wide sysctls)."""
    found = [path.read_text() for path in caps]
    try:
        for path in caps:
            path.write_text(f"{cap}\n")
        yield
    finally:
        for path, text in zip(caps, found, strict=True):
            path.write_text(text)
