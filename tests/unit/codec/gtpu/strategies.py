"""Hypothesis strategies for every GTP-U message and extension header type.

They produce values in the codec's canonical form (what the decoder returns), so that
``decode(encode(x)) == x`` must hold exactly: sorted extra IEs, spare octets that are not the
encoder's own zero padding, flags implied by fields.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from hypothesis import strategies as st

from fluidedge.codec.gtpu import (
    EchoRequest,
    EchoResponse,
    EndMarker,
    ErrorIndication,
    ExtensionHeader,
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
)

KNOWN_EXT_TYPES = {0x20, 0x40, 0x81, 0x82, 0x83, 0x84, 0x85, 0xC0}
KNOWN_MESSAGE_TYPES = {1, 2, 26, 31, 254, 255}


def u(bits: int) -> st.SearchStrategy[int]:
    return st.integers(0, (1 << bits) - 1)


def opt(bits: int) -> st.SearchStrategy[int | None]:
    return st.none() | u(bits)


@st.composite
def spare_after(draw: st.DrawFn, used: int) -> bytes:
    """Octets after ``used`` decoded content octets, in canonical form.

    Either empty (the encoder pads with zeros) or a run that ends exactly at a 4n-2 boundary
    and is not just the encoder's zero padding.
    """
    if draw(st.booleans()):
        return b""
    pad = -(used + 2) % 4
    extra = draw(st.integers(0, 2)) * 4
    spare = bytearray(draw(st.binary(min_size=pad + extra, max_size=pad + extra)))
    if not spare:
        spare = bytearray(draw(st.binary(min_size=4, max_size=4)))
    if len(spare) == pad and not any(spare):
        spare[-1] = draw(st.integers(1, 255))
    return bytes(spare)


def content_4n_minus_2(max_units: int = 6) -> st.SearchStrategy[bytes]:
    return st.integers(1, max_units).flatmap(
        lambda n: st.binary(min_size=4 * n - 2, max_size=4 * n - 2)
    )


@st.composite
def pdu_session_dl(draw: st.DrawFn) -> PduSessionContainer:
    ppi = draw(opt(3))
    ts = draw(opt(64))
    sn = draw(opt(24))
    msn = draw(opt(32))
    used = (
        2 + (ppi is not None) + 8 * (ts is not None) + 3 * (sn is not None) + 4 * (msn is not None)
    )
    return PduSessionContainer(
        0,
        draw(u(6)),
        rqi=draw(st.booleans()),
        ppi=ppi,
        dl_sending_time_stamp=ts,
        qfi_sequence_number=sn,
        mbs_qfi_sequence_number=msn,
        spare_bits=draw(u(1)),
        ppi_spare=draw(u(5)) if ppi is not None else 0,
        spare=draw(spare_after(used)),
    )


@st.composite
def pdu_session_ul(draw: st.DrawFn) -> PduSessionContainer:
    stamps = draw(st.none() | st.tuples(u(64), u(64), u(64)))
    dl = draw(opt(32))
    ul = draw(opt(32))
    sn = draw(opt(24))
    n3n9 = draw(opt(32))
    used = (
        2
        + 24 * (stamps is not None)
        + 4 * (dl is not None)
        + 4 * (ul is not None)
        + 3 * (sn is not None)
        + 4 * (n3n9 is not None)
    )
    return PduSessionContainer(
        1,
        draw(u(6)),
        ul_time_stamps=stamps,
        dl_delay_result=dl,
        ul_delay_result=ul,
        qfi_sequence_number=sn,
        n3n9_delay_result=n3n9,
        new_ie_flag=draw(st.booleans()),
        spare=draw(spare_after(used)),
    )


def unknown_extension() -> st.SearchStrategy[UnknownExtension]:
    # comprehension bits 00, 01 and 10: forwarded by intermediate nodes (TS 29.281 §5.2.1)
    optional_types = st.integers(1, 0xBF).filter(lambda t: t not in KNOWN_EXT_TYPES)
    other_pdu_type = st.tuples(st.integers(2, 15), content_4n_minus_2()).map(
        lambda tc: UnknownExtension(0x85, bytes((tc[0] << 4 | tc[1][0] & 0x0F,)) + tc[1][1:])
    )
    return st.builds(UnknownExtension, optional_types, content_4n_minus_2()) | other_pdu_type


def extension() -> st.SearchStrategy[ExtensionHeader]:
    return st.one_of(
        pdu_session_dl(),
        pdu_session_ul(),
        st.builds(UdpPortExtension, u(16), spare_after(2)),
        st.builds(PdcpPduNumber, u(16), spare_after(2)),
        st.builds(LongPdcpPduNumber, u(18), u(6), spare_after(3)),
        st.builds(ServiceClassIndicator, u(8), spare_after(1)),
        st.builds(RanContainer, st.sampled_from([0x81, 0x83, 0x84]), content_4n_minus_2()),
        unknown_extension(),
    )


@st.composite
def header(draw: st.DrawFn, message_type: int) -> GtpuHeader:
    sequence = draw(opt(16))
    npdu = draw(opt(8))
    extensions = tuple(draw(st.lists(extension(), max_size=3)))
    spare_flags = draw(st.sampled_from([0, 0x08]))
    if not extensions and draw(st.booleans()):
        spare_flags |= 0x04  # E=1 followed by next type 0
    e_flag = bool(extensions) or bool(spare_flags & 0x04)
    spare_optional = b""
    if (e_flag or sequence is not None or npdu is not None) and draw(st.booleans()):
        raw = bytearray(draw(st.binary(min_size=4, max_size=4)))
        if sequence is not None:
            raw[0:2] = b"\x00\x00"
        if npdu is not None:
            raw[2] = 0
        if e_flag:
            raw[3] = 0
        spare_optional = bytes(raw) if any(raw) else b""
    return GtpuHeader(
        message_type=message_type,
        teid=draw(u(32)),
        sequence=sequence,
        npdu=npdu,
        extensions=extensions,
        spare_flags=spare_flags,
        spare_optional=spare_optional,
    )


@st.composite
def extra_ies(draw: st.DrawFn, exclude: frozenset[int]) -> tuple[InformationElement, ...]:
    """IEs a message keeps verbatim, sorted by type as the encoder writes them."""
    one = st.one_of(
        st.builds(InformationElement, st.just(16), st.binary(min_size=4, max_size=4)),
        st.builds(InformationElement, st.just(14), st.binary(min_size=1, max_size=1)),
        st.builds(InformationElement, st.just(141), st.binary(max_size=20)),
        st.builds(InformationElement, st.integers(128, 255), st.binary(max_size=40)),
    ).filter(lambda ie: ie.ie_type not in exclude)
    ies = draw(st.lists(one, max_size=3))
    return tuple(sorted(ies, key=lambda ie: ie.ie_type))


def gpdu() -> st.SearchStrategy[GPdu]:
    return st.builds(GPdu, header(255), st.binary(max_size=200))


def echo_request() -> st.SearchStrategy[EchoRequest]:
    return st.builds(EchoRequest, header(1), opt(8), extra_ies(frozenset({14})))


def echo_response() -> st.SearchStrategy[EchoResponse]:
    return st.builds(EchoResponse, header(2), u(8), extra_ies(frozenset({14})))


def peer_address() -> st.SearchStrategy[IPv4Address | IPv6Address]:
    return st.builds(IPv4Address, u(32)) | st.builds(IPv6Address, u(128))


def error_indication() -> st.SearchStrategy[ErrorIndication]:
    return st.builds(
        ErrorIndication, header(26), u(32), peer_address(), extra_ies(frozenset({16, 133}))
    )


def supported_extension_headers() -> st.SearchStrategy[SupportedExtensionHeadersNotification]:
    return st.builds(
        SupportedExtensionHeadersNotification,
        header(31),
        st.lists(u(8), max_size=20).map(tuple),
        extra_ies(frozenset({141})),
    )


def end_marker() -> st.SearchStrategy[EndMarker]:
    return st.builds(EndMarker, header(254), extra_ies(frozenset()))


def generic_message() -> st.SearchStrategy[GenericMessage]:
    other_type = u(8).filter(lambda t: t not in KNOWN_MESSAGE_TYPES)
    return other_type.flatmap(
        lambda t: st.builds(GenericMessage, header(t), st.binary(max_size=100))
    )


def message() -> st.SearchStrategy[GtpuMessage]:
    return st.one_of(
        gpdu(),
        echo_request(),
        echo_response(),
        error_indication(),
        supported_extension_headers(),
        end_marker(),
        generic_message(),
    )
