"""Packets out of a capture file: link layer -> IP -> TCP, for the message analyzer.

Reads pcap or pcapng through :mod:`fluidedge.codec.pcap` (a whole file in memory,
:func:`read_capture`) or :mod:`fluidedge.codec.pcapstream` (a file or pipe streamed in
constant memory, :func:`stream_packets`, what ``fluidedge analyze`` uses) and decodes
Ethernet/IPv4/IPv6 with the codec's header decoders; only the TCP header (RFC 9293 §3.1) is
decoded here, because the codec's frame decoder is GTP-U oriented. Link types: Ethernet
(``tcpdump -i lo`` and veths), Linux cooked v1/v2 (``tcpdump -i any``), raw IP and BSD
loopback. Packets that do not decode are counted and skipped: a capture is evidence, and one
odd frame must not hide the rest.
"""

from __future__ import annotations

import ipaddress
import itertools
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from socket import AF_INET, AF_INET6, inet_ntop
from typing import BinaryIO

from fluidedge.codec import pcap
from fluidedge.codec.errors import CodecError
from fluidedge.codec.net import ethernet, ipv4, ipv6
from fluidedge.codec.pcapstream import CaptureReader
from fluidedge.measure.errors import CaptureError

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_RAW_ALT = (12, 14)
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
PROTO_TCP = 6

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_ACK = 0x10
_TCP = struct.Struct("!HHIIBBH")


@dataclass(frozen=True, slots=True)
class IpPacket:
    """One IP packet: when, between whom, which protocol, and its upper-layer bytes."""

    index: int
    timestamp_ns: int
    source: str
    destination: str
    protocol: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class TcpSegment:
    index: int
    timestamp_ns: int
    source: str
    source_port: int
    destination: str
    destination_port: int
    seq: int
    ack: int
    flags: int
    payload: bytes

    @property
    def syn(self) -> bool:
        return bool(self.flags & TCP_SYN)

    @property
    def fin(self) -> bool:
        return bool(self.flags & TCP_FIN)


@dataclass
class Capture:
    packets: list[IpPacket] = field(default_factory=list)
    skipped: int = 0
    linktype: int = LINKTYPE_ETHERNET


def _ip_offset(linktype: int, data: memoryview) -> tuple[int, int] | None:
    """(ethertype-like protocol, offset of the IP header) for one frame, or None if not IP."""
    if linktype == LINKTYPE_ETHERNET:
        header = ethernet.decode(data)
        return header.ethertype, header.header_size
    if linktype == LINKTYPE_LINUX_SLL:
        if len(data) < 16:
            return None
        return struct.unpack_from("!H", data, 14)[0], 16
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(data) < 20:
            return None
        return struct.unpack_from("!H", data, 0)[0], 20
    if linktype == LINKTYPE_RAW or linktype in LINKTYPE_RAW_ALT:
        if not data:
            return None
        return (ETHERTYPE_IPV4 if data[0] >> 4 == 4 else ETHERTYPE_IPV6), 0
    if linktype == LINKTYPE_NULL:
        if len(data) < 4:
            return None
        family = struct.unpack_from("=I", data, 0)[0]
        return (ETHERTYPE_IPV4 if family == 2 else ETHERTYPE_IPV6), 4
    raise CaptureError(f"unsupported link type {linktype} (want Ethernet, Linux cooked or raw IP)")


def _decode_ip(index: int, ts: int, linktype: int, data: memoryview) -> IpPacket | None:
    located = _ip_offset(linktype, data)
    if located is None:
        return None
    ethertype, offset = located
    if ethertype == ETHERTYPE_IPV4:
        h4 = ipv4.decode(data, offset)
        if h4.is_fragment:
            return None
        start, end, proto = offset + h4.header_size, offset + h4.total_length, h4.protocol
        src, dst = str(ipaddress.IPv4Address(h4.source)), str(ipaddress.IPv4Address(h4.destination))
    elif ethertype == ETHERTYPE_IPV6:
        h6 = ipv6.decode(data, offset)
        if h6.is_fragment:
            return None
        start, end, proto = h6.upper_offset, offset + h6.total_length, h6.upper_protocol
        src, dst = str(ipaddress.IPv6Address(h6.source)), str(ipaddress.IPv6Address(h6.destination))
    else:
        return None
    return IpPacket(index, ts, src, dst, proto, bytes(data[start:end]))


def read_capture(data: bytes) -> Capture:
    """Every IP packet of a pcap or pcapng file held in ``data``."""
    try:
        records = pcap.read_packets(data)
        first = next(records, None)
    except CodecError as exc:
        raise CaptureError(f"not a readable capture file: {exc}") from exc
    capture = Capture(linktype=first.linktype if first else pcap.LINKTYPE_ETHERNET)
    if first is None:
        return capture
    try:
        for index, record in enumerate(itertools.chain((first,), records)):
            view = memoryview(record.data)
            try:
                packet = _decode_ip(index, record.timestamp_ns, record.linktype, view)
            except CodecError:
                capture.skipped += 1
                continue
            if packet is None:
                capture.skipped += 1
            else:
                capture.packets.append(packet)
    except CodecError as exc:
        # A capture cut short (tcpdump killed mid-write) keeps what was complete.
        if not capture.packets:
            raise CaptureError(f"capture unreadable: {exc}") from exc
    return capture


