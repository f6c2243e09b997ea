"""UDP header (RFC 768): decode against the IP payload, encode with the pseudo-header checksum.

Checksum rules (what the TOF must produce): over IPv4 a checksum of 0 means "none" and is
allowed (RFC 768); over IPv6 it is mandatory (RFC 8200 §8.1; RFC 6935/6936's zero-checksum
exception for tunnels is not used). A computed checksum of 0 is sent as 0xFFFF (RFC 768).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from fluidedge.codec.errors import MalformedError, TruncatedError
from fluidedge.codec.fields import Field, Layout
from fluidedge.codec.net.checksum import transport_checksum

Buffer = bytes | bytearray | memoryview

UDP = Layout(
    "UDP",
    "RFC 768",
    (
        Field("source_port", "H", "RFC 768"),
        Field("destination_port", "H", "RFC 768"),
        Field("length", "H", "RFC 768", "header + data, octets, >= 8"),
        Field("checksum", "H", "RFC 768; RFC 8200 §8.1", "0 = none (IPv4 only)"),
    ),
)
PROTO_UDP = 17
_HEADER = UDP.struct


@dataclass(frozen=True, slots=True)
class UdpHeader:
    source_port: int
    destination_port: int
    length: int
    checksum: int

    header_size = 8

    @property
    def payload_length(self) -> int:
        return self.length - 8


def decode(buf: Buffer, offset: int = 0, end: int | None = None) -> UdpHeader:
    """Decode the UDP header at ``offset``; ``end`` is where the IP payload ends.

    The UDP length must be at least 8 and fit before ``end``; octets between the UDP length and
    ``end`` are ignored (RFC 768 leaves them undefined; Linux trims them).
    """
    if end is None:
        end = len(buf)
    if offset < 0 or end > len(buf):
        raise MalformedError("UDP", offset, f"offset {offset} / end {end} outside the buffer")
    if end - offset < 8:
        raise TruncatedError("UDP", offset, f"need 8 bytes, have {max(end - offset, 0)}")
    sport, dport, length, csum = _HEADER.unpack_from(buf, offset)
    if length < 8:
        raise MalformedError("UDP", offset + 4, f"length {length} < 8")
    if offset + length > end:
        raise TruncatedError(
            "UDP", offset + 4, f"length {length}, only {end - offset} bytes of IP payload"
        )
    return UdpHeader(sport, dport, length, csum)


def encode(
    source: bytes,
    destination: bytes,
    source_port: int,
    destination_port: int,
    payload: Buffer = b"",
    *,
    with_checksum: bool = True,
) -> bytes:
    """Build a UDP datagram for the IP ``source``/``destination`` (4 or 16 bytes each).

    ``with_checksum=False`` sends checksum 0, allowed only over IPv4.
    """
    length = 8 + len(payload)
    if length > 0xFFFF:
        raise MalformedError("UDP", 4, f"length {length} > 65535")
    if len(source) != len(destination) or len(source) not in (4, 16):
        raise MalformedError("UDP", 0, "pseudo-header addresses must both be IPv4 or IPv6")
    if not with_checksum and len(source) == 16:
        raise MalformedError("UDP", 6, "the UDP checksum is mandatory over IPv6 (RFC 8200 §8.1)")
    try:
        head = _HEADER.pack(source_port, destination_port, length, 0)
    except struct.error as exc:
        raise MalformedError("UDP", 0, f"port out of range: {exc}") from None
    datagram = bytearray(head)
    datagram += payload
    if with_checksum:
        csum = transport_checksum(source, destination, PROTO_UDP, datagram) or 0xFFFF
        struct.pack_into("!H", datagram, 6, csum)
    return bytes(datagram)


def checksum_ok(source: bytes, destination: bytes, datagram: Buffer) -> bool:
    """True if the datagram's checksum verifies (or is 0 over IPv4, meaning none)."""
    if len(datagram) >= 8 and datagram[6] == 0 and datagram[7] == 0:
        return len(source) == 4
    return transport_checksum(source, destination, PROTO_UDP, datagram) == 0
