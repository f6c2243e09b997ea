"""The user's packet inside a G-PDU: IPv4 or IPv6 and its 5-tuple.

What the TOF matches on is the 5-tuple: addresses, protocol (after any IPv6 extension chain),
TCP/UDP ports, or for ICMP/ICMPv6 the type and, for echo messages, the identifier (the "port"
that NAT and conntrack use for pings). A non-first fragment has no transport header: its ports
are ``None`` and it is flagged as a fragment.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from fluidedge.codec.errors import CodecError, MalformedError, TruncatedError
from fluidedge.codec.fields import Field, Layout
from fluidedge.codec.net import ipv4, ipv6

Buffer = bytes | bytearray | memoryview

TCP = Layout(
    "TCP",
    "RFC 9293 §3.1",
    (
        Field("source_port", "H", "RFC 9293 §3.1"),
        Field("destination_port", "H", "RFC 9293 §3.1"),
        Field("sequence", "I", "RFC 9293 §3.1"),
        Field("acknowledgment", "I", "RFC 9293 §3.1"),
        Field("offset_flags", "H", "RFC 9293 §3.1", "data offset(4) reserved(4) flags(8)"),
        Field("window", "H", "RFC 9293 §3.1"),
        Field("checksum", "H", "RFC 9293 §3.1", "with the IPv4/IPv6 pseudo-header"),
        Field("urgent_pointer", "H", "RFC 9293 §3.1"),
    ),
)
ICMP = Layout(
    "ICMP",
    "RFC 792 (echo: p. 14); RFC 4443 §2.1, §4.1-4.2 for ICMPv6",
    (
        Field("type", "B", "RFC 792 / RFC 4443 §2.1"),
        Field("code", "B", "RFC 792 / RFC 4443 §2.1"),
        Field("checksum", "H", "RFC 792 (no pseudo-header) / RFC 4443 §2.3 (pseudo-header)"),
        Field("identifier", "H", "RFC 792 / RFC 4443 §4.1", "echo request/reply only"),
        Field("sequence", "H", "RFC 792 / RFC 4443 §4.1", "echo request/reply only"),
    ),
)

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58
#: Echo request/reply types, whose identifier acts as a port.
ICMP_ECHO_TYPES = frozenset({0, 8})
ICMPV6_ECHO_TYPES = frozenset({128, 129})
#: Smallest transport header we accept for each protocol (what NAT needs to reach the checksum).
MIN_L4 = {PROTO_TCP: 20, PROTO_UDP: 8, PROTO_ICMP: 4, PROTO_ICMPV6: 4}
L4_NAMES = {PROTO_TCP: "TCP", PROTO_UDP: "UDP", PROTO_ICMP: "ICMP", PROTO_ICMPV6: "ICMPv6"}
#: Offset of the checksum field inside each transport header.
CHECKSUM_OFFSET = {PROTO_TCP: 16, PROTO_UDP: 6, PROTO_ICMP: 2, PROTO_ICMPV6: 2}

_PORTS = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class InnerPacket:
    """The inner packet's 5-tuple and where its parts are (absolute offsets in the buffer)."""

    version: int
    source: bytes
    destination: bytes
    protocol: int
    offset: int  # start of the inner IP header
    l4_offset: int  # start of the transport header (or fragment data)
    end: int  # end of the inner packet per its own length field
    fragment: bool
    source_port: int | None
    destination_port: int | None
    icmp_type: int | None
    icmp_code: int | None
    icmp_id: int | None

    @property
    def five_tuple(self) -> tuple[bytes, bytes, int, int | None, int | None]:
        return (
            self.source,
            self.destination,
            self.protocol,
            self.source_port,
            self.destination_port,
        )


def decode(buf: Buffer, offset: int = 0, end: int | None = None) -> InnerPacket:
    """Decode the inner IP packet at ``offset``; ``end`` is where the G-PDU payload ends."""
    if end is None:
        end = len(buf)
    if offset < 0 or end > len(buf):
        raise MalformedError("inner IP", offset, f"offset {offset} / end {end} outside the buffer")
    if end <= offset:
        raise TruncatedError("inner IP", offset, "empty payload")
    version = buf[offset] >> 4
    view = memoryview(buf)[:end] if end < len(buf) else buf
    if version == 4:
        h4 = _decode_ipv4(view, offset)
        frag = h4.is_fragment
        proto = h4.protocol
        l4 = offset + h4.header_size
        pkt_end = offset + h4.total_length
        first = h4.fragment_offset == 0
        src, dst = h4.source, h4.destination
    elif version == 6:
        h6 = _decode_ipv6(view, offset)
        frag = h6.is_fragment
        proto = h6.upper_protocol
        l4 = h6.upper_offset
        pkt_end = offset + h6.total_length
        first = h6.fragment is None or h6.fragment.offset == 0
        src, dst = h6.source, h6.destination
    else:
        raise MalformedError("inner IP", offset, f"version nibble {version}: not IPv4 or IPv6")
    sport = dport = itype = icode = iid = None
    # ICMP belongs to IPv4 and ICMPv6 to IPv6; the other pairing is just an unknown protocol.
    known = proto in MIN_L4 and proto != (PROTO_ICMPV6 if version == 4 else PROTO_ICMP)
    if first and known:
        need = MIN_L4[proto]
        if pkt_end - l4 < need:
            raise TruncatedError(
                f"inner {L4_NAMES[proto]}", l4, f"need {need} bytes, have {pkt_end - l4}"
            )
        if proto in (PROTO_TCP, PROTO_UDP):
            sport, dport = _PORTS.unpack_from(buf, l4)
        else:
            itype = buf[l4]
            icode = buf[l4 + 1]
            echo = ICMP_ECHO_TYPES if proto == PROTO_ICMP else ICMPV6_ECHO_TYPES
            if itype in echo:
                if pkt_end - l4 < 8:
                    raise TruncatedError(
                        f"inner {L4_NAMES[proto]}", l4, f"echo needs 8 bytes, have {pkt_end - l4}"
                    )
                iid = (buf[l4 + 4] << 8) | buf[l4 + 5]
    return InnerPacket(
        version, src, dst, proto, offset, l4, pkt_end, frag, sport, dport, itype, icode, iid
    )


def _decode_ipv4(buf: Buffer, offset: int) -> ipv4.IPv4Header:
    try:
        return ipv4.decode(buf, offset)
    except CodecError as exc:
        raise type(exc)("inner " + exc.header, exc.offset, exc.reason) from None


def _decode_ipv6(buf: Buffer, offset: int) -> ipv6.IPv6Header:
    try:
        return ipv6.decode(buf, offset)
    except CodecError as exc:
        raise type(exc)("inner " + exc.header, exc.offset, exc.reason) from None
