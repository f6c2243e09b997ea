"""GTPv1-C codec (TS 29.060): golden octets, round trips, errors, and scapy's view of the same.

The golden messages are written out by hand from TS 29.060 §6 and §7.7 (not produced by our
encoder), so a wrong table entry in both decoder and encoder would still be caught.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluidedge.codec import gtpc
from fluidedge.codec.errors import CodecError, EncodeError, MalformedError, TruncatedError
from fluidedge.codec.gtpc import (
    IE_TABLE,
    EndUserAddress,
    GtpcMessage,
    IEType,
    InformationElement,
    MessageType,
)

# Create PDP Context Request as an SGSN (sgsnemu) sends it: seq 1, TEID 0 (§7.3.1).
CREATE_REQUEST = bytes.fromhex(
    "3210003a00000000"
    "0001"
    "00"
    "00"  # header: v1 PT S, type 16, length 58, TEID 0; seq 1
    "020010010000000010"  # IMSI (TV 8, §7.7.2)
    "0f01"  # Selection Mode (TV 1, §7.7.12)
    "1000000011"  # TEID Data I 0x11 (TV 4, §7.7.13)
    "1100000012"  # TEID Control Plane 0x12 (TV 4, §7.7.14)
    "1405"  # NSAPI 5 (TV 1, §7.7.17)
    "800002f121"  # End User Address: IETF, IPv4, dynamic (TLV, §7.7.27)
    "83000908696e7465726e6574"  # APN "internet" (TLV, §7.7.30)
    "850004ac100001"  # GSN Address for signalling 172.16.0.1 (TLV, §7.7.32)
    "850004ac100001"  # GSN Address for user traffic
)
# Create PDP Context Response: cause 128, the GGSN's TEIDs, UE 10.45.0.2 (§7.3.2).
CREATE_RESPONSE = bytes.fromhex(
    "3211002700000012"
    "0001"
    "00"
    "00"  # type 17, length 39, TEID = SGSN's TEID-C 0x12
    "0180"  # Cause: request accepted (§7.7.1)
    "1000000021"  # TEID Data I 0x21
    "1100000022"  # TEID Control Plane 0x22
    "800006f1210a2d0002"  # End User Address: IPv4 10.45.0.2
    "850004ac100002"  # GGSN Address for signalling 172.16.0.2
    "850004ac100002"  # GGSN Address for user traffic
)
DELETE_REQUEST = bytes.fromhex("32140008000000220002000013011405")


def test_golden_create_request() -> None:
    msg = gtpc.decode(CREATE_REQUEST)
    assert msg.message_type == MessageType.CREATE_PDP_CONTEXT_REQUEST
    assert (msg.teid, msg.sequence, msg.npdu) == (0, 1, None)
    assert msg.teid_data_i == 0x11
    assert msg.teid_control == 0x12
    assert msg.nsapi == 5
    assert msg.end_user_address == EndUserAddress(1, 0x21)
    assert msg.gsn_addresses == (bytes([172, 16, 0, 1]),) * 2
    assert msg.first(131) == b"\x08internet"
    assert gtpc.encode(msg) == CREATE_REQUEST


def test_golden_create_response() -> None:
    msg = gtpc.decode(CREATE_RESPONSE)
    assert (msg.message_type, msg.teid, msg.cause) == (17, 0x12, 128)
    assert gtpc.accepted(msg.cause)
    assert (msg.teid_data_i, msg.teid_control) == (0x21, 0x22)
    assert msg.end_user_address == EndUserAddress(1, 0x21, ipv4=bytes([10, 45, 0, 2]))
    assert gtpc.encode(msg) == CREATE_RESPONSE


def test_golden_delete_request() -> None:
    msg = gtpc.decode(DELETE_REQUEST)
    assert (msg.message_type, msg.teid, msg.sequence) == (20, 0x22, 2)
    assert msg.teardown
    assert msg.nsapi == 5
    assert gtpc.encode(msg) == DELETE_REQUEST


def test_end_user_address_shapes() -> None:
    v6 = bytes(range(16))
    assert gtpc.end_user_address(b"\xf1\x57" + v6) == EndUserAddress(1, 0x57, ipv6=v6)
    both = gtpc.end_user_address(b"\xf1\x8d" + b"\x0a\x00\x00\x01" + v6)
    assert (both.ipv4, both.ipv6) == (b"\x0a\x00\x00\x01", v6)
    assert gtpc.end_user_address(b"\xf0\x01") == EndUserAddress(0, 1)  # ETSI PPP: no address
    with pytest.raises(MalformedError):
        gtpc.end_user_address(b"\xf1\x21\x01\x02")
    with pytest.raises(TruncatedError):
        gtpc.end_user_address(b"\xf1")


def test_accepted_causes() -> None:
    assert [c for c in (None, 0, 127, 128, 129, 191, 192, 255) if gtpc.accepted(c)] == [
        128,
        129,
        191,
    ]


@pytest.mark.parametrize(
    ("octets", "error"),
    [
        (b"", TruncatedError),
        (CREATE_REQUEST[:7], TruncatedError),
        (b"\x52" + CREATE_REQUEST[1:], MalformedError),  # version 2 (GTPv2-C)
        (b"\x22" + CREATE_REQUEST[1:], CodecError),  # PT=0: GTP'
        (CREATE_REQUEST[:-1], TruncatedError),  # length runs past the end
        (bytes.fromhex("3210000600000000000100000c01"), CodecError),  # TV 12 is 3 octets
        (bytes.fromhex("3210000600000000000100000700"), CodecError),  # TV 7: no known length
        (bytes.fromhex("32100007000000000001000085ff"), TruncatedError),  # TLV length cut
        (bytes.fromhex("3214000500000000000100001401"), TruncatedError),  # TV runs out
    ],
)
def test_bad_input_raises_codec_errors(octets: bytes, error: type[CodecError]) -> None:
    with pytest.raises(error):
        gtpc.decode(octets)


def test_encode_rejects_what_does_not_fit() -> None:
    with pytest.raises(EncodeError):
        gtpc.encode(GtpcMessage(16, 0, 1, (InformationElement(16, b"\x00"),)))  # TV 16 is 4
    with pytest.raises(EncodeError):
        gtpc.encode(GtpcMessage(16, 0, 1 << 16))
    with pytest.raises(EncodeError):
        gtpc.encode(GtpcMessage(16, 0, 1, (InformationElement(7, b""),)))


def _ie() -> st.SearchStrategy[InformationElement]:
    tv = st.sampled_from(sorted(t for t, s in IE_TABLE.items() if s.length is not None)).flatmap(
        lambda t: st.binary(min_size=IE_TABLE[t].length or 0, max_size=IE_TABLE[t].length or 0).map(
            lambda v: InformationElement(t, v)
        )
    )
    tlv = st.builds(InformationElement, st.integers(128, 255), st.binary(max_size=40))
    return st.one_of(tv, tlv)


messages = st.builds(
    GtpcMessage,
    st.integers(0, 255),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFF),
    st.lists(_ie(), max_size=12).map(tuple),
    st.none() | st.integers(0, 255),
)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_roundtrip(msg: GtpcMessage) -> None:
    octets = gtpc.encode(msg)
    assert gtpc.decode(octets) == msg
    assert gtpc.decode(b"\x00\x00" + octets, 2) == msg


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80))
def test_random_octets_raise_only_codec_errors(octets: bytes) -> None:
    with contextlib.suppress(CodecError):
        gtpc.decode(octets)


@settings(max_examples=300, deadline=None)
@given(messages, st.integers(0, 200), st.integers(0, 255))
def test_corrupted_messages_raise_only_codec_errors(msg: GtpcMessage, at: int, value: int) -> None:
    octets = bytearray(gtpc.encode(msg))
    octets[at % len(octets)] = value
    with contextlib.suppress(CodecError):
        gtpc.decode(bytes(octets))


# ----------------------------------------------------------------------- scapy cross-checks

scapy_gtp = pytest.importorskip("scapy.contrib.gtp")


def test_scapy_reads_our_create_request_the_same() -> None:
    parsed = scapy_gtp.GTPHeader(CREATE_REQUEST)
    assert parsed.gtp_type == 16
    assert parsed.seq == 1
    ies = {type(ie).__name__: ie for ie in parsed.payload.IE_list}
    assert ies["IE_TEIDI"].TEIDI == 0x11
    assert ies["IE_TEICP"].TEICI == 0x12
    assert ies["IE_NSAPI"].NSAPI == 5
    assert [ie.ipv4_address for ie in parsed.payload.IE_list if ie.ietype == 133] == [
        "172.16.0.1",
        "172.16.0.1",
    ]


def test_we_read_scapys_create_response_the_same() -> None:
    response = scapy_gtp.GTPHeader(S=1, seq=7, teid=0x12, gtp_type=17) / (
        scapy_gtp.GTPCreatePDPContextResponse(
            IE_list=[
                scapy_gtp.IE_Cause(CauseValue=128),
                scapy_gtp.IE_TEIDI(TEIDI=0x21),
                scapy_gtp.IE_TEICP(TEICI=0x22),
                scapy_gtp.IE_EndUserAddress(length=6, PDPTypeNumber=0x21, PDPAddress="10.45.0.2"),
                scapy_gtp.IE_GSNAddress(length=4, ipv4_address="172.16.0.2"),
                scapy_gtp.IE_GSNAddress(length=4, ipv4_address="172.16.0.3"),
            ]
        )
    )
    msg = gtpc.decode(bytes(response))
    assert (msg.message_type, msg.teid, msg.sequence, msg.cause) == (17, 0x12, 7, 128)
    assert (msg.teid_data_i, msg.teid_control) == (0x21, 0x22)
    eua = msg.end_user_address
    assert eua is not None
    assert eua.ipv4 == bytes([10, 45, 0, 2])
    assert msg.gsn_addresses == (bytes([172, 16, 0, 2]), bytes([172, 16, 0, 3]))
    assert gtpc.encode(msg) == bytes(response)


def test_tv_lengths_agree_with_scapy() -> None:
    """Every TV IE scapy implements has the value length our table gives it."""
    checked = 0
    for ie_type, cls in scapy_gtp.ietypecls.items():
        if ie_type >= 128 or ie_type not in IE_TABLE:
            continue
        octets = bytes(cls())
        assert octets[0] == ie_type
        assert len(octets) - 1 == IE_TABLE[ie_type].length, cls.__name__
        checked += 1
    assert checked >= 10


def test_ie_types_cover_what_the_tof_reads() -> None:
    for ie_type in IEType:
        assert ie_type in IE_TABLE
