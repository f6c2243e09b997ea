"""Hypothesis round trips for every message and extension header type:
``decode(encode(m)) == m`` and the decoded form re-encodes to the same octets."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluidedge.codec.gtpu import (
    EchoRequest,
    ExtensionHeader,
    GPdu,
    GtpuHeader,
    GtpuMessage,
    decode,
    decode_header,
    encode,
    encode_gpdu,
    peek,
)

from . import strategies as s

MESSAGE_STRATEGIES = {
    "gpdu": s.gpdu(),
    "echo_request": s.echo_request(),
    "echo_response": s.echo_response(),
    "error_indication": s.error_indication(),
    "supported_extension_headers": s.supported_extension_headers(),
    "end_marker": s.end_marker(),
    "generic": s.generic_message(),
}

EXTENSION_STRATEGIES = {
    "pdu_session_dl": s.pdu_session_dl(),
    "pdu_session_ul": s.pdu_session_ul(),
    "udp_port": st.builds(s.UdpPortExtension, s.u(16), s.spare_after(2)),
    "pdcp": st.builds(s.PdcpPduNumber, s.u(16), s.spare_after(2)),
    "long_pdcp": st.builds(s.LongPdcpPduNumber, s.u(18), s.u(6), s.spare_after(3)),
    "service_class": st.builds(s.ServiceClassIndicator, s.u(8), s.spare_after(1)),
    "ran_container": st.builds(
        s.RanContainer, st.sampled_from([0x81, 0x83, 0x84]), s.content_4n_minus_2()
    ),
    "unknown": s.unknown_extension(),
}


def _check_roundtrip(msg: GtpuMessage) -> None:
    wire = encode(msg)
    decoded = decode(wire)
    assert type(decoded) is type(msg)
    assert decoded == msg
    assert decoded.header.length == len(wire) - 8
    assert encode(decoded) == wire
    assert decode_header(wire) == msg.header
    mtype, teid, body, end, qfi = peek(wire)
    assert (mtype, teid, body, end) == (
        msg.header.message_type,
        msg.header.teid,
        decoded.header.header_size,
        len(wire),
    )
    assert qfi == (-1 if msg.header.qfi is None else msg.header.qfi)
    # the same message inside a bigger buffer, at an offset
    assert decode(b"\x01\x02\x03" + wire + b"\xff", 3) == msg


@pytest.mark.parametrize("kind", sorted(MESSAGE_STRATEGIES))
def test_message_roundtrip(kind: str) -> None:
    @settings(max_examples=80, deadline=None)
    @given(MESSAGE_STRATEGIES[kind])
    def check(msg: GtpuMessage) -> None:
        _check_roundtrip(msg)

    check()


@pytest.mark.parametrize("kind", sorted(EXTENSION_STRATEGIES))
def test_extension_roundtrip_in_gpdu(kind: str) -> None:
    @settings(max_examples=100, deadline=None)
    @given(
        EXTENSION_STRATEGIES[kind],
        st.lists(s.extension(), max_size=2),
        s.opt(16),
        st.binary(max_size=64),
    )
    def check(
        ext: ExtensionHeader, others: list[ExtensionHeader], seq: int | None, payload: bytes
    ) -> None:
        extensions = (ext, *others)
        wire = encode_gpdu(0xCAFE, payload, sequence=seq, extensions=extensions)
        msg = decode(wire)
        assert isinstance(msg, GPdu)
        assert msg.header.extensions == extensions
        assert msg.header.sequence == seq
        assert bytes(msg.payload) == payload
        _check_roundtrip(msg)

    check()


@settings(max_examples=200, deadline=None)
@given(s.u(32), st.binary(max_size=300), s.opt(16), s.opt(8))
def test_encode_gpdu_matches_encode(
    teid: int, payload: bytes, seq: int | None, npdu: int | None
) -> None:
    wire = encode_gpdu(teid, payload, sequence=seq, npdu=npdu)
    expected = GPdu(GtpuHeader(teid=teid, sequence=seq, npdu=npdu), payload)
    assert wire == encode(expected)
    assert decode(wire) == expected


def test_decoded_objects_are_genuine_frozen_instances() -> None:
    """The decoder's fast construction must yield real, immutable, hashable instances."""
    wire = encode_gpdu(7, b"x", extensions=(s.PduSessionContainer(1, 9),))
    msg = decode(wire)
    assert type(msg) is GPdu
    assert type(msg.header) is GtpuHeader
    assert type(msg.header.extensions[0]) is s.PduSessionContainer
    with pytest.raises(FrozenInstanceError):
        msg.header.teid = 8  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        msg.header.extensions[0].qfi = 1  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        msg.payload = b""  # type: ignore[misc]
    assert hash(msg.header) == hash(GtpuHeader(teid=7, extensions=(s.PduSessionContainer(1, 9),)))
    assert repr(msg.header).startswith("GtpuHeader(")
    plain = decode(encode_gpdu(9, b"y"))  # the S1-U path builds through other twins
    assert type(plain) is GPdu
    assert type(plain.header) is GtpuHeader
    assert plain == GPdu(GtpuHeader(teid=9), b"y")
    assert hash(plain.header) == hash(GtpuHeader(teid=9))
    with pytest.raises(FrozenInstanceError):
        plain.header.length = 0  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        plain.payload = b""  # type: ignore[misc]
    assert not hasattr(plain.header, "__dict__")


