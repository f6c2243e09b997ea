"""Packet (``AF_PACKET``) sockets that hear one interface, from their first frame.

A packet socket created with a protocol (``socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL))``)
is hooked into the stack at once for *every* interface of its namespace, and is narrowed to
one interface only when it is bound. Whatever crosses any interface in between is queued to
it. Found in CI: the fast path's lawful-intercept reader (a veth that only the intercept's
copies cross) took packets crossing the apps interface in that window into the intercept's
pcap, so an intercept could hold packets that were never the target's (another subscriber's,
on a real TOF). The userspace TOF's eNB-side socket could likewise take an SGW-side frame at
start, and one without the virtio-net header that it then reads.

Created with protocol 0 a socket is hooked nowhere; its options (a filter, buffer sizes, the
vnet header) are set, then ``bind`` hooks it to the one interface for the protocol wanted.
(libpcap drains what such a window let in; not having the window is simpler.) Protocol 0 at
``bind`` leaves it hooked nowhere: a socket that only sends queues nothing.
``tests/unit/linux/test_packet.py`` holds every packet socket in ``src/`` to this module.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

__all__ = ["ETH_P_ALL", "packet_socket"]

ETH_P_ALL = 0x0003  # <linux/if_ether.h>: every protocol


def packet_socket(
    ifname: str,
    protocol: int = ETH_P_ALL,
    setup: Callable[[socket.socket], object] | None = None,
) -> socket.socket:
    """A raw packet socket of ``ifname`` (in the calling thread's namespace) that hears
    ``protocol`` (an EtherType in host order; 0: none, the socket only sends) there and
    nowhere else; ``setup`` sets its options before it hears anything. Closed if a step
    fails (``OSError``: no such interface, an option refused)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        if setup is not None:
            setup(sock)
        sock.bind((ifname, protocol))
    except BaseException:
        sock.close()
        raise
    return sock
