"""Frame builders shared by the bearer-identity and GTP-C learning tests."""

from __future__ import annotations

import ipaddress
import struct

from tests.unit.tof.test_pipeline import MAC_ENB, MAC_SGW, PDN, gpdu, udp_packet

from fluidedge.codec import gtpc
from fluidedge.codec.gtpc import GtpcMessage, IEType, InformationElement, MessageType
from fluidedge.codec.net import checksum as ck
from fluidedge.codec.stack import encapsulate, ethernet_frame
from fluidedge.tof.pipeline import PINGER_ID, PINGER_MAGIC, Pipeline

UE3 = ipaddress.IPv4Address("198.18.100.3").packed


def a(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def echo_reply(
    ue: bytes, seq: int, *, ident: int = PINGER_ID, magic: bytes = PINGER_MAGIC
) -> bytes:
    """An ICMP echo reply from the Pinger target to ``ue``, as the PDN answers the Pinger."""
    icmp = bytearray(struct.pack("!BBHHH", 0, 0, 0, ident, seq) + magic)
    struct.pack_into("!H", icmp, 2, ck.checksum(icmp))
    from fluidedge.codec.net import ipv4

    return ipv4.encode(PDN, ue, 1, bytes(icmp))


def pinger_seq_of(frame: bytes) -> int:
    """The ICMP sequence number of a Pinger request frame the pipeline built."""
    from fluidedge.codec.stack import classify

    c = classify(frame)
    assert c.inner_offset is not None
    l4 = c.inner_offset + 20
    return int(struct.unpack_from("!H", frame, l4 + 6)[0])


def down_to(sgw: bytes, enb: bytes, teid: int, ue: bytes, body: bytes = b"pdn") -> bytes:
    return gpdu(sgw, enb, teid, udp_packet(PDN, ue, 53, 4000, body), uplink=False)


def up_from(enb: bytes, sgw: bytes, teid: int, ue: bytes, dst: bytes = PDN) -> bytes:
    return gpdu(enb, sgw, teid, udp_packet(ue, dst, 4000, 53 if dst == PDN else 8080))


def gtpc_frame(src: bytes, dst: bytes, message: GtpcMessage, *, uplink: bool) -> bytes:
    macs = (MAC_SGW, MAC_ENB) if uplink else (MAC_ENB, MAC_SGW)
    outer = encapsulate(src, dst, gtpc.encode(message), src_port=2123, dst_port=2123)
    return ethernet_frame(macs[0], macs[1], outer)


def u32(v: int) -> bytes:
    return v.to_bytes(4, "big")


def create_request(seq: int, *, dl_teid: int, teid_c: int, nsapi: int, sgsn: bytes) -> GtpcMessage:
    """Create PDP Context Request (TS 29.060 §7.3.1) as sgsnemu sends it (dynamic IPv4)."""
    ies = (
        InformationElement(2, bytes.fromhex("0010010000000010")),  # IMSI
        InformationElement(15, b"\x01"),  # Selection mode
        InformationElement(IEType.TEID_DATA_I, u32(dl_teid)),
        InformationElement(IEType.TEID_CONTROL_PLANE, u32(teid_c)),
        InformationElement(IEType.NSAPI, bytes([nsapi])),
        InformationElement(IEType.END_USER_ADDRESS, b"\xf1\x21"),  # IPv4, dynamic
        InformationElement(IEType.ACCESS_POINT_NAME, b"\x08internet"),
        InformationElement(IEType.GSN_ADDRESS, sgsn),  # signalling
        InformationElement(IEType.GSN_ADDRESS, sgsn),  # user traffic
    )
    return GtpcMessage(MessageType.CREATE_PDP_CONTEXT_REQUEST, 0, seq, ies)


def create_response(
    seq: int, *, to_teid_c: int, ul_teid: int, teid_c: int, ue: bytes, ggsn: bytes, cause: int = 128
) -> GtpcMessage:
    """Create PDP Context Response (§7.3.2): the GGSN's TEIDs, the UE's address."""
    ies = (
        InformationElement(IEType.CAUSE, bytes([cause])),
        InformationElement(IEType.TEID_DATA_I, u32(ul_teid)),
        InformationElement(IEType.TEID_CONTROL_PLANE, u32(teid_c)),
        InformationElement(IEType.END_USER_ADDRESS, b"\xf1\x21" + ue),
        InformationElement(IEType.GSN_ADDRESS, ggsn),
        InformationElement(IEType.GSN_ADDRESS, ggsn),
    )
    return GtpcMessage(MessageType.CREATE_PDP_CONTEXT_RESPONSE, to_teid_c, seq, ies)


def delete_request(seq: int, *, to_teid_c: int, nsapi: int, teardown: bool = False) -> GtpcMessage:
    ies = [InformationElement(IEType.NSAPI, bytes([nsapi]))]
    if teardown:
        ies.insert(0, InformationElement(IEType.TEARDOWN_IND, b"\x01"))
    return GtpcMessage(MessageType.DELETE_PDP_CONTEXT_REQUEST, to_teid_c, seq, tuple(ies))


def rows(p: Pipeline) -> dict[str, dict[str, object]]:
    return {str(t["ue"]): t for t in p.tunnels()}
