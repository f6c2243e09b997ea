"""Differential tests against scapy (``scapy.contrib.gtp``, an implementation we did not write).

Both directions: packets built by scapy are decoded by us and compared field by field; our
encodings are dissected by scapy and compared the same way.

Known scapy 2.8 defects found on the way (so they are avoided here, and checked against
tshark instead, see test_tshark_differential.py):
- ``GTPPDUSessionContainer`` puts the padding *after* the Next Extension Header Type octet,
  whereas TS 29.281 §5.2.1 makes that octet the last of the extension header; so PDU Session
  Containers are compared only in the shapes that need no padding.
- ``IE_ExtensionHeaderList`` (141) is built with a 2-octet length, TS 29.281 §8.5 has 1 octet.
- ``IE_GSNAddress`` leaves its length at 0 unless given, so tests give it.
- the DL MSNP flag (TS 38.415 v17) is ``spareDl1`` to scapy.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.contrib import gtp  # a dev dependency: missing scapy must fail, not skip
from scapy.packet import Raw
from scapy.packet import raw as scapy_raw

from fluidedge.codec.gtpu import (
    EchoRequest,
    EchoResponse,
    EndMarker,
    ErrorIndication,
    GPdu,
    GtpuHeader,
    PdcpPduNumber,
    PduSessionContainer,
    UdpPortExtension,
    decode,
    encode,
    encode_gpdu,
    end_marker,
    error_indication,
)

from . import strategies as s

EXAMPLES = settings(max_examples=60, deadline=None)


def _dl_shapes() -> st.SearchStrategy[dict[str, int]]:
    """DL PSC field sets whose content needs no padding (see module docstring): 2 + PPP +
    8 QMP + 3 SNP octets is 4n-2 exactly when PPP == SNP."""

    def aligned(d: dict[str, int]) -> dict[str, int]:
        return {**d, "PPP": d["SNP"]}

    return st.fixed_dictionaries(
        {
            "QFI": s.u(6),
            "RQI": s.u(1),
            "PPP": s.u(1),
            "PPI": s.u(3),
            "QMP": s.u(1),
            "SNP": s.u(1),
            "dlSendTime": s.u(64),
            "dlQFISeqNum": s.u(24),
        }
    ).map(aligned)


def _ul_shapes() -> st.SearchStrategy[dict[str, int]]:
    """UL PSC field sets without padding: every UL field is a multiple of 4 octets but the
    3-octet sequence number, so SNP stays 0."""

    def aligned(d: dict[str, int]) -> dict[str, int]:
        return {**d, "SNP": 0}

    return st.fixed_dictionaries(
        {
            "QFI": s.u(6),
            "QMP": s.u(1),
            "dlDelayInd": s.u(1),
            "ulDelayInd": s.u(1),
            "SNP": s.u(1),
            "N3N9DelayInd": s.u(1),
            "dlSendTimeRpt": s.u(64),
            "dlRecvTime": s.u(64),
            "ulSendTime": s.u(64),
            "dlDelayRslt": s.u(32),
            "ulDelayRslt": s.u(32),
            "UlQFISeqNum": s.u(24),
            "N3N9DelayRslt": s.u(32),
        }
    ).map(aligned)


# --- scapy builds, we decode ---------------------------------------------------------------


@EXAMPLES
@given(s.u(32), s.u(2), st.tuples(s.u(16), s.u(8), s.u(8)), st.binary(min_size=1, max_size=100))
def test_scapy_gpdu_decoded_by_us(
    teid: int, flags: int, optional: tuple[int, int, int], payload: bytes
) -> None:
    sflag, pnflag = flags >> 1 & 1, flags & 1
    seq, npdu, next_ex = optional
    pkt = gtp.GTP_U_Header(
        teid=teid, gtp_type=255, S=sflag, PN=pnflag, seq=seq, npdu=npdu, next_ex=next_ex
    ) / Raw(payload)
    wire = scapy_raw(pkt)
    msg = decode(wire)
    assert isinstance(msg, GPdu)
    h = msg.header
    assert (h.version, h.protocol_type, h.message_type) == (1, 1, 255)
    assert h.teid == teid
    assert h.length == gtp.GTP_U_Header(wire).length == len(wire) - 8
    assert h.sequence == (seq if sflag else None)
    assert h.npdu == (npdu if pnflag else None)
    assert h.extensions == ()
    assert bytes(msg.payload) == payload
    assert encode(msg) == wire


def _scapy_psc_gpdu(
    teid: int, pdu_type: int, fields: dict[str, int], payload: bytes
) -> tuple[bytes, GPdu]:
    """A G-PDU with one PDU Session Container built by scapy, and our decoding of it."""
    pkt = (
        gtp.GTP_U_Header(teid=teid, gtp_type=255, E=1, next_ex=0x85)
        / gtp.GTPPDUSessionContainer(type=pdu_type, **fields)
        / Raw(payload)
    )
    wire = scapy_raw(pkt)
    msg = decode(wire)
    assert isinstance(msg, GPdu)
    return wire, msg


@EXAMPLES
@given(s.u(32), _dl_shapes(), st.binary(min_size=20, max_size=60))
def test_scapy_psc_dl_decoded_by_us(teid: int, f: dict[str, int], payload: bytes) -> None:
    payload = b"\x45" + payload[1:]
    wire, msg = _scapy_psc_gpdu(teid, 0, f, payload)
    (psc,) = msg.header.extensions
    assert psc == PduSessionContainer(
        0,
        f["QFI"],
        rqi=bool(f["RQI"]),
        ppi=f["PPI"] if f["PPP"] else None,
        dl_sending_time_stamp=f["dlSendTime"] if f["QMP"] else None,
        qfi_sequence_number=f["dlQFISeqNum"] if f["SNP"] else None,
    )
    assert msg.header.qfi == f["QFI"]
    assert bytes(msg.payload) == payload
    assert encode(msg) == wire


@EXAMPLES
@given(s.u(32), _ul_shapes(), st.binary(min_size=20, max_size=60))
def test_scapy_psc_ul_decoded_by_us(teid: int, f: dict[str, int], payload: bytes) -> None:
    payload = b"\x45" + payload[1:]
    wire, msg = _scapy_psc_gpdu(teid, 1, f, payload)
    (psc,) = msg.header.extensions
    assert psc == PduSessionContainer(
        1,
        f["QFI"],
        ul_time_stamps=(f["dlSendTimeRpt"], f["dlRecvTime"], f["ulSendTime"]) if f["QMP"] else None,
        dl_delay_result=f["dlDelayRslt"] if f["dlDelayInd"] else None,
        ul_delay_result=f["ulDelayRslt"] if f["ulDelayInd"] else None,
        qfi_sequence_number=f["UlQFISeqNum"] if f["SNP"] else None,
        n3n9_delay_result=f["N3N9DelayRslt"] if f["N3N9DelayInd"] else None,
    )
    assert bytes(msg.payload) == payload
    assert encode(msg) == wire


@EXAMPLES
@given(s.u(16), s.u(16), s.u(32), s.u(32))
def test_scapy_udp_port_and_pdcp_extensions_decoded_by_us(
    port: int, pdcp: int, teid: int, teid_i: int
) -> None:
    ei = (
        gtp.GTP_U_Header(teid=0, gtp_type=26, E=1, S=1, next_ex=0x40)
        / gtp.GTP_UDPPort_ExtensionHeader(udp_port=port)
        / gtp.GTPErrorIndication(
            IE_list=[
                gtp.IE_TEIDI(TEIDI=teid_i),
                gtp.IE_GSNAddress(length=4, ipv4_address="198.18.0.9"),
            ]
        )
    )
    msg = decode(scapy_raw(ei))
    assert isinstance(msg, ErrorIndication)
    assert msg.header.extensions == (UdpPortExtension(port),)
    assert msg.udp_port == port
    assert (msg.teid_data_i, msg.peer_address) == (teid_i, IPv4Address("198.18.0.9"))
    pkt = (
        gtp.GTP_U_Header(teid=teid, gtp_type=255, E=1, next_ex=0xC0)
        / gtp.GTP_PDCP_PDU_ExtensionHeader(pdcp_pdu=pdcp)
        / Raw(b"\x45" + bytes(19))
    )
    wire = scapy_raw(pkt)
    gpdu = decode(wire)
    assert gpdu.header.extensions == (PdcpPduNumber(pdcp),)
    assert encode(gpdu) == wire


@EXAMPLES
@given(s.u(16), s.u(8))
def test_scapy_echo_decoded_by_us(seq: int, restart: int) -> None:
    req = decode(scapy_raw(gtp.GTP_U_Header(gtp_type=1, S=1, seq=seq) / gtp.GTPEchoRequest()))
    assert isinstance(req, EchoRequest)
    assert (req.header.sequence, req.header.teid, req.recovery) == (seq, 0, None)
    resp_pkt = gtp.GTP_U_Header(gtp_type=2, S=1, seq=seq) / gtp.GTPEchoResponse(
        IE_list=[gtp.IE_Recovery(restart_counter=restart)]
    )
    resp = decode(scapy_raw(resp_pkt))
    assert isinstance(resp, EchoResponse)
    assert (resp.header.sequence, resp.recovery) == (seq, restart)
    assert encode(resp) == scapy_raw(resp_pkt)


@EXAMPLES
@given(s.u(32), s.u(32), s.u(128))
def test_scapy_error_indication_ipv4_ipv6_and_end_marker(teid: int, v4: int, v6: int) -> None:
    for ie, addr in (
        (gtp.IE_GSNAddress(length=4, ipv4_address=str(IPv4Address(v4))), IPv4Address(v4)),
        (gtp.IE_GSNAddress(length=16, ipv6_address=str(IPv6Address(v6))), IPv6Address(v6)),
    ):
        pkt = gtp.GTP_U_Header(gtp_type=26, S=1) / gtp.GTPErrorIndication(
            IE_list=[gtp.IE_TEIDI(TEIDI=teid), ie]
        )
        msg = decode(scapy_raw(pkt))
        assert isinstance(msg, ErrorIndication)
        assert (msg.teid_data_i, msg.peer_address) == (teid, addr)
        assert encode(msg) == scapy_raw(pkt)
    em = decode(scapy_raw(gtp.GTP_U_Header(gtp_type=254, teid=teid)))
    assert em == EndMarker(GtpuHeader(message_type=254, teid=teid))


# --- we build, scapy dissects -------------------------------------------------------------


def _scapy_header_matches(p: Any, h: GtpuHeader, wire: bytes) -> None:
    assert (p.version, p.PT, p.gtp_type, p.teid) == (1, 1, h.message_type, h.teid)
    assert p.length == len(wire) - 8
    assert int(bool(h.extensions)) == p.E
    assert int(h.sequence is not None) == p.S
    assert int(h.npdu is not None) == p.PN
    if h.sequence is not None:
        assert p.seq == h.sequence
    if h.npdu is not None:
        assert p.npdu == h.npdu


@EXAMPLES
@given(s.u(32), s.opt(16), s.opt(8), st.binary(max_size=80))
def test_our_gpdu_dissected_by_scapy(
    teid: int, seq: int | None, npdu: int | None, tail: bytes
) -> None:
    payload = b"\x45" + bytes(19) + tail
    wire = encode_gpdu(teid, payload, sequence=seq, npdu=npdu)
    p = gtp.GTP_U_Header(wire)
    _scapy_header_matches(p, decode(wire).header, wire)
    assert scapy_raw(p.payload) == payload


@EXAMPLES
@given(_dl_shapes(), _ul_shapes(), st.booleans(), s.u(32))
def test_our_psc_dissected_by_scapy(
    dl: dict[str, int], ul: dict[str, int], uplink: bool, teid: int
) -> None:
    if uplink:
        psc = PduSessionContainer(
            1,
            ul["QFI"],
            ul_time_stamps=(ul["dlSendTimeRpt"], ul["dlRecvTime"], ul["ulSendTime"])
            if ul["QMP"]
            else None,
            dl_delay_result=ul["dlDelayRslt"] if ul["dlDelayInd"] else None,
            ul_delay_result=ul["ulDelayRslt"] if ul["ulDelayInd"] else None,
            qfi_sequence_number=ul["UlQFISeqNum"] if ul["SNP"] else None,
            n3n9_delay_result=ul["N3N9DelayRslt"] if ul["N3N9DelayInd"] else None,
        )
        expected = ul
    else:
        psc = PduSessionContainer(
            0,
            dl["QFI"],
            rqi=bool(dl["RQI"]),
            ppi=dl["PPI"] if dl["PPP"] else None,
            dl_sending_time_stamp=dl["dlSendTime"] if dl["QMP"] else None,
            qfi_sequence_number=dl["dlQFISeqNum"] if dl["SNP"] else None,
        )
        expected = dl
    payload = b"\x45" + bytes(19)
    wire = encode_gpdu(teid, payload, extensions=(psc,))
    p = gtp.GTP_U_Header(wire)
    _scapy_header_matches(p, decode(wire).header, wire)
    c = p[gtp.GTPPDUSessionContainer]
    assert c.type == int(uplink)
    assert c.ExtHdrLen == (len(wire) - 8 - 4 - len(payload)) // 4
    assert c.NextExtHdr == 0
    for name, value in expected.items():
        flag_of = {
            "PPI": "PPP",
            "dlSendTime": "QMP",
            "dlQFISeqNum": "SNP",
            "dlSendTimeRpt": "QMP",
            "dlRecvTime": "QMP",
            "ulSendTime": "QMP",
            "dlDelayRslt": "dlDelayInd",
            "ulDelayRslt": "ulDelayInd",
            "UlQFISeqNum": "SNP",
            "N3N9DelayRslt": "N3N9DelayInd",
        }
        if name in flag_of and not expected[flag_of[name]]:
            continue  # absent on the wire
        assert getattr(c, name) == value, name
    assert scapy_raw(c.payload) == payload


@EXAMPLES
@given(s.u(16), s.u(8), s.u(32), s.u(32), s.u(16))
def test_our_signalling_dissected_by_scapy(
    seq: int, restart: int, teid: int, v4: int, port: int
) -> None:
    resp = encode(EchoResponse(GtpuHeader(message_type=2, sequence=seq), restart))
    p = gtp.GTP_U_Header(resp)
    assert (p.gtp_type, p.S, p.seq, p.length) == (2, 1, seq, 6)
    assert p[gtp.IE_Recovery].restart_counter == restart
    ei = error_indication(teid, IPv4Address(v4), sequence=seq, udp_port=port)
    p = gtp.GTP_U_Header(ei)
    assert (p.gtp_type, p.E, p.S, p.next_ex, p.length) == (26, 1, 1, 0x40, len(ei) - 8)
    assert p[gtp.GTP_UDPPort_ExtensionHeader].udp_port == port
    ies = gtp.GTPErrorIndication(scapy_raw(p[gtp.GTP_UDPPort_ExtensionHeader].payload)).IE_list
    assert teid == ies[0].TEIDI
    assert ies[1].ipv4_address == str(IPv4Address(v4))
    em = gtp.GTP_U_Header(end_marker(teid))
    assert (em.gtp_type, em.teid, em.length, em.E, em.S, em.PN) == (254, teid, 0, 0, 0, 0)
