"""Pure packet helpers for the lab: build Ethernet/IPv4/UDP frames, read/write pcap files, and
dissect S1 frames into the GTP-U facts tests check (TEIDs, message types, QFI, inner addresses).

Frames are built with ``struct`` and the codec's checksums; GTP-U always goes through the
project's codec (:mod:`fluidedge.codec.gtpu`), so captures are checked with the same code the
TOF uses.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from fluidedge.codec.errors import CodecError
from fluidedge.codec.gtpu import GTPU_PORT, ErrorIndication, GPdu, decode
from fluidedge.codec.net.checksum import checksum, transport_checksum

ETH_IPV4 = 0x0800
ETH_ARP = 0x0806
PROTO_TCP = 6
PROTO_UDP = 17
PCAP_MAGIC = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1


def mac_bytes(text: str) -> bytes:
    parts = text.split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(p, 16) for p in parts)


def ipv4(
    src: IPv4Address,
    dst: IPv4Address,
    proto: int,
    payload: bytes,
    ident: int = 0,
    *,
    tos: int = 0,
) -> bytes:
    """An IPv4 packet (no options, DF set, TTL 64) with a correct header checksum."""
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        tos,
        20 + len(payload),
        ident & 0xFFFF,
        0x4000,
        64,
        proto,
        0,
        src.packed,
        dst.packed,
    )
    csum = checksum(header)
    return header[:10] + struct.pack("!H", csum) + header[12:] + payload


def udp(src: IPv4Address, dst: IPv4Address, sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP datagram with its checksum (0 is sent as 0xffff, RFC 768)."""
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    csum = transport_checksum(src.packed, dst.packed, PROTO_UDP, seg) or 0xFFFF
    return seg[:6] + struct.pack("!H", csum) + seg[8:]


def ethernet(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


# --- pcap (classic libpcap format, microsecond timestamps) ------------------------------


def write_pcap(path: Path, frames: Iterable[bytes], *, snaplen: int = 65535) -> int:
    """Write ``frames`` as an Ethernet pcap; returns how many were written."""
    count = 0
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))
        for i, frame in enumerate(frames):
            out.write(struct.pack("<IIII", 0, i, len(frame), len(frame)))
            out.write(frame)
            count += 1
    return count


def read_pcap(path: Path) -> Iterator[tuple[float, bytes]]:
    """``(timestamp, frame)`` of every record of a classic pcap file (either byte order)."""
    data = path.read_bytes()
    if len(data) < 24:
        return
    magic = struct.unpack_from("<I", data)[0]
    order = "<" if magic in (PCAP_MAGIC, 0xA1B23C4D) else ">"
    nano = struct.unpack_from(order + "I", data)[0] == 0xA1B23C4D
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack_from(order + "IIII", data, pos)
        pos += 16
        frame = data[pos : pos + incl]
        pos += incl
        if len(frame) < incl:
            return
        yield sec + frac / (1e9 if nano else 1e6), frame


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
        return self.gtp_type == 255


def dissect(frame: bytes) -> S1Frame:
    """Ethernet -> IPv4 -> UDP 2152 -> GTP-U (via the codec) -> inner IPv4 addresses."""
    if len(frame) < 14:
        return S1Frame(ethertype=-1)
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    if ethertype != ETH_IPV4 or len(frame) < 34:
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
