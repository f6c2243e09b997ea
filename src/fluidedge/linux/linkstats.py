"""A link's kernel counters (``IFLA_STATS64``), read over rtnetlink from its namespace.

Why: some losses happen in the kernel, at a device, and nowhere else: a TUN whose reader falls
behind drops what is routed into it at its queue (``tun_net_xmit``, counted in the device's
``tx_dropped``), and nothing of ours sees it. The TOF reads its apps TUN's counter on every
``GET /stats`` so that such drops are counted, never silent. ``/sys/class/net`` shows only the
namespace sysfs was mounted in; a netlink socket opened in the device's namespace answers for
it from any thread.

Encoding and decoding are sans-I/O (``struct rtnl_link_stats64``, include/uapi/linux/
if_link.h; rtnetlink(7)); :class:`LinkStatsReader` is the thin I/O part.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from dataclasses import dataclass

from fluidedge.linux import netns as netns_mod
from fluidedge.linux.netlink import (
    NLATTR,
    NLM_F_REQUEST,
    NLMSG_ERROR,
    Frame,
    NetlinkDecodeError,
    attributes,
    error_code,
    frames,
    nlmsg,
)

__all__ = [
    "LinkStats",
    "LinkStatsError",
    "LinkStatsReader",
    "decode_link_stats",
    "encode_get_link",
]

IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
RTM_NEWLINK = 16
RTM_GETLINK = 18
IFLA_STATS64 = 23
# struct rtnl_link_stats64: the fields read, in their order (u64 each)
STATS64_FIELDS = (
    "rx_packets",
    "tx_packets",
    "rx_bytes",
    "tx_bytes",
    "rx_errors",
    "tx_errors",
    "rx_dropped",
    "tx_dropped",
)
_STATS64 = struct.Struct("=" + "Q" * len(STATS64_FIELDS))


class LinkStatsError(OSError):
    """The kernel refused the request (its errno) or answered what could not be decoded."""


@dataclass(frozen=True)
class LinkStats:
    """The first counters of ``struct rtnl_link_stats64``."""

    rx_packets: int
    tx_packets: int
    rx_bytes: int
    tx_bytes: int
    rx_errors: int
    tx_errors: int
    rx_dropped: int
    tx_dropped: int


def encode_get_link(seq: int, ifindex: int) -> bytes:
    """``RTM_GETLINK`` of the link ``ifindex``."""
    return nlmsg(RTM_GETLINK, NLM_F_REQUEST, seq, IFINFO.pack(socket.AF_UNSPEC, 0, ifindex, 0, 0))


def decode_link_stats(data: bytes, seq: int) -> LinkStats | None:
    """The counters in the answer to request ``seq`` within ``data`` (one ``recv``); None when
    ``data`` holds no answer to it (an earlier request's). Raises :class:`LinkStatsError` with
    the kernel's errno, or naming the offset of what does not fit."""
    try:
        for frame in frames(data):
            if frame.seq != seq:
                continue
            if frame.kind == NLMSG_ERROR:
                code = error_code(data, frame)
                raise LinkStatsError(code, os.strerror(code))
            if frame.kind == RTM_NEWLINK:
                return _stats(data, frame)
    except NetlinkDecodeError as exc:
        raise LinkStatsError(str(exc)) from exc
    return None


def _stats(data: bytes, frame: Frame) -> LinkStats:
    start = frame.body + IFINFO.size
    if start > frame.end:
        raise LinkStatsError(f"link message at offset {frame.offset}: shorter than its ifinfomsg")
    for kind, value_start, value_end in attributes(data, start, frame.end):
        if kind == IFLA_STATS64:
            if value_end - value_start < _STATS64.size:
                raise LinkStatsError(
                    f"IFLA_STATS64 at offset {value_start - NLATTR.size}: "
                    f"{value_end - value_start} bytes"
                )
            return LinkStats(*_STATS64.unpack_from(data, value_start))
    raise LinkStatsError(f"link message at offset {frame.offset}: no IFLA_STATS64")


class LinkStatsReader:
    """A ``NETLINK_ROUTE`` socket bound to namespace ``netns`` (None: the caller's), for the
    counters of its links; one request at a time."""

    def __init__(self, netns: str | None, timeout: float = 2.0) -> None:
        def make() -> socket.socket:
            sock = socket.socket(
                socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
            )
            sock.settimeout(timeout)
            return sock

        self._sock = netns_mod.call_in_netns(netns, make)
        self._seq = 0
        self._lock = threading.Lock()

    def read(self, ifindex: int) -> LinkStats:
        """The counters of link ``ifindex`` (:class:`LinkStatsError`: ``ENODEV`` once gone)."""
        with self._lock:
            self._seq += 1
            seq = self._seq
            self._sock.send(encode_get_link(seq, ifindex))
            while True:
                stats = decode_link_stats(self._sock.recv(65536), seq)
                if stats is not None:
                    return stats

    def close(self) -> None:
        self._sock.close()
