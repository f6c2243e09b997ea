"""Rewrite the inner packet's addresses and ports in place, with RFC 1624 checksum updates.

Which checksums an edit touches:

============  =====================  ======================================
edit          IPv4                   IPv6
============  =====================  ======================================
address       header checksum;       TCP/UDP/ICMPv6 (pseudo-header,
              TCP/UDP (pseudo-hdr);  RFC 8200 §8.1); no IP header checksum
              not ICMP (RFC 792)
port / id     TCP/UDP; ICMP echo id  TCP/UDP; ICMPv6 echo id
============  =====================  ======================================

A UDP checksum of 0 over IPv4 means "no checksum" and stays 0; an updated UDP checksum that
comes out 0 is sent as 0xFFFF (RFC 768). In a non-first fragment there is no transport header,
so only addresses can change (the transport checksum, which covers the whole datagram, lives in
the first fragment and is fixed there). The return value is the one's-complement delta of every
byte changed, so the *outer* UDP checksum over the G-PDU can be patched in O(1) too.

An ICMP error quotes the packet that caused it, and that quote carries the addresses the
sender saw. A NAT must translate them too, or the receiver cannot match the error to its
socket (RFC 5508 §7, REQ-4). :func:`rewrite_icmp_error` does that. It rewrites the quoted
addresses and fixes the quoted IPv4 header checksum. It fixes the quoted TCP/UDP checksum when
the quote holds it. It then patches the ICMP checksum with the delta of every byte changed.
"""

from __future__ import annotations

from fluidedge.codec.errors import MalformedError, UnsupportedError
from fluidedge.codec.net import checksum as ck
from fluidedge.codec.net import inner as inner_mod

_ADDR = {4: (12, 16, 4), 6: (8, 24, 16)}  # source offset, destination offset, size
# Error types that quote the offending packet: RFC 792 (3, 4, 5, 11, 12) and RFC 4443 §3 (1-4).
ICMP_ERROR_TYPES = {inner_mod.PROTO_ICMP: frozenset({3, 4, 5, 11, 12}),
                    inner_mod.PROTO_ICMPV6: frozenset({1, 2, 3, 4})}  # fmt: skip


def rewrite(
    buf: bytearray,
    offset: int = 0,
    end: int | None = None,
    *,
    source: bytes | None = None,
    destination: bytes | None = None,
    source_port: int | None = None,
    destination_port: int | None = None,
    icmp_id: int | None = None,
) -> int:
    """Rewrite the IP packet at ``buf[offset:end]``; return the delta of all bytes changed."""
    pkt = inner_mod.decode(buf, offset, end)
    src_off, dst_off, size = _ADDR[pkt.version]
    for name, value in (("source", source), ("destination", destination)):
        if value is not None and len(value) != size:
            raise MalformedError(
                f"inner IPv{pkt.version}", offset, f"{name} must be {size} bytes for NAT"
            )
    proto = pkt.protocol
    has_l4 = pkt.source_port is not None or pkt.icmp_type is not None
    if (source_port is not None or destination_port is not None) and pkt.source_port is None:
        raise UnsupportedError(
            "inner IP", pkt.l4_offset, f"no ports to rewrite (protocol {proto}, or a fragment)"
        )
    if icmp_id is not None and pkt.icmp_id is None:
        raise UnsupportedError("inner IP", pkt.l4_offset, "not an ICMP echo: no id to rewrite")
    sport_raw = None if source_port is None else _port(source_port)
    dport_raw = None if destination_port is None else _port(destination_port)
    id_raw = None if icmp_id is None else _port(icmp_id)
    # Everything is validated: from here on the buffer is edited.
    addr_delta = 0
    for field_off, value in ((src_off, source), (dst_off, destination)):
        if value is not None:
            addr_delta = ck.add_delta(addr_delta, _put(buf, offset + field_off, value))
    total = addr_delta
    if pkt.version == 4 and addr_delta:
        total = ck.add_delta(total, patch_checksum(buf, offset + 10, addr_delta))
    if not has_l4:
        return total
    l4 = pkt.l4_offset
    port_delta = 0
    if sport_raw is not None:
        port_delta = ck.add_delta(port_delta, _put(buf, l4, sport_raw))
    if dport_raw is not None:
        port_delta = ck.add_delta(port_delta, _put(buf, l4 + 2, dport_raw))
    if id_raw is not None:
        port_delta = ck.add_delta(port_delta, _put(buf, l4 + 4, id_raw))
    total = ck.add_delta(total, port_delta)
    # ICMP for IPv4 has no pseudo-header (RFC 792): address changes do not touch it.
    l4_delta = port_delta if proto == inner_mod.PROTO_ICMP else ck.add_delta(port_delta, addr_delta)
    if l4_delta:
        at = l4 + inner_mod.CHECKSUM_OFFSET[proto]
        total = ck.add_delta(
            total, patch_checksum(buf, at, l4_delta, zero_means_none=proto == inner_mod.PROTO_UDP)
        )
    return total


