"""Test helpers: build inner packets with correct checksums by FULL computation, and check
that a packet's checksums are what a full recomputation gives."""

from __future__ import annotations

import struct

from fluidedge.codec.net import checksum as ck
from fluidedge.codec.net import ipv4, ipv6

TCP, UDP, ICMP, ICMPV6 = 6, 17, 1, 58


def segment(  # noqa: PLR0917 - mirrors the packet fields in wire order
    version: int,
    proto: int,
    src: bytes,
    dst: bytes,
    sport: int,
    dport: int,
    payload: bytes,
    *,
    udp_zero: bool = False,
) -> bytes:
    """A transport segment with its checksum computed over everything (RFC 1071)."""
    if proto == TCP:
        seg = bytearray(struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 0x50, 0x18, 512, 0, 0))
    elif proto == UDP:
        seg = bytearray(struct.pack("!HHHH", sport, dport, 8 + len(payload), 0))
    else:  # ICMP / ICMPv6 echo request; sport is the identifier
        seg = bytearray(struct.pack("!BBHHH", 8 if proto == ICMP else 128, 0, 0, sport, 1))
    seg += payload
    struct.pack_into("!H", seg, csum_offset(proto), expected_checksum(proto, src, dst, seg))
    if proto == UDP and udp_zero:
        struct.pack_into("!H", seg, 6, 0)
    return bytes(seg)


def csum_offset(proto: int) -> int:
    return {TCP: 16, UDP: 6, ICMP: 2, ICMPV6: 2}[proto]


def expected_checksum(proto: int, src: bytes, dst: bytes, seg: bytes | bytearray) -> int:
    """Full recomputation of the transport checksum (checksum field treated as zero)."""
    off = csum_offset(proto)
    zeroed = bytes(seg[:off]) + b"\x00\x00" + bytes(seg[off + 2 :])
    if proto == ICMP:
        return ck.checksum(zeroed)
    value = ck.transport_checksum(src, dst, proto, zeroed)
    return value or (0xFFFF if proto == UDP else 0)


def packet(  # noqa: PLR0917 - mirrors the packet fields in wire order
    version: int,
    proto: int,
    src: bytes,
    dst: bytes,
    sport: int,
    dport: int,
    payload: bytes,
    *,
    udp_zero: bool = False,
) -> bytes:
    seg = segment(version, proto, src, dst, sport, dport, payload, udp_zero=udp_zero)
    if version == 4:
        return ipv4.encode(src, dst, proto, seg, identification=7)
    return ipv6.encode(src, dst, proto, seg)


def checksums_ok(pkt: bytes | bytearray, offset: int = 0) -> tuple[bool, bool]:
    """(IP header checksum ok, transport checksum == full recomputation) for a packet."""
    version = pkt[offset] >> 4
    if version == 4:
        hlen = (pkt[offset] & 15) * 4
        total = struct.unpack_from("!H", pkt, offset + 2)[0]
        proto = pkt[offset + 9]
        src, dst = bytes(pkt[offset + 12 : offset + 16]), bytes(pkt[offset + 16 : offset + 20])
        head_ok = ck.checksum(pkt[offset : offset + hlen]) == 0
        seg = bytes(pkt[offset + hlen : offset + total])
    else:
        plen = struct.unpack_from("!H", pkt, offset + 4)[0]
        proto = pkt[offset + 6]
        src, dst = bytes(pkt[offset + 8 : offset + 24]), bytes(pkt[offset + 24 : offset + 40])
        head_ok = True
        seg = bytes(pkt[offset + 40 : offset + 40 + plen])
    off = csum_offset(proto)
    have = struct.unpack_from("!H", seg, off)[0]
    if proto == UDP and have == 0 and version == 4:
        return head_ok, True
    return head_ok, have == expected_checksum(proto, src, dst, seg)
