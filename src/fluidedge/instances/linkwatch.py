"""Which links a network namespace lost: the kernel's ``RTM_DELLINK`` announcements, drained.

Why: an instance's veth deleted from outside (``ip link del fe…``, a network tool that removes
links it does not know, a tenant with ``CAP_NET_ADMIN`` deleting its own end: either end
takes the pair) cuts the instance off its network for good; nothing else ever notices it. The
instances part checks each second (``switch_check_interval_s``) whether one of its veths went,
and makes it again (:meth:`fluidedge.instances.manager.Manager.revive_veths`).

Asking the kernel for every veth each second would cost a dump of every link (ten thousand
instances: megabytes of attributes parsed per second). Instead one ``NETLINK_ROUTE`` socket per
namespace, bound to ``RTNLGRP_LINK``, queues the kernel's link announcements, and the check
reads what queued since the last one (non-blocking: nothing queued costs one ``recv``). Its
queue is large (8 MiB, past the host's ``rmem_max``: :mod:`fluidedge.linux.sockbuf`); if it
overflows all the same (``ENOBUFS``: a burst of link changes, ours included),
:meth:`LinkWatch.drain` says so and the caller checks every link it owns.

A namespace's full listing (:func:`list_links`) is one ``RTM_GETLINK`` dump without the links'
statistics, of which only the names are read: ten thousand links in tens of milliseconds, on
the caller's thread (pyroute2's parse of every attribute took 0.2 s for 500 links, under the
lock that plugging an instance's veth takes).

Decoding is sans-I/O (:func:`deleted_links`, :func:`dumped_links`: bytes in, names out);
:class:`LinkWatch` and :func:`list_links` are the thin I/O part.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator

from fluidedge.instances.errors import RuntimeFailure
from fluidedge.instances.nl import IFINFO, IFLA_IFNAME, RTM_GETLINK, RTM_NEWLINK
from fluidedge.linux import netns as netns_mod
from fluidedge.linux.netlink import (
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    Frame,
    NetlinkDecodeError,
    attr,
    error_code,
    find_attribute,
    frames,
    nlmsg,
)
from fluidedge.linux.sockbuf import size_buffers

__all__ = [
    "RTM_DELLINK",
    "LinkWatch",
    "LinkWatchDecodeError",
    "deleted_links",
    "dumped_links",
    "encode_dump",
    "list_links",
]

# rtnetlink(7), include/uapi/linux/rtnetlink.h
RTM_DELLINK = 17
RTMGRP_LINK = 0x1
IFLA_EXT_MASK = 29
RTEXT_FILTER_SKIP_STATS = 1 << 3
QUEUE_BYTES = 8 * 1024 * 1024


class LinkWatchDecodeError(RuntimeFailure):
    """A link announcement the kernel sent could not be decoded (its offset named)."""


def deleted_links(data: bytes) -> list[str]:
    """The names of the links ``RTM_DELLINK`` messages in ``data`` (one ``recv``) announce,
    in order; other messages are skipped. Raises :class:`LinkWatchDecodeError` naming the
    offset of a message or attribute whose length does not fit."""
    return [name for kind, name in _links(data) if kind == RTM_DELLINK and name is not None]


def dumped_links(data: bytes) -> tuple[list[str], bool]:
    """The names of the links in part of a ``RTM_GETLINK`` dump's answer (one ``recv``), and
    whether it holds the dump's end (``NLMSG_DONE``). Raises :class:`LinkWatchDecodeError` as
    :func:`deleted_links` does, or naming the errno of an ``NLMSG_ERROR``."""
    names: list[str] = []
    for kind, name in _links(data):
        if kind == NLMSG_DONE:
            return names, True
        if kind == RTM_NEWLINK and name is not None:
            names.append(name)
    return names, False


def encode_dump(seq: int) -> bytes:
    """``RTM_GETLINK`` of every link, without their statistics (``IFLA_EXT_MASK``)."""
    body = IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    body += attr(IFLA_EXT_MASK, struct.pack("=I", RTEXT_FILTER_SKIP_STATS))
    return nlmsg(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq, body)


def _links(data: bytes) -> Iterator[tuple[int, str | None]]:
    """(message type, ``IFLA_IFNAME`` for a link message) of each message in ``data``."""
    try:
        for frame in frames(data):
            if frame.kind in {RTM_NEWLINK, RTM_DELLINK}:
                yield frame.kind, _ifname(data, frame)
            elif frame.kind == NLMSG_ERROR:
                code = error_code(data, frame)
                if code:
                    raise LinkWatchDecodeError(
                        f"NLMSG_ERROR at offset {frame.offset}: {os.strerror(code)} ({code})"
                    )
            else:
                yield frame.kind, None
    except NetlinkDecodeError as exc:
        raise LinkWatchDecodeError(str(exc)) from exc


def _ifname(data: bytes, frame: Frame) -> str | None:
    """``IFLA_IFNAME`` of the link message ``frame`` (None without one)."""
    start = frame.body + IFINFO.size
    if start > frame.end:
        raise LinkWatchDecodeError(
            f"link message at offset {frame.offset}: shorter than its ifinfomsg"
        )
    raw = find_attribute(data, start, frame.end, IFLA_IFNAME)
    return None if raw is None else raw.split(b"\0", 1)[0].decode("ascii", "replace")


def list_links(netns: str | None, timeout: float = 10.0) -> set[str] | None:
    """The names of every link in ``netns`` (one dump, names only: no pyroute2 parse of every
    attribute, no lock other netlink users wait on); None when the namespace is gone."""

    def make() -> socket.socket:
        sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
        )
        sock.settimeout(timeout)
        return sock

    try:
        sock = netns_mod.call_in_netns(netns, make)
    except netns_mod.NetnsError:
        if netns is not None and not netns_mod.exists(netns):
            return None
        raise
    except OSError as exc:
        raise RuntimeFailure(f"links of {netns_mod.describe(netns)}: {exc}") from exc
    names: set[str] = set()
    try:
        sock.send(encode_dump(1))
        while True:
            part, done = dumped_links(sock.recv(1 << 20))
            names.update(part)
            if done:
                return names
    except OSError as exc:
        raise RuntimeFailure(f"links of {netns_mod.describe(netns)}: {exc}") from exc
    finally:
        sock.close()


class LinkWatch:
    """The link announcements of one network namespace (``None``: the daemon's), queued by
    the kernel between two :meth:`drain` calls."""

    def __init__(self, netns: str | None) -> None:
        self.netns = netns

        def make() -> socket.socket:
            sock = socket.socket(
                socket.AF_NETLINK,
                socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                socket.NETLINK_ROUTE,
            )
            try:
                size_buffers(sock, receive=QUEUE_BYTES)
                sock.bind((0, RTMGRP_LINK))
            except BaseException:
                sock.close()
                raise
            return sock

        try:
            self._sock = netns_mod.call_in_netns(netns, make)
        except (OSError, netns_mod.NetnsError) as exc:
            raise RuntimeFailure(
                f"link announcements of {netns_mod.describe(netns)}: {exc}"
            ) from exc

    def drain(self) -> set[str] | None:
        """The names of the links deleted since the last call; None when the kernel dropped
        announcements (its queue overflowed): any link may have gone."""
        names: set[str] = set()
        overflowed = False
        while True:
            try:
                data = self._sock.recv(1 << 20)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    overflowed = True
                    continue
                raise RuntimeFailure(
                    f"link announcements of {netns_mod.describe(self.netns)}: {exc}"
                ) from exc
            names.update(deleted_links(data))
        return None if overflowed else names

    def close(self) -> None:
        self._sock.close()
