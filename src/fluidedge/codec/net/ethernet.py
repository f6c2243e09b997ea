"""Ethernet II framing with IEEE 802.1Q / 802.1ad VLAN tags.

Only the frame header is decoded: destination, source, any stack of VLAN tags (TPIDs 0x8100,
0x88A8 and the legacy 0x9100 Q-in-Q), then the EtherType of the payload. The FCS is never present
in what AF_PACKET or pcap hands us, so it is not expected.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from fluidedge.codec.errors import MalformedError, TruncatedError
from fluidedge.codec.fields import Field, Layout

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV6 = 0x86DD
TPID_8021Q = 0x8100
TPID_8021AD = 0x88A8
TPID_QINQ_LEGACY = 0x9100
VLAN_TPIDS = frozenset({TPID_8021Q, TPID_8021AD, TPID_QINQ_LEGACY})

ETHERNET = Layout(
    "Ethernet",
    "IEEE 802.3 §3.1.1 (Ethernet II)",
    (
        Field("destination", "6s", "IEEE 802.3 §3.2.4"),
        Field("source", "6s", "IEEE 802.3 §3.2.5"),
        Field("ethertype", "H", "IEEE 802.3 §3.2.6", "TPID if a VLAN tag follows"),
    ),
)
VLAN_TAG = Layout(
    "802.1Q tag",
    "IEEE 802.1Q-2018 §9.6",
    (
        Field("tci", "H", "IEEE 802.1Q §9.6", "PCP(3) DEI(1) VID(12)"),
        Field("ethertype", "H", "IEEE 802.1Q §9.5", "next TPID or the payload EtherType"),
    ),
)

_MAX_TAGS = 8
_TAG = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class VlanTag:
    """One VLAN tag: the TPID that introduced it and its TCI fields."""

    tpid: int
    pcp: int
    dei: bool
    vid: int


@dataclass(frozen=True, slots=True)
class EthernetHeader:
    destination: bytes
    source: bytes
    vlans: tuple[VlanTag, ...]
    ethertype: int
    header_size: int

    @property
    def vlan(self) -> int | None:
        """VID of the outermost tag, if any (what the fast classifier reports)."""
        return self.vlans[0].vid if self.vlans else None


def decode(buf: bytes | bytearray | memoryview, offset: int = 0) -> EthernetHeader:
    """Decode the Ethernet header (and VLAN tags) starting at ``offset``."""
    if offset < 0:
        raise MalformedError("Ethernet", offset, "negative offset")
    dst, src, ethertype = ETHERNET.unpack(buf, offset)
    pos = offset + ETHERNET.size
    tags: list[VlanTag] = []
    while ethertype in VLAN_TPIDS:
        if len(tags) == _MAX_TAGS:
            raise MalformedError("802.1Q tag", pos, f"more than {_MAX_TAGS} stacked VLAN tags")
        if len(buf) - pos < 4:
            raise TruncatedError("802.1Q tag", pos, f"need 4 bytes, have {max(len(buf) - pos, 0)}")
        tci, next_type = _TAG.unpack_from(buf, pos)
        tags.append(VlanTag(ethertype, tci >> 13, bool(tci & 0x1000), tci & 0x0FFF))
        ethertype = next_type
        pos += 4
    # An "EtherType" below 0x0600 is an 802.3 length (LLC/SNAP frame): valid, simply non-IP.
    return EthernetHeader(bytes(dst), bytes(src), tuple(tags), ethertype, pos - offset)


def encode(
    destination: bytes,
    source: bytes,
    ethertype: int,
    payload: bytes | bytearray | memoryview = b"",
    *,
    vlans: tuple[VlanTag, ...] = (),
) -> bytes:
    """Build an Ethernet II frame (no FCS), with VLAN tags outermost first."""
    if len(destination) != 6 or len(source) != 6:
        raise MalformedError("Ethernet", 0, "MAC addresses are 6 bytes")
    parts = [destination, source]
    for tag in vlans:
        if not 0 <= tag.vid <= 0xFFF or not 0 <= tag.pcp <= 7:
            raise MalformedError("802.1Q tag", 14, f"bad VLAN tag {tag}")
        tci = (tag.pcp << 13) | (int(tag.dei) << 12) | tag.vid
        parts.append(struct.pack("!H H", tag.tpid, tci))
    parts.append(struct.pack("!H", ethertype))
    parts.append(bytes(payload))
    return b"".join(parts)


def mac(text: str) -> bytes:
    """Parse ``aa:bb:cc:dd:ee:ff`` into 6 bytes."""
    parts = text.split(":")
    if len(parts) != 6:
        raise MalformedError("Ethernet", 0, f"not a MAC address: {text!r}")
    try:
        raw = bytes(int(p, 16) for p in parts)
    except ValueError:
        raise MalformedError("Ethernet", 0, f"not a MAC address: {text!r}") from None
    return raw


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)
