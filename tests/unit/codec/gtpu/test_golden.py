"""Golden fixtures: hand-assembled octets (tests/fixtures/gtpu) decode to the expected fields,
and every decodable one re-encodes byte for byte."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from fluidedge.codec.errors import CodecError, MalformedError, TruncatedError, UnsupportedError
from fluidedge.codec.gtpu import (
    EchoRequest,
    EchoResponse,
    EndMarker,
    ErrorIndication,
    GenericMessage,
    GPdu,
    GtpuHeader,
    GtpuMessage,
    InformationElement,
    LongPdcpPduNumber,
    PdcpPduNumber,
    PduSessionContainer,
    RanContainer,
    ServiceClassIndicator,
    SupportedExtensionHeadersNotification,
    UdpPortExtension,
    UnknownExtension,
    decode,
    decode_header,
    encode,
    peek,
)

from .golden import load, names

ICMP4 = bytes.fromhex("4500001c000100004001eeb8c6120001c61200020800f7bc00420001")
UDP6 = bytes.fromhex(
    "600000000008114020010db800000000000000000000000120010db8"
    "0000000000000000000000029c400035000807f4"
)
UL9 = PduSessionContainer(pdu_type=1, qfi=9)


def _h(message_type: int, teid: int = 0, **kw: object) -> GtpuHeader:
    return GtpuHeader(message_type=message_type, teid=teid, **kw)  # type: ignore[arg-type]


# name -> (expected message, expected length field, expected header_size)
EXPECTED: dict[str, tuple[GtpuMessage, int, int]] = {
    "s1u_gpdu_plain": (GPdu(_h(255, 0x1234), ICMP4), 28, 8),
    "n3_ul_gpdu_psc_qfi9": (GPdu(_h(255, 1, extensions=(UL9,)), ICMP4), 36, 16),
    "n3_dl_gpdu_psc_qfi5_rqi_ppi3": (
        GPdu(_h(255, 2, extensions=(PduSessionContainer(0, 5, rqi=True, ppi=3),)), ICMP4),
        40,
        20,
    ),
    "n3_dl_psc_all_fields": (
        GPdu(
            _h(
                255,
                3,
                extensions=(
                    PduSessionContainer(
                        0,
                        1,
                        ppi=1,
                        dl_sending_time_stamp=0x0102030405060708,
                        qfi_sequence_number=0x0A0B0C,
                        mbs_qfi_sequence_number=0x11223344,
                    ),
                ),
            ),
            UDP6,
        ),
        72,
        32,
    ),
    "n3_ul_psc_all_fields": (
        GPdu(
            _h(
                255,
                4,
                extensions=(
                    PduSessionContainer(
                        1,
                        63,
                        ul_time_stamps=(0x1111111111111111, 0x2222222222222222, 0x3333333333333333),
                        dl_delay_result=0xDDDDDD01,
                        ul_delay_result=0xEEEEEE02,
                        qfi_sequence_number=0x000102,
                        n3n9_delay_result=0x0A0B0C0D,
                    ),
                ),
            ),
            ICMP4,
        ),
        76,
        56,
    ),
    "gpdu_seq_npdu": (GPdu(_h(255, 0x1234, sequence=0x0102, npdu=7), ICMP4), 32, 12),
    "ext_chain_all": (
        GPdu(
            _h(
                255,
                5,
                sequence=None,
                extensions=(
                    PdcpPduNumber(0x1234),
                    LongPdcpPduNumber(0x2FFFF),
                    ServiceClassIndicator(7),
                    RanContainer(0x81, bytes.fromhex("aabbccddeeff")),
                    RanContainer(0x84, bytes.fromhex("1122")),
                    UdpPortExtension(2152),
                ),
            ),
            ICMP4,
        ),
        64,
        44,
    ),
    "echo_request_seq": (EchoRequest(_h(1, sequence=0x1234)), 4, 12),
    "echo_response_recovery": (EchoResponse(_h(2, sequence=0x1234), recovery=0), 6, 12),
    "echo_response_private_ext": (
        EchoResponse(
            _h(2, sequence=0x1234),
            recovery=0,
            extra_ies=(InformationElement(255, bytes.fromhex("0001aabbcc")),),
        ),
        14,
        12,
    ),
    "error_indication_ipv4": (
        ErrorIndication(_h(26, sequence=0), 0x100, IPv4Address("198.18.0.1")),
        16,
        12,
    ),
    "error_indication_ipv4_udp_port": (
        ErrorIndication(
            _h(26, sequence=0, extensions=(UdpPortExtension(2152),)),
            0x100,
            IPv4Address("198.18.0.1"),
        ),
        20,
        16,
    ),
    "error_indication_ipv6": (
        ErrorIndication(_h(26, sequence=0), 0x100, IPv6Address("2001:db8::1")),
        28,
        12,
    ),
    "supported_ext_notif": (
        SupportedExtensionHeadersNotification(_h(31, sequence=0), (0x40, 0x85, 0xC0)),
        9,
        12,
    ),
    "end_marker": (EndMarker(_h(254, 9)), 0, 8),
    "unknown_optional_ext": (
        GPdu(
            _h(
                255,
                1,
                extensions=(
                    UnknownExtension(0x03, bytes.fromhex("abcd")),
                    UnknownExtension(0x41, bytes.fromhex("ef01")),
                    UL9,
                ),
            ),
            ICMP4,
        ),
        44,
        24,
    ),
    "unknown_endpoint_ext": (
        GPdu(_h(255, 1, extensions=(UnknownExtension(0xA0, bytes.fromhex("abcd")),)), ICMP4),
        36,
        16,
    ),
    "generic_message": (GenericMessage(_h(42, 7), bytes.fromhex("010203")), 3, 8),
    "psc_unknown_pdu_type": (
        GPdu(_h(255, 1, extensions=(UnknownExtension(0x85, bytes.fromhex("2009")),)), ICMP4),
        36,
        16,
    ),
    "spare_bits_kept": (
        GPdu(_h(255, 1, spare_flags=0x0C, spare_optional=bytes.fromhex("abcd0000")), ICMP4),
        32,
        12,
    ),
}

# name -> (error class, header named in the error, offset)
REJECTED: dict[str, tuple[type[CodecError], str, int]] = {
    "unknown_required_ext_11": (UnsupportedError, "GTP-U extension header 0xe1", 16),
    "ext_length_zero": (MalformedError, "GTP-U extension header 0x85", 12),
    "ext_past_length_field": (MalformedError, "GTP-U extension header 0x85", 12),
}


def test_every_fixture_has_an_expectation() -> None:
    assert set(names()) == set(EXPECTED) | set(REJECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_golden_decodes_to_expected_fields(name: str) -> None:
    wire = load(name)
    expected, length, header_size = EXPECTED[name]
    msg = decode(wire)
    assert type(msg) is type(expected)
    assert msg == expected
    assert msg.header.length == length == len(wire) - 8
    assert msg.header.header_size == header_size
    assert decode_header(wire) == msg.header
    mtype, teid, body, end, qfi = peek(wire)
    assert (mtype, teid, body, end) == (
        expected.header.message_type,
        expected.header.teid,
        header_size,
        len(wire),
    )
    assert qfi == (expected.header.qfi if expected.header.qfi is not None else -1)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_golden_reencodes_byte_identical(name: str) -> None:
    wire = load(name)
    assert encode(decode(wire)) == wire
    # and from the expected fields alone, without anything the decoder kept
    assert encode(EXPECTED[name][0]) == wire


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_golden_at_an_offset_and_with_trailing_bytes(name: str) -> None:
    wire = load(name)
    framed = b"\xee" * 42 + wire + b"\x00" * 6  # e.g. behind Ethernet/IP/UDP, Ethernet padding
    msg = decode(framed, 42)
    assert msg == EXPECTED[name][0]
    assert encode(msg) == wire


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_golden_rejected_with_header_and_offset(name: str) -> None:
    wire = load(name)
    cls, header, offset = REJECTED[name]
    for fn in (decode, decode_header, peek):
        with pytest.raises(cls) as info:
            fn(wire)
        assert type(info.value) is cls
        assert info.value.header == header
        assert info.value.offset == offset
        with pytest.raises(cls) as info:
            fn(b"\x00" * 14 + wire, 14)
        assert info.value.offset == offset + 14


def test_unknown_required_ext_error_says_why() -> None:
    with pytest.raises(UnsupportedError) as info:
        decode(load("unknown_required_ext_11"))
    assert "0xe1" in str(info.value)
    assert "offset 16" in str(info.value)
    assert "comprehension" in info.value.reason


# --- truncation at each header boundary ---------------------------------------------------

# name -> [(cut length, header named, offset)]
BOUNDARIES: dict[str, list[tuple[int, str, int]]] = {
    "s1u_gpdu_plain": [
        (0, "GTP-U header", 0),
        (7, "GTP-U header", 0),
        (8, "GTP-U message body", 8),
        (35, "GTP-U message body", 8),
    ],
    "n3_ul_gpdu_psc_qfi9": [
        (8, "GTP-U optional fields", 8),
        (11, "GTP-U optional fields", 8),
        (12, "GTP-U extension header 0x85", 12),
        (15, "GTP-U extension header 0x85", 12),
        (16, "GTP-U message body", 16),
    ],
    "ext_chain_all": [
        (12, "GTP-U extension header 0xc0", 12),
        (16, "GTP-U extension header 0x82", 16),
        (23, "GTP-U extension header 0x82", 16),
        (24, "GTP-U extension header 0x20", 24),
        (28, "GTP-U extension header 0x81", 28),
        (36, "GTP-U extension header 0x84", 36),
        (40, "GTP-U extension header 0x40", 40),
        (44, "GTP-U message body", 44),
    ],
    "echo_response_recovery": [(12, "GTP-U message body", 12), (13, "GTP-U message body", 12)],
    "error_indication_ipv6": [(12, "GTP-U message body", 12), (20, "GTP-U message body", 12)],
}


@pytest.mark.parametrize(
    ("name", "cut", "header", "offset"),
    [(n, c, h, o) for n, cuts in BOUNDARIES.items() for c, h, o in cuts],
)
def test_truncated_at_boundary(name: str, cut: int, header: str, offset: int) -> None:
    wire = load(name)[:cut]
    with pytest.raises(TruncatedError) as info:
        decode(wire)
    assert (info.value.header, info.value.offset) == (header, offset)
    with pytest.raises(TruncatedError) as info:
        peek(wire)
    assert (info.value.header, info.value.offset) == (header, offset)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_truncation_is_a_truncated_error(name: str) -> None:
    wire = load(name)
    for cut in range(len(wire)):
        with pytest.raises(TruncatedError):
            decode(wire[:cut])
        with pytest.raises(TruncatedError):
            peek(wire[:cut])
