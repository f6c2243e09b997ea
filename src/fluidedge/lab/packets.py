"""Packet helpers for the lab: read/write pcap files and dissect S1 frames into the GTP-U facts
tests check (TEIDs, message types, QFI, inner addresses).

Frames are built and captures parsed by the project's codec (:mod:`fluidedge.codec`: ``net``,
``stack``, ``pcap``, ``gtpu``), so captures are checked with the same code the TOF uses.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from fluidedge.codec import pcap
from fluidedge.codec.errors import CodecError, TruncatedError
from fluidedge.codec.gtpu import GTPU_PORT, ErrorIndication, GPdu, MessageType, decode
from fluidedge.codec.net.ethernet import ETHERTYPE_IPV4
from fluidedge.codec.net.ipv4 import PROTO_TCP, PROTO_UDP

# --- pcap files (the codec's format, sans-I/O; these two only read and write the file) -----


def write_pcap(path: Path, frames: Iterable[bytes]) -> int:
    """Write ``frames`` as an Ethernet pcap (:func:`fluidedge.codec.pcap.build`); returns how
    many were written."""
    frames = list(frames)
    path.write_bytes(pcap.build(frames))
    return len(frames)


def read_pcap(path: Path) -> Iterator[tuple[float, bytes]]:
    """``(timestamp, frame)`` of every record of a pcap or pcapng file
    (:func:`fluidedge.codec.pcap.read_packets`). A capture still being written ends at its
    last whole record."""
    try:
        for record in pcap.read_packets(path.read_bytes()):
            yield record.timestamp_ns / 1e9, bytes(record.data)
    except TruncatedError:
        return


# --- dissecting what crossed S1 ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class S1Frame:
    """One frame seen on the S1 segment, as much as tests need of it."""

    ethertype: int
    src: IPv4Address | None = None
    dst: IPv4Address | None = None
    proto: int | None = None
    sport: int | None = None
    dport: int | None = None
    gtp_type: int | None = None  # GTP-U message type when UDP 2152 decodes
    teid: int | None = None
    qfi: int | None = None
    inner_src: IPv4Address | IPv6Address | None = None  # the tunnelled packet's addresses
    inner_dst: IPv4Address | IPv6Address | None = None
    error_teid: int | None = None  # TEID Data I of an Error Indication

    @property
    def is_gpdu(self) -> bool:
        return self.gtp_type == MessageType.G_PDU


def dissect(frame: bytes) -> S1Frame:
    """Ethernet -> IPv4 -> UDP 2152 -> GTP-U (via the codec) -> inner IPv4 addresses."""
    if len(frame) < 14:
        return S1Frame(ethertype=-1)
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    if ethertype != ETHERTYPE_IPV4 or len(frame) < 34:
        return S1Frame(ethertype=ethertype)
    ihl = (frame[14] & 0x0F) * 4
    proto = frame[23]
    src = IPv4Address(frame[26:30])
    dst = IPv4Address(frame[30:34])
    l4 = 14 + ihl
    if proto not in (PROTO_UDP, PROTO_TCP) or len(frame) < l4 + 8:
        return S1Frame(ethertype, src, dst, proto)
    sport, dport = struct.unpack_from("!HH", frame, l4)
    base = S1Frame(ethertype, src, dst, proto, sport, dport)
    if proto != PROTO_UDP or GTPU_PORT not in (sport, dport):
        return base
    try:
        msg = decode(frame, l4 + 8)
    except CodecError:
        return base
    inner_src: IPv4Address | IPv6Address | None = None
    inner_dst: IPv4Address | IPv6Address | None = None
    error_teid = None
    if isinstance(msg, GPdu):
        payload = bytes(msg.payload)
        if len(payload) >= 20 and payload[0] >> 4 == 4:
            inner_src, inner_dst = IPv4Address(payload[12:16]), IPv4Address(payload[16:20])
        elif len(payload) >= 40 and payload[0] >> 4 == 6:
            inner_src, inner_dst = IPv6Address(payload[8:24]), IPv6Address(payload[24:40])
    elif isinstance(msg, ErrorIndication):
        error_teid = msg.teid_data_i
    return S1Frame(
        ethertype,
        src,
        dst,
        proto,
        sport,
        dport,
        gtp_type=msg.header.message_type,
        teid=msg.header.teid,
        qfi=msg.header.qfi,
        inner_src=inner_src,
        inner_dst=inner_dst,
        error_teid=error_teid,
    )


def dissect_pcap(path: Path) -> list[S1Frame]:
    return [dissect(frame) for _, frame in read_pcap(path)]