def patch_checksum(buf: bytearray, at: int, d: int, *, zero_means_none: bool = False) -> int:
    """Apply delta ``d`` to the 16-bit checksum at ``at``; return that field's own delta.

    With ``zero_means_none`` (UDP) a 0 checksum is left alone and a result of 0 becomes 0xFFFF.
    """
    old = (buf[at] << 8) | buf[at + 1]
    if zero_means_none and old == 0:
        return 0
    new = ck.apply_delta(old, d)
    if zero_means_none and new == 0:
        new = 0xFFFF
    buf[at] = new >> 8
    buf[at + 1] = new & 0xFF
    return ck.add_delta(~old & 0xFFFF, new)


def _port(value: int) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise MalformedError("inner transport", 0, f"port/id {value} out of range")
    return value.to_bytes(2, "big")


def _put(buf: bytearray, at: int, value: bytes) -> int:
    """Overwrite ``buf[at:at+len(value)]`` and return the region's delta."""
    old = bytes(buf[at : at + len(value)])
    buf[at : at + len(value)] = value
    return ck.delta(old, value)


def is_icmp_error(pkt: inner_mod.InnerPacket) -> bool:
    """True if ``pkt`` is an ICMP or ICMPv6 error message (one that quotes a packet)."""
    types = ICMP_ERROR_TYPES.get(pkt.protocol)
    return types is not None and pkt.icmp_type in types and not pkt.fragment


def rewrite_icmp_error(
    buf: bytearray,
    offset: int = 0,
    end: int | None = None,
    *,
    quoted_source: tuple[bytes, bytes] | None = None,
    quoted_destination: tuple[bytes, bytes] | None = None,
) -> int:
    """Translate the packet quoted by the ICMP error at ``buf[offset:end]``; return the delta.

    ``quoted_source``/``quoted_destination`` are ``(old, new)`` pairs: an address is rewritten
    only if the quote holds ``old`` there. A packet that is not an ICMP error, or whose quote
    is too short to hold an IP header, is left unchanged (delta 0).
    """
    pkt = inner_mod.decode(buf, offset, end)
    if not is_icmp_error(pkt):
        return 0
    quote = pkt.l4_offset + 8
    stop = pkt.end
    if stop - quote < 20 or buf[quote] >> 4 != pkt.version:
        return 0
    src_off, dst_off, size = _ADDR[pkt.version]
    if pkt.version == 4:
        header = (buf[quote] & 0x0F) * 4
        proto = buf[quote + 9]
        fragment = bool(((buf[quote + 6] & 0x1F) << 8) | buf[quote + 7])
    else:
        header, proto, fragment = 40, buf[quote + 6], False
    if stop - quote < header:  # 20 bytes are already known to be there
        return 0
    addr_delta = 0
    for field_off, change in ((src_off, quoted_source), (dst_off, quoted_destination)):
        if change is None:
            continue
        old, new = change
        at = quote + field_off
        if len(old) == size == len(new) and bytes(buf[at : at + size]) == old:
            addr_delta = ck.add_delta(addr_delta, _put(buf, at, new))
    if not addr_delta:
        return 0
    changed = addr_delta
    if pkt.version == 4:
        changed = ck.add_delta(changed, patch_checksum(buf, quote + 10, addr_delta))
    if not fragment and proto in (inner_mod.PROTO_TCP, inner_mod.PROTO_UDP):
        at = quote + header + inner_mod.CHECKSUM_OFFSET[proto]
        if at + 2 <= stop:  # the quote may stop before the transport checksum
            zero = proto == inner_mod.PROTO_UDP and pkt.version == 4
            delta = patch_checksum(buf, at, addr_delta, zero_means_none=zero)
            changed = ck.add_delta(changed, delta)
    # The ICMP checksum covers the whole message, quote included.
    icmp_delta = patch_checksum(buf, pkt.l4_offset + 2, changed)
    return ck.add_delta(changed, icmp_delta)