def test_encode_computes_length_and_flags_ignoring_stale_fields() -> None:
    stale = GtpuHeader(message_type=1, length=999, header_size=3, sequence=5)
    wire = encode(EchoRequest(stale))
    assert wire == bytes.fromhex("320100040000000000050000")


@pytest.mark.parametrize(
    "bad",
    [
        GPdu(GtpuHeader(teid=1 << 32), b""),
        GPdu(GtpuHeader(sequence=1 << 16), b""),
        GPdu(GtpuHeader(extensions=(s.PduSessionContainer(1, 64),)), b""),
        GPdu(GtpuHeader(extensions=(s.PduSessionContainer(0, 1, new_ie_flag=True),)), b""),
        GPdu(GtpuHeader(extensions=(s.PduSessionContainer(1, 1, rqi=True),)), b""),
        GPdu(GtpuHeader(extensions=(s.PduSessionContainer(2, 1),)), b""),
        GPdu(GtpuHeader(extensions=(s.RanContainer(0x81, b"abc"),)), b""),
        GPdu(GtpuHeader(extensions=(s.UnknownExtension(0, b"ab"),)), b""),
        GPdu(GtpuHeader(spare_optional=b"\x01\x00\x00\x00"), b""),
        GPdu(GtpuHeader(spare_flags=0x01), b""),
        GPdu(GtpuHeader(spare_flags=0x04, extensions=(s.PdcpPduNumber(1),)), b""),
        GPdu(GtpuHeader(version=2), b""),
        GPdu(GtpuHeader(), bytes(70000)),
        EchoRequest(GtpuHeader(message_type=255)),
        EchoRequest(GtpuHeader(message_type=1), recovery=256),
    ],
)
def test_encode_rejects_values_that_do_not_fit(bad: GtpuMessage) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        encode(bad)


@settings(max_examples=200, deadline=None)
@given(s.u(32), st.binary(max_size=100), st.integers(0, 1), s.u(6), st.booleans())
def test_encode_gpdu_bare_psc_fast_path_matches_encode(
    teid: int, payload: bytes, pdu_type: int, qfi: int, rqi: bool
) -> None:
    psc = s.PduSessionContainer(pdu_type, qfi, rqi=rqi and pdu_type == 0)
    wire = encode_gpdu(teid, payload, extensions=(psc,))
    assert wire == encode(GPdu(GtpuHeader(teid=teid, extensions=(psc,)), payload))
    assert decode(wire) == GPdu(GtpuHeader(teid=teid, extensions=(psc,)), payload)


def test_encode_gpdu_fast_paths_reject_out_of_range() -> None:
    for bad in (
        lambda: encode_gpdu(1 << 32, b""),
        lambda: encode_gpdu(1 << 32, b"", extensions=(s.PduSessionContainer(1, 9),)),
        lambda: encode_gpdu(1, b"", extensions=(s.PduSessionContainer(1, 64),)),
        lambda: encode_gpdu(1, b"", extensions=(s.PduSessionContainer(1, -1),)),
        lambda: encode_gpdu(1, bytes(65536)),
    ):
        with pytest.raises(ValueError):  # noqa: PT011 - range errors of several fields
            bad()
