"""The whole frame the TOF sees: Ethernet -> IP -> UDP -> GTP-U -> inner IP packet.

Two entry points give the same answer (property-tested):

* :func:`decode_frame` is the full decoder. It returns a :class:`Frame` with every layer as a
  frozen dataclass plus absolute offsets, and never raises: a frame that fails to decode comes
  back with ``kind=MALFORMED``, the layers decoded so far and the :class:`CodecError` (header,
  offset, reason).
* :func:`classify` is the hot path. It returns a flat tuple with only what the TOF decides
  on (:class:`IpGpdu` for a G-PDU carrying an IP packet, whose fields are not optional;
  :class:`OtherFrame` for everything else), and for the common shapes reads the whole stack
  with ONE precompiled ``struct`` unpack: a plain LTE G-PDU, one with a sequence number
  and/or N-PDU number (S/PN, what osmo-ggsn and most real cores send), and a 5G G-PDU with
  one PDU Session Container (with or without S/PN); all over untagged Ethernet/IPv4 without
  options, inner IPv4 without options. Anything else (VLAN, IPv6, options, longer extension
  chains, fragments, errors) falls back to ``decode_frame``.

Both never raise, whatever the argument: something that is not a buffer (or a released
memoryview) is a MALFORMED frame whose error names the Ethernet header at offset 0, and a
memoryview of another format or shape is read as its octets (lengths and offsets count
octets, not items).

Unknown extension headers that an intermediate node forwards (comprehension bits ``00``,
``01``, ``10``; TS 29.281 §5.2.1) are well-formed: the frame is a GTP_GPDU with its TEID and
inner packet, and ``IpGpdu.unknown_ext`` names the unknown type with the strictest
comprehension bits. Unknown types with bits ``11`` make the frame MALFORMED (UnsupportedError).

Classification, not errors, for what the TOF passes through: non-IP frames, IP that is not
UDP to or from port 2152, and outer IP fragments. A frame is "ours to judge" (GTP_GPDU,
GTP_OTHER or MALFORMED at the GTP-U layer or inside) only when it parses as UDP with port
2152 on either side (destination for G-PDUs and requests; source for echo responses, which
go back to the requester's port, TS 29.281 §4.4.2.1).

Zero-copy: the inner packet is never copied; G-PDU payloads are memoryviews of the input and
classification reports offsets (``inner_offset``/``inner_end``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from fluidedge.codec import gtpu
from fluidedge.codec.errors import CodecError, MalformedError
from fluidedge.codec.gtpu import ExtensionHeader, GtpuHeader, GtpuMessage, UnknownExtension
from fluidedge.codec.gtpu.constants import GTPU_PORT, ExtensionType, MessageType
from fluidedge.codec.net import ethernet, inner, ipv4, ipv6, nat, udp
from fluidedge.codec.net.ethernet import ETHERTYPE_IPV4, ETHERTYPE_IPV6, EthernetHeader
from fluidedge.codec.net.inner import InnerPacket
from fluidedge.codec.net.ipv4 import IPv4Header
from fluidedge.codec.net.ipv6 import IPv6Header
from fluidedge.codec.net.udp import UdpHeader

G_PDU = int(MessageType.G_PDU)
PDU_SESSION_CONTAINER = int(ExtensionType.PDU_SESSION_CONTAINER)

Buffer = bytes | bytearray | memoryview


class Kind(IntEnum):
    """What a frame is, as far as the TOF is concerned."""

    NON_IP = 0
    """Not IPv4/IPv6 (ARP, LLDP, 802.3 LLC...): pass through."""
    NON_GTP = 1
    """IP, but not UDP with port 2152 on either side: pass through."""
    FRAGMENT = 2
    """An outer IP fragment: its GTP-U content cannot be judged alone; pass through."""
    GTP_GPDU = 3
    """A G-PDU (message type 255); inner_* describe the user packet (None if not IP)."""
    GTP_OTHER = 4
    """Any other GTP-U message (echo, error indication, end marker, ...)."""
    MALFORMED = 5
    """Decoding failed; ``error`` says which header, where, and why."""


class Fault(NamedTuple):
    """A decode failure as plain data (comparable, unlike exception objects)."""

    error: str  # the CodecError subclass name
    header: str
    offset: int
    reason: str

    def __str__(self) -> str:
        return f"{self.header} at offset {self.offset}: {self.reason}"

    @classmethod
    def of(cls, exc: CodecError) -> Fault:
        return cls(type(exc).__name__, exc.header, exc.offset, exc.reason)


class IpGpdu(NamedTuple):
    """A G-PDU carrying an IP packet: what the TOF learns, counts and offloads.

    The same fields, in the same order, as :class:`OtherFrame`, but everything a G-PDU with a
    decoded inner packet always has is not optional (outer peers and ports, TEID, the inner
    packet's offsets, addresses and protocol), so code holding one needs no ``None`` checks.
    Addresses are packed bytes (4 or 16): cheap to compare and hash. Absolute offsets index the
    frame that was classified."""

    kind: int  # always Kind.GTP_GPDU
    vlan: int | None  # outermost VLAN id
    outer_src: bytes
    outer_dst: bytes
    src_port: int  # outer UDP ports
    dst_port: int
    udp_offset: int
    message_type: int  # always 255
    teid: int
    qfi: int | None  # of the first PDU Session Container
    inner_offset: int  # G-PDU payload (T-PDU) start ...
    inner_end: int  # ... and end, per the GTP-U length field
    inner_src: bytes
    inner_dst: bytes
    inner_proto: int  # after any IPv6 extension chain
    inner_sport: int | None  # TCP/UDP
    inner_dport: int | None
    icmp_type: int | None  # ICMP/ICMPv6
    icmp_id: int | None  # echo request/reply identifier
    inner_fragment: bool
    error: None
    unknown_ext: int | None = None
    """Type of an unknown extension header in the chain (comprehension bits 00/01/10), the one
    with the strictest bits (first among equals); None if every extension is known. Bits 10
    (0x80-0xBF) mean an endpoint must understand it: the TOF may forward, not terminate."""


class OtherFrame(NamedTuple):
    """Any other frame: not IP, not GTP-U, a fragment, a GTP-U message other than a G-PDU, a
    G-PDU whose payload is not IP (``kind`` GTP_GPDU, ``inner_*`` None), or MALFORMED (``error``
    says which header, where, and why). A field is None where the frame did not reach it."""

    kind: int  # a Kind value
    vlan: int | None
    outer_src: bytes | None
    outer_dst: bytes | None
    src_port: int | None
    dst_port: int | None
    udp_offset: int | None
    message_type: int | None
    teid: int | None
    qfi: int | None
    inner_offset: int | None
    inner_end: int | None
    inner_src: bytes | None
    inner_dst: bytes | None
    inner_proto: int | None
    inner_sport: int | None
    inner_dport: int | None
    icmp_type: int | None
    icmp_id: int | None
    inner_fragment: bool
    error: Fault | None
    unknown_ext: int | None = None


Classified = IpGpdu | OtherFrame
"""What :func:`classify` returns: ``type(c) is IpGpdu`` (or ``isinstance``) tells a G-PDU
carrying an IP packet, with its fields narrowed, from everything else."""


@dataclass(frozen=True, slots=True)
class Frame:
    """Every decoded layer of one frame, with absolute offsets (``None`` = not reached)."""

    kind: Kind
    ethernet: EthernetHeader | None = None
    ip: IPv4Header | IPv6Header | None = None
    udp: UdpHeader | None = None
    gtpu: GtpuMessage | None = None
    inner: InnerPacket | None = None
    ip_offset: int | None = None
    udp_offset: int | None = None
    gtpu_offset: int | None = None
    payload_offset: int | None = None
    payload_end: int | None = None
    error: CodecError | None = None

    @property
    def gtpu_header(self) -> GtpuHeader | None:
        return self.gtpu.header if self.gtpu is not None else None

    def classified(self) -> Classified:
        """The flat classification of this frame (what :func:`classify` returns)."""
        ip, u, pkt = self.ip, self.udp, self.inner
        header = self.gtpu_header
        u_off, p_off, p_end = self.udp_offset, self.payload_offset, self.payload_end
        if (
            self.kind == Kind.GTP_GPDU
            and ip
            and u
            and header
            and pkt
            and u_off is not None
            and p_off is not None
            and p_end is not None
        ):
            return IpGpdu(
                int(self.kind),
                self.ethernet.vlan if self.ethernet else None,
                ip.source,
                ip.destination,
                u.source_port,
                u.destination_port,
                u_off,
                header.message_type,
                header.teid,
                header.qfi,
                p_off,
                p_end,
                pkt.source,
                pkt.destination,
                pkt.protocol,
                pkt.source_port,
                pkt.destination_port,
                pkt.icmp_type,
                pkt.icmp_id,
                pkt.fragment,
                None,
                _strictest_unknown(header.extensions) if header.extensions else None,
            )
        return OtherFrame(
            int(self.kind),
            self.ethernet.vlan if self.ethernet else None,
            ip.source if ip else None,
            ip.destination if ip else None,
            u.source_port if u else None,
            u.destination_port if u else None,
            self.udp_offset if u else None,
            header.message_type if header else None,
            header.teid if header else None,
            header.qfi if header else None,
            self.payload_offset,
            self.payload_end,
            pkt.source if pkt else None,
            pkt.destination if pkt else None,
            pkt.protocol if pkt else None,
            pkt.source_port if pkt else None,
            pkt.destination_port if pkt else None,
            pkt.icmp_type if pkt else None,
            pkt.icmp_id if pkt else None,
            pkt.fragment if pkt else False,
            Fault.of(self.error) if self.error else None,
            _strictest_unknown(header.extensions) if header and header.extensions else None,
        )


def _strictest_unknown(extensions: tuple[ExtensionHeader, ...]) -> int | None:
    found: int | None = None
    for ext in extensions:
        if isinstance(ext, UnknownExtension) and (found is None or ext.ext_type >> 6 > found >> 6):
            found = ext.ext_type
    return found


def as_octets(buf: object) -> bytes | bytearray | memoryview:
    """``buf`` as something whose ``len`` and indexing count octets; MalformedError naming the
    Ethernet header at offset 0 when it is not a buffer (or a released memoryview)."""
    kind = type(buf)
    if kind is bytes or kind is bytearray:
        return buf  # type: ignore[return-value]
    try:
        view = memoryview(buf)  # type: ignore[arg-type]
        if view.format != "B" or view.ndim != 1 or not view.c_contiguous:
            view = view.cast("B") if view.c_contiguous else memoryview(view.tobytes())
    except (TypeError, ValueError) as exc:
        raise MalformedError("Ethernet", 0, f"not a bytes-like buffer: {exc}") from None
    return view


def decode_frame(buf: Buffer) -> Frame:
    """Decode every layer of an Ethernet frame. Never raises, whatever ``buf`` is; see
    :class:`Frame` (offsets count octets)."""
    try:
        octets = as_octets(buf)
    except MalformedError as exc:
        return Frame(Kind.MALFORMED, error=exc)
    view = octets if isinstance(octets, memoryview) else memoryview(octets)
    eth: EthernetHeader | None = None
    ip: IPv4Header | IPv6Header | None = None
    u: UdpHeader | None = None
    msg: GtpuMessage | None = None
    pkt: InnerPacket | None = None
    ip_off = udp_off = g_off = p_off = p_end = None
    try:
        eth = ethernet.decode(view)
        ip_off = eth.header_size
        if eth.ethertype == ETHERTYPE_IPV4:
            ip = h4 = ipv4.decode(view, ip_off)
            proto, l4, end = h4.protocol, ip_off + h4.header_size, ip_off + h4.total_length
        elif eth.ethertype == ETHERTYPE_IPV6:
            ip = h6 = ipv6.decode(view, ip_off)
            proto, l4, end = h6.upper_protocol, h6.upper_offset, ip_off + h6.total_length
        else:
            return Frame(Kind.NON_IP, eth)
        if ip.is_fragment:
            return Frame(Kind.FRAGMENT, eth, ip, ip_offset=ip_off)
        if proto != udp.PROTO_UDP:
            return Frame(Kind.NON_GTP, eth, ip, ip_offset=ip_off)
        u = udp.decode(view, l4, end)
        udp_off = l4
        if GTPU_PORT not in (u.destination_port, u.source_port):
            return Frame(Kind.NON_GTP, eth, ip, u, ip_offset=ip_off, udp_offset=udp_off)
        g_off = l4 + 8
        msg = gtpu.decode(view[: l4 + u.length], g_off)
        header = msg.header
        if header.message_type != G_PDU:
            return Frame(Kind.GTP_OTHER, eth, ip, u, msg, None, ip_off, udp_off, g_off)
        p_off = g_off + header.header_size
        p_end = g_off + 8 + header.length
        if p_end > p_off and view[p_off] >> 4 in (4, 6):
            pkt = inner.decode(view, p_off, p_end)
        return Frame(Kind.GTP_GPDU, eth, ip, u, msg, pkt, ip_off, udp_off, g_off, p_off, p_end)
    except CodecError as exc:
        return Frame(
            Kind.MALFORMED, eth, ip, u, msg, pkt, ip_off, udp_off, g_off, p_off, p_end, exc
        )


# --- the hot path ------------------------------------------------------------------------------
# One struct for Ethernet(14) + IPv4 without options(20) + UDP(8) + plain GTP-U(8) + inner
# IPv4 without options(20) + the first 6 octets of the transport header. "x" skips what the
# classification does not need (the GTP-U flags octet is checked before unpacking).
_PLAIN = struct.Struct(
    "!12xH"  # Ethernet: EtherType
    "B xH 2xH xB 2x4s4s"  # IPv4: ver/IHL, total length, flags/fragment, protocol, src, dst
    "HHH2x"  # UDP: ports, length
    "xBHI"  # GTP-U: (flags), type, length, TEID
    "B xH 2xH xB 2x4s4s"  # inner IPv4
    "HHH"  # TCP/UDP ports; or ICMP type/code, checksum, echo identifier
)
# The same with S and/or PN set, E clear (TS 29.281 §5.1): the 4 optional octets (sequence,
# N-PDU number, next type) are present; none of them changes the classification.
_SEQ = struct.Struct(
    "!12xH"
    "B xH 2xH xB 2x4s4s"
    "HHH2x"
    "xBHI"
    "4x"  # GTP-U optional: sequence, N-PDU, next extension type (ignored: E=0)
    "B xH 2xH xB 2x4s4s"
    "HHH"
)
# The same with the 12-octet GTP-U header (E=1, any S/PN) and one 4-octet PDU Session Container.
_PSC = struct.Struct(
    "!12xH"
    "B xH 2xH xB 2x4s4s"
    "HHH2x"
    "xBHI"
    "3xB"  # GTP-U optional: sequence, N-PDU (values not classified), next extension type
    "BBBB"  # extension: length, PDU type/flags, QFI octet, next type
    "B xH 2xH xB 2x4s4s"
    "HHH"
)
_PLAIN_SIZE = _PLAIN.size  # 76
_SEQ_SIZE = _SEQ.size  # 80
_PSC_SIZE = _PSC.size  # 84
_unpack_plain = _PLAIN.unpack_from
_unpack_seq = _SEQ.unpack_from
_unpack_psc = _PSC.unpack_from
_new_classified = tuple.__new__
_GPDU = int(Kind.GTP_GPDU)


def classify(frame: Buffer) -> Classified:
    """Classify one Ethernet frame for the TOF; same result as ``decode_frame(f).classified()``.

    Never raises, whatever ``frame`` is: malformed frames (and non-buffers) come back with
    ``kind=MALFORMED`` and ``error`` set.
    """
    kind = type(frame)
    if kind is not bytes and kind is not bytearray:
        try:
            frame = as_octets(frame)
        except MalformedError:
            return decode_frame(frame).classified()
    n = len(frame)
    if n >= _PLAIN_SIZE:
        gflags = frame[42]
        if gflags == 0x30:
            (et, vihl, total, frag, proto, osrc, odst, sport, dport, ulen,
             gtype, glen, teid,
             ivihl, itotal, ifrag, iproto, isrc, idst, w0, w1, w2,
             ) = _unpack_plain(frame)  # fmt: skip
            qfi = None
            p_off = 50
            room = glen
        elif 0x31 <= gflags <= 0x33 and n >= _SEQ_SIZE:
            (et, vihl, total, frag, proto, osrc, odst, sport, dport, ulen,
             gtype, glen, teid,
             ivihl, itotal, ifrag, iproto, isrc, idst, w0, w1, w2,
             ) = _unpack_seq(frame)  # fmt: skip
            qfi = None
            p_off = 54
            room = glen - 4
        elif 0x34 <= gflags <= 0x37 and n >= _PSC_SIZE:
            (et, vihl, total, frag, proto, osrc, odst, sport, dport, ulen,
             gtype, glen, teid, next_type, elen, ptype, qfi,  enext,
             ivihl, itotal, ifrag, iproto, isrc, idst, w0, w1, w2,
             ) = _unpack_psc(frame)  # fmt: skip
            # One 4-octet PDU Session Container whose flags add no fields (TS 38.415 §5.5.2):
            # DL octet 1 = type(4) QMP SNP MSNP spare, octet 2 = PPP RQI QFI(6);
            # UL octet 1 = type(4) QMP DLDelay ULDelay SNP, octet 2 = N3N9Delay NewIE QFI(6).
            if not (
                next_type == PDU_SESSION_CONTAINER
                and elen == 1
                and enext == 0
                and ptype in {0x00, 0x10}
                and qfi < (0x80 if ptype == 0 else 0x40)
            ):
                return decode_frame(frame).classified()
            qfi &= 0x3F
            p_off = 58
            room = glen - 8
        else:
            return decode_frame(frame).classified()
        # Literals, not ETHERTYPE_IPV4 / G_PDU / GTPU_PORT: three global lookups and a tuple
        # per frame cost 5% of classify() (bench/classify_ab.py). They are an optimisation
        # only: a frame that fails them is decoded by decode_frame, which uses the names.
        if (
            et == 0x0800
            and vihl == 0x45
            and not frag & 0x3FFF
            and proto == 17
            and 14 + total <= n
            and 20 + ulen <= total
            and 16 + glen <= ulen
            and gtype == 255
            and (dport == 2152 or sport == 2152)
            and ivihl == 0x45
            and not ifrag & 0x3FFF
            and 20 <= itotal <= room
        ):
            if iproto in {17, 6}:
                if itotal >= (28 if iproto == 17 else 40):
                    return _new_classified(
                        IpGpdu,
                        (_GPDU, None, osrc, odst, sport, dport, 34, 255, teid, qfi, p_off,
                         50 + glen, isrc, idst, iproto, w0, w1, None, None, False, None, None),
                    )  # fmt: skip
            elif iproto == 1:
                itype = w0 >> 8
                if itotal >= (28 if itype in {0, 8} else 24):
                    return _new_classified(
                        IpGpdu,
                        (_GPDU, None, osrc, odst, sport, dport, 34, 255, teid, qfi, p_off,
                         50 + glen, isrc, idst, 1, None, None, itype,
                         w2 if itype in {0, 8} else None, False, None, None),
                    )  # fmt: skip
            else:
                return _new_classified(
                    IpGpdu,
                    (_GPDU, None, osrc, odst, sport, dport, 34, 255, teid, qfi, p_off,
                     50 + glen, isrc, idst, iproto, None, None, None, None, False, None, None),
                )  # fmt: skip
    return decode_frame(frame).classified()


# --- encoders ----------------------------------------------------------------------------------


def encapsulate(
    outer_src: bytes,
    outer_dst: bytes,
    gtpu_message: Buffer,
    *,
    src_port: int = GTPU_PORT,
    dst_port: int = GTPU_PORT,
    udp_checksum: bool = True,
    ttl: int = 64,
    tos: int = 0,
    identification: int = 0,
    dont_fragment: bool = True,
) -> bytes:
    """IPv4 or IPv6 (by address length) + UDP around an encoded GTP-U message.

    The IPv4 header checksum is always computed; the UDP checksum is computed unless
    ``udp_checksum=False`` (IPv4 only: over IPv6 it is mandatory). For IPv6, ``ttl`` is the hop
    limit and ``tos`` the traffic class.
    """
    datagram = udp.encode(
        outer_src, outer_dst, src_port, dst_port, gtpu_message, with_checksum=udp_checksum
    )
    if len(outer_src) == 4:
        return ipv4.encode(
            outer_src,
            outer_dst,
            udp.PROTO_UDP,
            datagram,
            ttl=ttl,
            tos=tos,
            identification=identification,
            dont_fragment=dont_fragment,
        )
    return ipv6.encode(
        outer_src, outer_dst, udp.PROTO_UDP, datagram, hop_limit=ttl, traffic_class=tos
    )


def encapsulate_gpdu(
    outer_src: bytes,
    outer_dst: bytes,
    teid: int,
    inner_packet: Buffer,
    *,
    sequence: int | None = None,
    npdu: int | None = None,
    extensions: tuple[ExtensionHeader, ...] = (),
    src_port: int = GTPU_PORT,
    dst_port: int = GTPU_PORT,
    udp_checksum: bool = True,
    ttl: int = 64,
    tos: int = 0,
) -> bytes:
    """A complete outer IP/UDP/GTP-U G-PDU carrying ``inner_packet``."""
    message = gtpu.encode_gpdu(
        teid,
        inner_packet,
        sequence=sequence,
        npdu=npdu,
        extensions=extensions,
    )
    return encapsulate(
        outer_src,
        outer_dst,
        message,
        src_port=src_port,
        dst_port=dst_port,
        udp_checksum=udp_checksum,
        ttl=ttl,
        tos=tos,
    )


def ethernet_frame(
    destination: bytes,
    source: bytes,
    ip_packet: Buffer,
    *,
    vlans: tuple[ethernet.VlanTag, ...] = (),
) -> bytes:
    """Ethernet II framing; the EtherType follows the packet's IP version nibble."""
    if not ip_packet or ip_packet[0] >> 4 not in (4, 6):
        raise MalformedError("Ethernet", 14, "payload is not an IPv4 or IPv6 packet")
    ethertype = ETHERTYPE_IPV4 if ip_packet[0] >> 4 == 4 else ETHERTYPE_IPV6
    return ethernet.encode(destination, source, ethertype, ip_packet, vlans=vlans)


def rewrite_inner(
    frame: bytearray,
    classified: Classified,
    *,
    source: bytes | None = None,
    destination: bytes | None = None,
    source_port: int | None = None,
    destination_port: int | None = None,
    icmp_id: int | None = None,
) -> None:
    """NAT the inner packet of a classified G-PDU in place, outer UDP checksum included.

    The inner IPv4 header and transport checksums are updated incrementally (RFC 1624, see
    :mod:`fluidedge.codec.net.nat`); so is the outer UDP checksum (left at 0 if it was 0).
    """
    if not isinstance(classified, IpGpdu):
        raise MalformedError(
            "inner IP", classified.inner_offset or 0, "not a G-PDU carrying an IP packet"
        )
    d = nat.rewrite(
        frame,
        classified.inner_offset,
        classified.inner_end,
        source=source,
        destination=destination,
        source_port=source_port,
        destination_port=destination_port,
        icmp_id=icmp_id,
    )
    if d:
        nat.patch_checksum(frame, classified.udp_offset + 6, d, zero_means_none=True)
