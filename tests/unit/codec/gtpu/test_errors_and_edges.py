"""Every decode failure names its header and offset; odd but legal inputs are handled."""

from __future__ import annotations

import array
from ipaddress import IPv4Address, IPv6Address

import pytest

from fluidedge.codec.errors import (
    CodecError,
    EncodeError,
    MalformedError,
    TruncatedError,
    UnsupportedError,
)
from fluidedge.codec.gtpu import (
    GTPU_PORT,
    EchoRequest,
    EchoResponse,
    EndMarker,
    ErrorIndication,
    ExtensionType,
    GenericMessage,
    GPdu,
    GtpuHeader,
    MessageType,
    PduSessionContainer,
    UdpPortExtension,
    UnknownExtension,
    decode,
    decode_header,
    echo_request,
    echo_response,
    encode,
    encode_gpdu,
    end_marker,
    error_indication,
    layouts,
    peek,
)

from .golden import load


def _raises(
    data: bytes, cls: type[CodecError], header: str, offset: int, *, offset_arg: int = 0
) -> CodecError:
    with pytest.raises(cls) as info:
        decode(data, offset_arg)
    assert type(info.value) is cls
    assert (info.value.header, info.value.offset) == (header, offset), str(info.value)
    assert f"{header} at offset {offset}" in str(info.value)
    return info.value


@pytest.mark.parametrize("first", [0x10, 0x50, 0x70, 0xF0])
def test_other_gtp_versions_are_unsupported(first: int) -> None:
    err = _raises(bytes((first, 255, 0, 0, 0, 0, 0, 1)), UnsupportedError, "GTP-U header", 0)
    assert "version" in err.reason


def test_gtp_prime_is_unsupported() -> None:
    err = _raises(bytes.fromhex("20ff000000000001"), UnsupportedError, "GTP-U header", 0)
    assert "GTP'" in err.reason


def test_offsets_outside_the_buffer() -> None:
    _raises(b"\x30\xff\x00\x00\x00\x00\x00\x01", MalformedError, "GTP-U header", -1, offset_arg=-1)
    _raises(b"\x30\xff\x00\x00\x00\x00\x00\x01", TruncatedError, "GTP-U header", 9, offset_arg=9)
    with pytest.raises(MalformedError):
        peek(b"\x30" * 20, -3)
    with pytest.raises(MalformedError):
        decode_header(b"\x30" * 20, -3)


@pytest.mark.parametrize("junk", ["not bytes", None, 12, 3.5, object()])
def test_non_buffers_raise_codec_errors(junk: object) -> None:
    for fn in (decode, decode_header, peek):
        with pytest.raises(MalformedError):
            fn(junk)  # type: ignore[arg-type]


def test_released_memoryview_is_a_codec_error() -> None:
    view = memoryview(load("s1u_gpdu_plain"))
    view.release()
    for fn in (decode, decode_header, peek):
        with pytest.raises(MalformedError):
            fn(view)