@dataclass
class Counts:
    """What :func:`stream_packets` has seen: IP packets yielded, frames skipped (not IP, or
    not decodable), the first record's link type, and the error that ended a damaged capture
    after some packets (``None`` if it ended cleanly)."""

    packets: int = 0
    skipped: int = 0
    linktype: int = LINKTYPE_ETHERNET
    damage: str | None = None


_ETH_IPV4 = struct.Struct("!12xHBxH2xHxB2x4s4s")  # EtherType, ver/IHL, length, frag, proto, addrs
_ADDRESS_TEXT: dict[bytes, str] = {}


def _text4(raw: bytes) -> str:
    text = _ADDRESS_TEXT.get(raw)
    if text is None:
        if len(_ADDRESS_TEXT) >= 1 << 16:
            _ADDRESS_TEXT.clear()
        text = _ADDRESS_TEXT[raw] = inet_ntop(AF_INET, raw)
    return text


def _fast_ip(index: int, ts: int, linktype: int, data: memoryview) -> IpPacket | None:
    """:func:`_decode_ip` for the streaming hot loop: untagged Ethernet + IPv4 without options
    read with one ``struct`` call (the same checks as the codec's decoders), addresses through
    a memo of ``inet_ntop``; anything else through the decoders."""
    if linktype == LINKTYPE_ETHERNET and len(data) >= 34:
        ethertype, vihl, total, frag, proto, src, dst = _ETH_IPV4.unpack_from(data)
        if ethertype == ETHERTYPE_IPV4 and vihl == 0x45 and 20 <= total <= len(data) - 14:
            if frag & 0x3FFF:
                return None
            return IpPacket(
                index, ts, _text4(src), _text4(dst), proto, bytes(data[34 : 14 + total])
            )
    located = _ip_offset(linktype, data)
    if located is None:
        return None
    ethertype, offset = located
    if ethertype == ETHERTYPE_IPV4:
        h4 = ipv4.decode(data, offset)
        if h4.is_fragment:
            return None
        start, end, proto = offset + h4.header_size, offset + h4.total_length, h4.protocol
        src, dst = inet_ntop(AF_INET, h4.source), inet_ntop(AF_INET, h4.destination)
    elif ethertype == ETHERTYPE_IPV6:
        h6 = ipv6.decode(data, offset)
        if h6.is_fragment:
            return None
        start, end, proto = h6.upper_offset, offset + h6.total_length, h6.upper_protocol
        src, dst = inet_ntop(AF_INET6, h6.source), inet_ntop(AF_INET6, h6.destination)
    else:
        return None
    return IpPacket(index, ts, src, dst, proto, bytes(data[start:end]))


def stream_packets(source: BinaryIO, counts: Counts) -> Iterator[IpPacket]:
    """Every IP packet of the pcap or pcapng capture ``source`` streams, in constant memory.

    Like :func:`read_capture`: undecodable frames are counted and skipped, and a capture cut
    short keeps what was complete (``counts.damage`` says where it broke); a stream that is no
    capture at all, or breaks before its first packet, is a :class:`CaptureError`.
    """
    reader = CaptureReader(source)
    index = -1
    try:
        for index, (ts, data, _original, linktype) in enumerate(reader.raw()):
            if index == 0:
                counts.linktype = linktype
            view = data if isinstance(data, memoryview) else memoryview(data)
            try:
                packet = _fast_ip(index, ts, linktype, view)
            except CodecError:
                packet = None
            if packet is None:
                counts.skipped += 1
                continue
            counts.packets += 1
            yield packet
    except CodecError as exc:
        if index < 0:
            raise CaptureError(f"not a readable capture file: {exc}") from exc
        if not counts.packets:
            raise CaptureError(f"capture unreadable: {exc}") from exc
        counts.damage = str(exc)


def tcp_segment(packet: IpPacket) -> TcpSegment | None:
    """The TCP segment in ``packet`` (None if not TCP or truncated)."""
    if packet.protocol != PROTO_TCP or len(packet.payload) < 20:
        return None
    sport, dport, seq, ack, offset_byte, flags, _window = _TCP.unpack_from(packet.payload, 0)
    header = (offset_byte >> 4) * 4
    if header < 20 or header > len(packet.payload):
        return None
    return TcpSegment(
        packet.index,
        packet.timestamp_ns,
        packet.source,
        sport,
        packet.destination,
        dport,
        seq,
        ack,
        flags,
        packet.payload[header:],
    )


def tcp_segments(capture: Capture, port: int | None = None) -> Iterator[TcpSegment]:
    """TCP segments, optionally only those to or from ``port``."""
    for packet in capture.packets:
        segment = tcp_segment(packet)
        if segment is None:
            continue
        if port is None or port in (segment.source_port, segment.destination_port):
            yield segment
