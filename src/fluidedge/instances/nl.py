"""A tiny rtnetlink client for the execute phase: addresses, routes, link up, link lookup.

Why not pyroute2 here: the execute phase must cost microseconds. Each shell keeps one raw
``NETLINK_ROUTE`` socket created inside its network namespace during the prepare phase (a
socket stays bound to the namespace it was created in), so setting an instance's addresses is
one ``sendmsg`` + one ack per address, from the daemon, without entering the namespace.

Encoding/decoding are pure functions (unit-tested); :class:`NetlinkSocket` is the thin I/O part.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import TypeVar

from fluidedge.linux.netlink import (
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    NLMSG_ERROR,
    NetlinkDecodeError,
    attr,
    error_code,
    frames,
    nlmsg,
)
from fluidedge.linux.netns import call_in_netns_at

RTM_NEWLINK = 16
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_NEWROUTE = 24
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_F_NODAD = 0x02
IFLA_IFNAME = 3
RTA_GATEWAY = 5
RTA_OIF = 4
RT_TABLE_MAIN = 254
RTPROT_STATIC = 4
RTN_UNICAST = 1
IFF_UP = 0x1

_IFADDR = struct.Struct("=BBBBI")
IFINFO = struct.Struct("=BxHiII")
_RTMSG = struct.Struct("=BBBBBBBBI")

T = TypeVar("T")


class NetlinkError(OSError):
    """The kernel answered a request with an error."""


def encode_add_address(seq: int, ifindex: int, address: str) -> bytes:
    """RTM_NEWADDR for ``address`` (``ip/prefix``) on ``ifindex`` (IPv6: no DAD wait)."""
    iface = ipaddress.ip_interface(address)
    family = socket.AF_INET if iface.version == 4 else socket.AF_INET6
    flags = IFA_F_NODAD if iface.version == 6 else 0
    packed = iface.ip.packed
    body = _IFADDR.pack(family, iface.network.prefixlen, flags, 0, ifindex)
    body += attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)
    return nlmsg(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, body)


def encode_default_route(seq: int, ifindex: int, gateway: str) -> bytes:
    """RTM_NEWROUTE: default route via ``gateway`` out of ``ifindex``."""
    gw = ipaddress.ip_address(gateway)
    family = socket.AF_INET if gw.version == 4 else socket.AF_INET6
    body = _RTMSG.pack(family, 0, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, 0, RTN_UNICAST, 0)
    body += attr(RTA_GATEWAY, gw.packed) + attr(RTA_OIF, struct.pack("=I", ifindex))
    return nlmsg(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, body)


def encode_link_up(seq: int, ifindex: int) -> bytes:
    body = IFINFO.pack(socket.AF_UNSPEC, 0, ifindex, IFF_UP, IFF_UP)
    return nlmsg(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq, body)


def encode_get_link(seq: int, ifname: str) -> bytes:
    body = IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attr(IFLA_IFNAME, ifname.encode() + b"\0")
    return nlmsg(RTM_GETLINK, NLM_F_REQUEST, seq, body)


def decode_reply(data: bytes, seq: int) -> tuple[int, int | None] | None:
    """``(errno, ifindex)`` of the reply to ``seq`` in ``data`` (one receive); None when
    ``data`` holds none (an earlier request's answer).

    ``errno`` is 0 for an ack or a link message; ``ifindex`` is set for RTM_NEWLINK replies.
    Raises :class:`~fluidedge.linux.netlink.NetlinkDecodeError` naming the offset of what is
    not well-framed.
    """
    for frame in frames(data):
        if frame.seq != seq:
            continue
        if frame.kind == NLMSG_ERROR:
            return error_code(data, frame), None
        if frame.kind == RTM_NEWLINK:
            if frame.end - frame.body < IFINFO.size:
                raise NetlinkDecodeError(f"link message at offset {frame.offset}: too short")
            return 0, IFINFO.unpack_from(data, frame.body)[2]
    return None


class NetlinkSocket:
    """A NETLINK_ROUTE socket bound to the network namespace it was opened in."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._seq = 0
        self._lock = threading.Lock()

    @classmethod
    def open_in(cls, netns_path: str) -> NetlinkSocket:
        def make() -> socket.socket:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            sock.bind((0, 0))
            return sock

        return cls(call_in_netns_at(netns_path, make))

    def close(self) -> None:
        self._sock.close()

    def _call(self, build: Callable[[int], bytes]) -> int | None:
        with self._lock:
            self._seq += 1
            seq = self._seq
            self._sock.send(build(seq))
            while True:
                try:
                    reply = decode_reply(self._sock.recv(65536), seq)
                except NetlinkDecodeError as exc:
                    raise NetlinkError(errno.EBADMSG, str(exc)) from exc
                if reply is None:
                    continue
                code, index = reply
                if code:
                    raise NetlinkError(code, os.strerror(code))
                return index

    def add_address(self, ifindex: int, address: str) -> None:
        self._call(lambda seq: encode_add_address(seq, ifindex, address))

    def add_default_route(self, ifindex: int, gateway: str) -> None:
        self._call(lambda seq: encode_default_route(seq, ifindex, gateway))

    def link_up(self, ifindex: int) -> None:
        self._call(lambda seq: encode_link_up(seq, ifindex))

    def link_index(self, ifname: str) -> int:
        index = self._call(lambda seq: encode_get_link(seq, ifname))
        if index is None:
            raise NetlinkError(errno.ENODEV, f"no link {ifname}")
        return index