def test_exotic_memoryviews_decode_like_bytes() -> None:
    wire = load("n3_ul_gpdu_psc_qfi9")
    expected = decode(wire)
    assert len(wire) % 4 == 0
    as_words = memoryview(array.array("I", wire))  # format 'I': len() counts words
    assert decode(as_words) == expected
    two_d = memoryview(wire).cast("B", (len(wire) // 4, 4))
    assert decode(two_d) == expected
    assert decode(bytearray(wire)) == expected
    strided = memoryview(bytes(b for pair in zip(wire, wire, strict=True) for b in pair))[::2]
    assert decode(strided) == expected
    assert peek(as_words) == peek(wire)
    assert decode_header(strided) == expected.header


def test_optional_octets_must_fit_the_length_field() -> None:
    # S=1 but the length field says 2 octets follow the mandatory header
    _raises(bytes.fromhex("320100020000000000010000"), MalformedError, "GTP-U optional fields", 8)


def test_long_pdcp_of_length_one_is_malformed() -> None:
    wire = bytes.fromhex("34ff0008 00000001 000000 82 01 0102 00".replace(" ", ""))
    _raises(wire, MalformedError, "GTP-U Long PDCP PDU Number extension", 12)


@pytest.mark.parametrize(
    ("content", "pos"),
    [
        ("0880", 3),  # DL, QMP: 8-octet time stamp, none there; PPP: PPI octet missing too
        ("0400", 3),  # DL, SNP without the 3 octets
        ("1800", 3),  # UL, QMP: 24 octets of time stamps missing
        ("1080", 3),  # UL, N3/N9 delay result missing
    ],
)
def test_pdu_session_container_flags_beyond_its_length(content: str, pos: int) -> None:
    wire = bytes.fromhex("34ff0008 00000001 000000 85 01".replace(" ", "") + content + "00")
    err = _raises(wire, MalformedError, "GTP-U PDU Session Container", 12 + pos)
    assert "octets" in err.reason


def test_error_indication_needs_its_mandatory_ies() -> None:
    no_peer = bytes.fromhex("321a0009 00000000 00000000 10 00000100".replace(" ", ""))
    err = _raises(no_peer, MalformedError, "GTP-U Error Indication", 12)
    assert "133" in err.reason
    no_teid = bytes.fromhex("321a000b 00000000 00000000 85 0004 c6120001".replace(" ", ""))
    err = _raises(no_teid, MalformedError, "GTP-U Error Indication", 12)
    assert "TEID Data I" in err.reason
    bad_len = bytes.fromhex(
        "321a000f 00000000 00000000 10 00000100 85 0003 c61200".replace(" ", "")
    )
    _raises(bad_len, MalformedError, "GTP-U IE 133 (GTP-U Peer Address)", 17)


def test_echo_response_needs_its_recovery_ie() -> None:
    """Recovery is mandatory in an Echo Response (TS 29.281 §7.2.2), optional in a request."""
    bare = bytes.fromhex("32020004 00000000 12340000".replace(" ", ""))
    err = _raises(bare, MalformedError, "GTP-U Echo Response", 12)
    assert "Recovery (14)" in err.reason
    private_only = bytes.fromhex("32020009 00000000 12340000 ff 0002 abcd".replace(" ", ""))
    _raises(private_only, MalformedError, "GTP-U Echo Response", 12)
    request = bytes.fromhex("32010004 00000000 12340000".replace(" ", ""))
    assert isinstance(decode(request), EchoRequest)
    with pytest.raises(EncodeError, match="Recovery"):
        encode(EchoResponse(GtpuHeader(message_type=2, sequence=1), recovery=None))


def test_supported_extension_headers_needs_its_list() -> None:
    wire = bytes.fromhex("321f0004 00000000 00000000".replace(" ", ""))
    _raises(wire, MalformedError, "GTP-U Supported Extension Headers Notification", 12)


def test_ie_errors_name_the_ie_and_offset() -> None:
    unknown_tv = bytes.fromhex("32010006 00000000 00010000 03 00".replace(" ", ""))
    err = _raises(unknown_tv, UnsupportedError, "GTP-U IE 3", 12)
    assert "TV" in err.reason
    overrun = bytes.fromhex("32010008 00000000 00010000 ff 0009 0102".replace(" ", ""))
    _raises(overrun, MalformedError, "GTP-U IE 255", 12)
    half_tlv = bytes.fromhex("32010006 00000000 00010000 ff 00".replace(" ", ""))
    _raises(half_tlv, MalformedError, "GTP-U IE 255", 12)
    half_list = bytes.fromhex("321f0005 00000000 00010000 8d".replace(" ", ""))
    _raises(half_list, MalformedError, "GTP-U IE 141", 12)
    recovery_cut = bytes.fromhex("32020005 00000000 00010000 0e".replace(" ", ""))
    _raises(recovery_cut, MalformedError, "GTP-U IE 14", 12)


def test_repeated_and_foreign_ies_are_kept_in_order() -> None:
    # Echo Response with two Recovery IEs, a TEID Data I and an unknown TLV type 200
    wire = bytes.fromhex(
        "32020011 00000000 00070000 0e 05 0e 06 10 01020304 c8 0001 aa".replace(" ", "")
    )
    msg = decode(wire)
    assert isinstance(msg, EchoResponse)
    assert msg.recovery == 5
    assert [(ie.ie_type, ie.value) for ie in msg.extra_ies] == [
        (14, b"\x06"),
        (16, bytes.fromhex("01020304")),
        (200, b"\xaa"),
    ]
    assert msg.private_extensions == ()
    assert encode(msg) == wire


def test_ies_out_of_order_are_written_back_sorted() -> None:
    wire = bytes.fromhex("321a0010 00000000 00000000 85 0004 c6120001 10 00000100".replace(" ", ""))
    msg = decode(wire)
    assert isinstance(msg, ErrorIndication)
    assert (msg.teid_data_i, msg.peer_address) == (0x100, IPv4Address("198.18.0.1"))
    assert encode(msg) == load("error_indication_ipv4")


def test_peek_reports_the_first_decodable_qfi() -> None:
    wire = encode_gpdu(
        3,
        b"\x45",
        extensions=(
            UnknownExtension(0x85, bytes.fromhex("2007")),  # PDU type 2: not a QFI we know
            UdpPortExtension(1),
            PduSessionContainer(0, 33),
            PduSessionContainer(1, 44),
        ),
    )
    assert peek(wire)[4] == 33
    assert decode_header(wire).qfi == 33


def test_builders() -> None:
    req = decode(echo_request(0xBEEF))
    assert isinstance(req, EchoRequest)
    assert (req.header.sequence, req.header.teid, req.header.message_type) == (0xBEEF, 0, 1)
    resp = decode(echo_response(req))
    assert isinstance(resp, EchoResponse)
    assert (resp.header.sequence, resp.recovery) == (0xBEEF, 0)
    ei = decode(error_indication(77, IPv6Address("2001:db8::7"), sequence=3, udp_port=40000))
    assert isinstance(ei, ErrorIndication)
    assert (ei.teid_data_i, ei.peer_address, ei.udp_port) == (77, IPv6Address("2001:db8::7"), 40000)
    assert (ei.header.teid, ei.header.sequence) == (0, 3)
    assert error_indication(77, "2001:db8::7", sequence=3, udp_port=40000) == encode(ei)
    with pytest.raises(ValueError):  # noqa: PT011 - ipaddress's own message
        error_indication(77, "not-an-address")
    assert decode(end_marker(5)) == EndMarker(GtpuHeader(message_type=254, teid=5))
    assert end_marker(5) == load("end_marker")[:4] + (5).to_bytes(4, "big")


def test_generic_message_uses_its_header_type() -> None:
    msg = GenericMessage(GtpuHeader(message_type=42, teid=7), bytes.fromhex("010203"))
    assert encode(msg) == load("generic_message")


def test_gpdu_payload_is_exactly_the_tpdu() -> None:
    wire = load("gpdu_seq_npdu") + b"\x00\x00\x00\x00"  # trailing Ethernet padding
    msg = decode(wire)
    assert isinstance(msg, GPdu)
    assert len(msg.payload) == msg.header.length - 4 == msg.header.body_length
    assert msg.payload.obj is wire


def test_constants_and_layouts() -> None:
    assert GTPU_PORT == 2152
    assert MessageType.G_PDU == 255
    assert ExtensionType.PDU_SESSION_CONTAINER == 0x85
    assert layouts.HEADER.size == 8
    assert layouts.OPTIONAL.size == 4
    assert layouts.LONG_PDCP_PDU_NUMBER.size == 6
    rows = [row for layout in layouts.ALL_LAYOUTS for row in layout.describe()]
    assert any("TS 29.281" in r or "§5" in r for r in rows)
    assert len(rows) == sum(len(layout.fields) for layout in layouts.ALL_LAYOUTS)


@pytest.mark.parametrize(
    "hexdata",
    [
        # found by bench/fuzz_gtpu.py --cases 1000000 --seed 7: IEs out of type order
        "3202002100000000123400000e00ff00050001aabb0585001020010db8000000000000000000000001",
        "3202001000000000123400000e00ff00050001aabb300ead",
    ],
)
def test_out_of_order_ies_decode_to_their_sorted_value(hexdata: str) -> None:
    msg = decode(bytes.fromhex(hexdata))
    assert isinstance(msg, EchoResponse)
    types = [ie.ie_type for ie in msg.extra_ies]
    assert types == sorted(types)
    assert decode(encode(msg)) == msg
    assert encode(decode(encode(msg))) == encode(msg)
