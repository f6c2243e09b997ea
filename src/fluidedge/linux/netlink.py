"""Netlink's framing, shared by every netlink codec of fluidedge: messages and attributes.

Why one module: rtnetlink (addresses, routes, links, neighbours, link statistics, link
announcements), sock_diag and nfnetlink all frame their messages the same way, and each codec
that walked the frames itself checked them differently (one read a message's length past the
end of a receive, another an error code past the end of its message). Here the walk is done
once, with every length checked and every error naming the offset where decoding failed; the
codecs only read their own payloads.

Sans-I/O: bytes in, frames out. The layouts (netlink(7), include/uapi/linux/netlink.h):

============================  =======================================================
``struct nlmsghdr``           ``=IHHII``: length (header included), type, flags, sequence,
                              port id; each message starts at a multiple of 4 (NLMSG_ALIGN)
``struct nlmsgerr``           ``=i`` then the request's header: the negated errno, 0 for an ack
``struct nlattr`` / rtattr    ``=HH``: length (header included), type; the value follows,
                              padded to 4 bytes (NLA_ALIGN); the type's top two bits are the
                              nested and byte-order flags (NLA_TYPE_MASK clears them)
============================  =======================================================
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

__all__ = [
    "NLATTR",
    "NLA_TYPE_MASK",
    "NLMSG_DONE",
    "NLMSG_ERROR",
    "NLMSG_HDR",
    "NLM_F_ACK",
    "NLM_F_CREATE",
    "NLM_F_DUMP",
    "NLM_F_EXCL",
    "NLM_F_REQUEST",
    "Frame",
    "NetlinkDecodeError",
    "attr",
    "attributes",
    "error_code",
    "find_attribute",
    "frames",
    "nlmsg",
]

NLMSG_HDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
NLATTR = struct.Struct("=HH")  # len, type
_ERRNO = struct.Struct("=i")

# Message types every netlink family shares (netlink(7))
NLMSG_ERROR = 2
NLMSG_DONE = 3
# Request flags
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLA_TYPE_MASK = 0x3FFF  # ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER)


class NetlinkDecodeError(ValueError):
    """Bytes that are not well-framed netlink: a length that does not fit, a message too
    short for what its type carries, bytes left over. The message names the offset."""


class Frame(NamedTuple):
    """One message of a receive: its header's fields and where its payload lies in the
    receive's bytes (``data[body:end]``), so that codecs read it without copying. Immutable;
    a named tuple rather than a frozen dataclass because the execute phase decodes one per
    netlink call, and a tuple is made in a quarter of the time."""

    kind: int
    flags: int
    seq: int
    offset: int  # of the header
    body: int
    end: int


def _align(length: int) -> int:
    return (length + 3) & ~3


def nlmsg(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    """A message of type ``kind`` carrying ``body`` (port id 0: to the kernel)."""
    return NLMSG_HDR.pack(NLMSG_HDR.size + len(body), kind, flags, seq, 0) + body


def attr(kind: int, value: bytes) -> bytes:
    """An attribute carrying ``value``, padded to 4 bytes."""
    length = NLATTR.size + len(value)
    return NLATTR.pack(length, kind) + value + b"\0" * (_align(length) - length)


def frames(data: bytes) -> Iterator[Frame]:
    """The messages of one receive, in order. Raises :class:`NetlinkDecodeError` for a length
    that is shorter than a header or runs past the data, and for bytes left after the last
    message (a receive the kernel truncated looks like that)."""
    offset = 0
    size = len(data)
    while offset + NLMSG_HDR.size <= size:
        length, kind, flags, seq, _pid = NLMSG_HDR.unpack_from(data, offset)
        if length < NLMSG_HDR.size or offset + length > size:
            raise NetlinkDecodeError(
                f"netlink message at offset {offset}: length {length} does not fit "
                f"the {size - offset} bytes left"
            )
        yield Frame(kind, flags, seq, offset, offset + NLMSG_HDR.size, offset + length)
        offset += _align(length)
    if offset < size:
        raise NetlinkDecodeError(
            f"netlink data: {size - offset} trailing byte(s) at offset {offset}"
        )


def error_code(data: bytes, frame: Frame) -> int:
    """The errno an ``NLMSG_ERROR`` message carries (0: an acknowledgement)."""
    if frame.end - frame.body < _ERRNO.size:
        raise NetlinkDecodeError(f"NLMSG_ERROR at offset {frame.offset}: no error code")
    code: int = _ERRNO.unpack_from(data, frame.body)[0]
    return -code


def attributes(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """``(type, value start, value end)`` of each attribute in ``data[start:end]``, the type
    without its flag bits. Raises :class:`NetlinkDecodeError` for a length that does not fit;
    fewer than an attribute header's bytes at the end are the message's padding."""
    offset = start
    while offset + NLATTR.size <= end:
        length, kind = NLATTR.unpack_from(data, offset)
        if length < NLATTR.size or offset + length > end:
            raise NetlinkDecodeError(
                f"netlink attribute at offset {offset}: length {length} does not fit "
                f"the {end - offset} bytes left of its message"
            )
        yield kind & NLA_TYPE_MASK, offset + NLATTR.size, offset + length
        offset += _align(length)


def find_attribute(data: bytes, start: int, end: int, wanted: int) -> bytes | None:
    """The value of the first attribute of type ``wanted`` in ``data[start:end]`` (None
    without one); raises as :func:`attributes` does for what it walks past."""
    for kind, value_start, value_end in attributes(data, start, end):
        if kind == wanted:
            return data[value_start:value_end]
    return None
