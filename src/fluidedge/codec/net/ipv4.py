"""IPv4 header (RFC 791): decode with options and fragments recognised, encode with checksum.

The decoder does not verify the header checksum (the kernel or NIC already did, and the TOF
passes packets through unchanged); :func:`header_checksum_ok` checks it when a caller wants to.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from fluidedge.codec.errors import MalformedError, TruncatedError
from fluidedge.codec.fields import Field, Layout
from fluidedge.codec.net.checksum import checksum

Buffer = bytes | bytearray | memoryview

IPV4 = Layout(
    "IPv4",
    "RFC 791 §3.1",
    (
        Field("version_ihl", "B", "RFC 791 §3.1", "version(4)=4, IHL(4) in 32-bit words, >= 5"),
        Field("tos", "B", "RFC 791 §3.1; RFC 2474/3168", "DSCP(6) ECN(2)"),
        Field("total_length", "H", "RFC 791 §3.1", "header + data, octets"),
        Field("identification", "H", "RFC 791 §3.1; RFC 6864"),
        Field("flags_fragment", "H", "RFC 791 §3.1", "0(1) DF(1) MF(1) offset(13) in 8 octets"),
        Field("ttl", "B", "RFC 791 §3.1"),
        Field("protocol", "B", "RFC 791 §3.1; IANA protocol numbers"),
        Field("header_checksum", "H", "RFC 791 §3.1; RFC 1071"),
        Field("source", "4s", "RFC 791 §3.1"),
        Field("destination", "4s", "RFC 791 §3.1"),
    ),
)

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58

_FLAG_DF = 0x4000
_FLAG_MF = 0x2000
_OFFSET_MASK = 0x1FFF
_OPT_EOL = 0
_OPT_NOP = 1
_HEADER = IPV4.struct


@dataclass(frozen=True, slots=True)
class IPv4Option:
    """One option (RFC 791 §3.1): its type octet and its data (without type/length octets)."""

    type: int
    data: bytes


@dataclass(frozen=True, slots=True)
class IPv4Header:
    ihl: int
    tos: int
    total_length: int
    identification: int
    dont_fragment: bool
    more_fragments: bool
    fragment_offset: int  # in octets (the field times 8)
    ttl: int
    protocol: int
    header_checksum: int
    source: bytes
    destination: bytes
    options: tuple[IPv4Option, ...]

    @property
    def header_size(self) -> int:
        return self.ihl * 4

    @property
    def payload_length(self) -> int:
        return self.total_length - self.ihl * 4

    @property
    def is_fragment(self) -> bool:
        """True for any piece of a fragmented datagram (first, middle or last)."""
        return self.more_fragments or self.fragment_offset != 0


def decode(buf: Buffer, offset: int = 0) -> IPv4Header:
    """Decode the IPv4 header at ``offset``; its total length must fit in ``buf``.

    Bytes after ``total_length`` (Ethernet padding) are ignored, not an error.
    """
    if offset < 0:
        raise MalformedError("IPv4", offset, "negative offset")
    (vihl, tos, total, ident, frag, ttl, proto, csum, src, dst) = IPV4.unpack(buf, offset)
    if vihl >> 4 != 4:
        raise MalformedError("IPv4", offset, f"version {vihl >> 4}, expected 4")
    ihl = vihl & 0x0F
    if ihl < 5:
        raise MalformedError("IPv4", offset, f"IHL {ihl} < 5")
    hlen = ihl * 4
    if total < hlen:
        raise MalformedError("IPv4", offset + 2, f"total length {total} < header length {hlen}")
    if len(buf) - offset < total:
        raise TruncatedError(
            "IPv4", offset + 2, f"total length {total}, only {len(buf) - offset} bytes"
        )
    # The reserved flag bit is ignored, as Linux does: the TOF passes such packets through.
    options = decode_options(buf, offset + 20, offset + hlen) if ihl > 5 else ()
    return IPv4Header(
        ihl,
        tos,
        total,
        ident,
        bool(frag & _FLAG_DF),
        bool(frag & _FLAG_MF),
        (frag & _OFFSET_MASK) * 8,
        ttl,
        proto,
        csum,
        bytes(src),
        bytes(dst),
        options,
    )


def decode_options(buf: Buffer, start: int, end: int) -> tuple[IPv4Option, ...]:
    """Walk the option list between ``start`` and ``end`` (RFC 791 §3.1, "Options")."""
    options: list[IPv4Option] = []
    pos = start
    while pos < end:
        kind = buf[pos]
        if kind == _OPT_EOL:
            break
        if kind == _OPT_NOP:
            options.append(IPv4Option(kind, b""))
            pos += 1
            continue
        if pos + 1 >= end:
            raise MalformedError("IPv4 option", pos, f"option {kind} has no length octet")
        length = buf[pos + 1]
        if length < 2 or pos + length > end:
            raise MalformedError("IPv4 option", pos + 1, f"option {kind} length {length} is bad")
        options.append(IPv4Option(kind, bytes(buf[pos + 2 : pos + length])))
        pos += length
    return tuple(options)


def encode_options(options: tuple[IPv4Option, ...]) -> bytes:
    """Serialise options and pad with EOL to a multiple of 4 octets."""
    out = bytearray()
    for opt in options:
        if opt.type in (_OPT_EOL, _OPT_NOP):
            out.append(opt.type)
        else:
            if len(opt.data) > 253:
                raise MalformedError("IPv4 option", len(out), "option data too long")
            out += bytes((opt.type, len(opt.data) + 2)) + opt.data
    out += b"\x00" * (-len(out) % 4)
    if len(out) > 40:
        raise MalformedError("IPv4 option", 20, f"{len(out)} octets of options > 40")
    return bytes(out)


def encode(
    source: bytes,
    destination: bytes,
    protocol: int,
    payload: Buffer = b"",
    *,
    ttl: int = 64,
    tos: int = 0,
    identification: int = 0,
    dont_fragment: bool = False,
    more_fragments: bool = False,
    fragment_offset: int = 0,
    options: tuple[IPv4Option, ...] = (),
) -> bytes:
    """Build an IPv4 packet with a correct header checksum."""
    return encode_header(
        source,
        destination,
        protocol,
        len(payload),
        ttl=ttl,
        tos=tos,
        identification=identification,
        dont_fragment=dont_fragment,
        more_fragments=more_fragments,
        fragment_offset=fragment_offset,
        options=options,
    ) + bytes(payload)


def encode_header(
    source: bytes,
    destination: bytes,
    protocol: int,
    payload_length: int,
    *,
    ttl: int = 64,
    tos: int = 0,
    identification: int = 0,
    dont_fragment: bool = False,
    more_fragments: bool = False,
    fragment_offset: int = 0,
    options: tuple[IPv4Option, ...] = (),
) -> bytes:
    """Build just the header (with checksum) for a payload of ``payload_length`` octets."""
    if len(source) != 4 or len(destination) != 4:
        raise MalformedError("IPv4", 12, "IPv4 addresses are 4 bytes")
    if fragment_offset % 8 or not 0 <= fragment_offset <= _OFFSET_MASK * 8:
        raise MalformedError("IPv4", 6, f"fragment offset {fragment_offset} not encodable")
    opts = encode_options(options) if options else b""
    hlen = 20 + len(opts)
    total = hlen + payload_length
    if total > 0xFFFF:
        raise MalformedError("IPv4", 2, f"total length {total} > 65535")
    frag = (
        (_FLAG_DF if dont_fragment else 0)
        | (_FLAG_MF if more_fragments else 0)
        | (fragment_offset // 8)
    )
    try:
        raw = bytearray(
            _HEADER.pack(
                0x40 | (hlen // 4),
                tos,
                total,
                identification,
                frag,
                ttl,
                protocol,
                0,
                source,
                destination,
            )
        )
    except struct.error as exc:
        raise MalformedError("IPv4", 0, f"field out of range: {exc}") from None
    raw += opts
    struct.pack_into("!H", raw, 10, checksum(raw))
    return bytes(raw)


def header_checksum_ok(buf: Buffer, offset: int = 0) -> bool:
    """True if the header at ``offset`` sums to zero (RFC 1071)."""
    hlen = (buf[offset] & 0x0F) * 4
    return checksum(buf[offset : offset + hlen]) == 0
