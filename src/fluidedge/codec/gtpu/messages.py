"""GTP-U messages (TS 29.281 §7) and their information elements (§8): decode and encode.

A G-PDU's T-PDU is returned as a ``memoryview`` slice of the input (zero-copy); signalling
messages are rare and small, so their IEs are copied into ``bytes``/ints. IEs other than the
ones a message's fields hold (Private Extension, unknown TLV types, repeats) are kept in
``extra_ies``, sorted by type (stably); the encoder writes all IEs sorted by type (the order
TS 29.281 §7.1 prescribes), so a decoded valid message re-encodes to the same octets, and one
whose IEs arrived out of order decodes to the same value as its (sorted) re-encoding.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, Union

from fluidedge.codec.errors import EncodeError, MalformedError, TruncatedError, UnsupportedError
from fluidedge.codec.gtpu._fastbuild import check_twin, fast_constructor
from fluidedge.codec.gtpu.constants import (
    TV_IE_VALUE_LENGTHS,
    ExtensionType,
    IEType,
    MessageType,
)
from fluidedge.codec.gtpu.extensions import ExtensionHeader, PduSessionContainer, UdpPortExtension
from fluidedge.codec.gtpu.header import (
    PLAIN_FLAGS,
    GtpuHeader,
    _PlainHeaderTwin,
    _unpack_mandatory,
    as_bytes_view,
    decode_header,
    encode_header,
)

_U32 = struct.Struct("!I")
_TLV = struct.Struct("!BH")
_G_PDU = int(MessageType.G_PDU)  # plain ints: the fast paths compare, store and pack them
_PSC = int(ExtensionType.PDU_SESSION_CONTAINER)


@dataclass(frozen=True, slots=True)
class InformationElement:
    """One IE as on the wire: ``value`` without type and length octets."""

    ie_type: int
    value: bytes


@dataclass(frozen=True, slots=True)
class GPdu:
    """G-PDU (255): a user packet (T-PDU) in a tunnel.

    When decoded, ``payload`` is a ``memoryview`` of the input (zero-copy): it keeps the input
    alive, follows later writes to a ``bytearray`` input, blocks resizing that bytearray while
    it exists, and makes the message unhashable if the input is writable. ``bytes(payload)``
    takes a copy when any of that matters.
    """

    header: GtpuHeader
    payload: memoryview | bytes


@dataclass(frozen=True, slots=True)
class EchoRequest:
    """Echo Request (1, TS 29.281 §7.2.1). ``recovery`` is IE 14 if present."""

    header: GtpuHeader
    recovery: int | None = None
    extra_ies: tuple[InformationElement, ...] = ()

    @property
    def private_extensions(self) -> tuple[bytes, ...]:
        return _private(self.extra_ies)


@dataclass(frozen=True, slots=True)
class EchoResponse:
    """Echo Response (2, TS 29.281 §7.2.2). Recovery (IE 14) is mandatory; its restart counter
    is 0 for GTP-U. A response without it does not decode (MalformedError) and ``recovery=None``
    does not encode (EncodeError), like the other messages' missing mandatory IEs."""

    header: GtpuHeader
    recovery: int | None = 0
    extra_ies: tuple[InformationElement, ...] = ()

    @property
    def private_extensions(self) -> tuple[bytes, ...]:
        return _private(self.extra_ies)


@dataclass(frozen=True, slots=True)
class ErrorIndication:
    """Error Indication (26, TS 29.281 §7.3.1): the peer received a G-PDU for an unknown TEID.

    ``teid_data_i`` (IE 16) is the TEID that was not found, ``peer_address`` (IE 133) the
    address of the node sending this indication.
    """

    header: GtpuHeader
    teid_data_i: int
    peer_address: IPv4Address | IPv6Address
    extra_ies: tuple[InformationElement, ...] = ()

    @property
    def private_extensions(self) -> tuple[bytes, ...]:
        return _private(self.extra_ies)

    @property
    def udp_port(self) -> int | None:
        """Source port of the offending G-PDU if the UDP Port extension header carries it."""
        for ext in self.header.extensions:
            if isinstance(ext, UdpPortExtension):
                return ext.port
        return None


@dataclass(frozen=True, slots=True)
class SupportedExtensionHeadersNotification:
    """Supported Extension Headers Notification (31, TS 29.281 §7.3.2), IE 141."""

    header: GtpuHeader
    extension_types: tuple[int, ...]
    extra_ies: tuple[InformationElement, ...] = ()


@dataclass(frozen=True, slots=True)
class EndMarker:
    """End Marker (254, TS 29.281 §7.3.3): last packet on a path before a handover switch."""

    header: GtpuHeader
    extra_ies: tuple[InformationElement, ...] = ()


@dataclass(frozen=True, slots=True)
class GenericMessage:
    """A message type this codec does not interpret; its body is kept as is."""

    header: GtpuHeader
    body: bytes


GtpuMessage = Union[  # noqa: UP007 - a runtime alias others import and isinstance against
    GPdu,
    EchoRequest,
    EchoResponse,
    ErrorIndication,
    SupportedExtensionHeadersNotification,
    EndMarker,
    GenericMessage,
]


def _private(ies: tuple[InformationElement, ...]) -> tuple[bytes, ...]:
    return tuple(ie.value for ie in ies if ie.ie_type == IEType.PRIVATE_EXTENSION)


# --- decoding ------------------------------------------------------------------------------


class _GPduTwin:
    """Mutable twin of :class:`GPdu` for the decoder's hot path (see ``_fastbuild``)."""

    __slots__ = GPdu.__slots__  # same names, same order

    def __init__(self, header: GtpuHeader, payload: memoryview) -> None:
        self.header = header
        self.payload = payload


check_twin(_GPduTwin, GPdu)
_build_gpdu = fast_constructor(GPdu)


def decode(buf: bytes | bytearray | memoryview, offset: int = 0) -> GtpuMessage:
    """Decode the GTP-U message at ``offset`` (trailing bytes after it are ignored).

    The length field must fit in the buffer. Raises only
    :class:`~fluidedge.codec.errors.CodecError` subclasses, whatever the input.
    """
    if type(buf) is not bytes:
        buf = as_bytes_view(buf)
    size = len(buf)
    if offset >= 0 and size - offset >= 8:
        flags, message_type, length, teid = _unpack_mandatory(buf, offset)
        if flags == PLAIN_FLAGS and message_type == _G_PDU:
            end = offset + 8 + length
            if end > size:
                _short(size, offset, length, offset + 8)
            h: Any = _PlainHeaderTwin(_G_PDU, length, teid)
            h.__class__ = GtpuHeader
            msg: Any = _GPduTwin(h, memoryview(buf)[offset + 8 : end])
            msg.__class__ = GPdu
            return msg  # type: ignore[no-any-return]
    header = decode_header(buf, offset)
    body_start = offset + header.header_size
    end = offset + 8 + header.length
    if end > size:
        _short(size, offset, header.length, body_start)
    if header.message_type == _G_PDU:
        return _build_gpdu(header, memoryview(buf)[body_start:end])
    return _decode_signalling(header, memoryview(buf), body_start, end)


def _short(size: int, offset: int, length: int, body: int) -> None:
    raise TruncatedError(
        "GTP-U message body",
        body,
        f"length field says {length} bytes after the mandatory header, "
        f"buffer holds {size - offset - 8}",
    )


# Plain ints: reading an IntEnum member costs ~0.1 µs on CPython 3.11.
_RECOVERY = int(IEType.RECOVERY)
_TEID_DATA_I = int(IEType.TEID_DATA_I)
_PEER_ADDRESS = int(IEType.GTPU_PEER_ADDRESS)
_EXT_TYPE_LIST = int(IEType.EXTENSION_HEADER_TYPE_LIST)
_ECHO_REQUEST = int(MessageType.ECHO_REQUEST)
_ECHO_RESPONSE = int(MessageType.ECHO_RESPONSE)
_ERROR_INDICATION = int(MessageType.ERROR_INDICATION)
_SUPPORTED_EXT = int(MessageType.SUPPORTED_EXTENSION_HEADERS_NOTIFICATION)
_TV_LENGTHS = {int(t): n for t, n in TV_IE_VALUE_LENGTHS.items()}


def _decode_ies(view: memoryview, pos: int, end: int) -> list[tuple[int, int, bytes]]:
    """``(offset, type, value)`` of every IE in ``view[pos:end]``."""
    ies: list[tuple[int, int, bytes]] = []
    while pos < end:
        ie_type = view[pos]
        size = _TV_LENGTHS.get(ie_type)
        if size is not None:
            start, stop = pos + 1, pos + 1 + size
        elif ie_type == _EXT_TYPE_LIST:
            if pos + 2 > end:
                raise MalformedError(
                    f"GTP-U IE {ie_type}", pos, "length octet lies past the message end"
                )
            start = pos + 2
            stop = start + view[pos + 1]
        elif ie_type >= 128:
            if pos + 3 > end:
                raise MalformedError(
                    f"GTP-U IE {ie_type}", pos, "length octets lie past the message end"
                )
            start = pos + 3
            stop = start + (view[pos + 1] << 8 | view[pos + 2])
        else:
            raise UnsupportedError(
                f"GTP-U IE {ie_type}", pos, "unknown TV type: its length cannot be known"
            )
        if stop > end:
            raise MalformedError(
                f"GTP-U IE {ie_type}", pos, f"value runs {stop - end} bytes past the message end"
            )
        ies.append((pos, ie_type, bytes(view[start:stop])))
        pos = stop
    return ies


def _in_type_order(extra: list[InformationElement]) -> tuple[InformationElement, ...]:
    """The kept IEs sorted by type (stably), the order the encoder writes them in: so that a
    message whose IEs arrived out of order decodes to the same value as its re-encoding."""
    if len(extra) > 1:
        extra.sort(key=_ie_type)
    return tuple(extra)


def _ie_type(ie: InformationElement) -> int:
    return ie.ie_type


def _decode_signalling(
    header: GtpuHeader, view: memoryview, body_start: int, end: int
) -> GtpuMessage:
    mtype = header.message_type
    if mtype in (_ECHO_REQUEST, _ECHO_RESPONSE):
        recovery: int | None = None
        extra: list[InformationElement] = []
        for _, ie_type, value in _decode_ies(view, body_start, end):
            if ie_type == _RECOVERY and recovery is None:
                recovery = value[0]
            else:
                extra.append(InformationElement(ie_type, value))
        if mtype == _ECHO_REQUEST:
            return EchoRequest(header, recovery, _in_type_order(extra))
        if recovery is None:
            raise MalformedError(
                "GTP-U Echo Response", body_start, "mandatory IE Recovery (14) is missing"
            )
        return EchoResponse(header, recovery, _in_type_order(extra))
    if mtype == _ERROR_INDICATION:
        return _decode_error_indication(header, view, body_start, end)
    if mtype == _SUPPORTED_EXT:
        types: tuple[int, ...] | None = None
        extra = []
        for _, ie_type, value in _decode_ies(view, body_start, end):
            if ie_type == _EXT_TYPE_LIST and types is None:
                types = tuple(value)
            else:
                extra.append(InformationElement(ie_type, value))
        if types is None:
            raise MalformedError(
                "GTP-U Supported Extension Headers Notification",
                body_start,
                "mandatory IE Extension Header Type List (141) is missing",
            )
        return SupportedExtensionHeadersNotification(header, types, _in_type_order(extra))
    if mtype == 254:  # End Marker
        ies = _decode_ies(view, body_start, end)
        return EndMarker(header, _in_type_order([InformationElement(t, v) for _, t, v in ies]))
    return GenericMessage(header, bytes(view[body_start:end]))


def _decode_error_indication(
    header: GtpuHeader, view: memoryview, body_start: int, end: int
) -> ErrorIndication:
    teid: int | None = None
    peer: IPv4Address | IPv6Address | None = None
    extra: list[InformationElement] = []
    for pos, ie_type, value in _decode_ies(view, body_start, end):
        if ie_type == _TEID_DATA_I and teid is None:
            teid = _U32.unpack(value)[0]
        elif ie_type == _PEER_ADDRESS and peer is None:
            if len(value) == 4:
                peer = IPv4Address(value)
            elif len(value) == 16:
                peer = IPv6Address(value)
            else:
                raise MalformedError(
                    "GTP-U IE 133 (GTP-U Peer Address)",
                    pos,
                    f"length {len(value)}, expected 4 (IPv4) or 16 (IPv6)",
                )
        else:
            extra.append(InformationElement(ie_type, value))
    if teid is None or peer is None:
        missing = "TEID Data I (16)" if teid is None else "GTP-U Peer Address (133)"
        raise MalformedError(
            "GTP-U Error Indication", body_start, f"mandatory IE {missing} is missing"
        )
    return ErrorIndication(header, teid, peer, _in_type_order(extra))


# --- encoding ------------------------------------------------------------------------------


def _encode_ie(ie_type: int, value: bytes) -> bytes:
    if not 0 <= ie_type <= 255:
        raise EncodeError("GTP-U message", f"IE type {ie_type} does not fit in an octet")
    if ie_type in TV_IE_VALUE_LENGTHS:
        if len(value) != TV_IE_VALUE_LENGTHS[ie_type]:
            raise EncodeError(
                "GTP-U message", f"IE {ie_type} takes {TV_IE_VALUE_LENGTHS[ie_type]} octets"
            )
        return bytes((ie_type,)) + value
    if ie_type == IEType.EXTENSION_HEADER_TYPE_LIST:
        if len(value) > 255:
            raise EncodeError("GTP-U message", "Extension Header Type List holds at most 255 types")
        return bytes((ie_type, len(value))) + value
    if ie_type < 128:
        raise EncodeError(
            "GTP-U message", f"IE type {ie_type} is an unknown TV type: its length is unknown"
        )
    if len(value) > 0xFFFF:
        raise EncodeError(
            "GTP-U message", f"IE {ie_type} value of {len(value)} octets exceeds 65535"
        )
    return _TLV.pack(ie_type, len(value)) + value


def _encode_ies(known: list[tuple[int, bytes]], extra: tuple[InformationElement, ...]) -> bytes:
    ies = known + [(ie.ie_type, bytes(ie.value)) for ie in extra]
    ies.sort(key=lambda ie: ie[0])  # stable: the field's IE before repeats of its type
    return b"".join(_encode_ie(t, v) for t, v in ies)


def _message_type(msg: GtpuMessage) -> int:
    if isinstance(msg, GenericMessage):
        return msg.header.message_type
    expected = _TYPES[type(msg)]
    if msg.header.message_type != expected:
        raise EncodeError(
            "GTP-U message",
            f"{type(msg).__name__} needs header.message_type={expected}, "
            f"got {msg.header.message_type}",
        )
    return expected


def _body(msg: GtpuMessage) -> bytes | memoryview:
    if isinstance(msg, GPdu):
        return msg.payload
    if isinstance(msg, GenericMessage):
        return msg.body
    known: list[tuple[int, bytes]] = []
    if isinstance(msg, EchoRequest | EchoResponse):
        if msg.recovery is None and isinstance(msg, EchoResponse):
            raise EncodeError(
                "GTP-U message", "Echo Response needs its Recovery IE (recovery=None)"
            )
        if msg.recovery is not None:
            if not 0 <= msg.recovery <= 255:
                raise EncodeError(
                    "GTP-U message", f"recovery={msg.recovery} does not fit in an octet"
                )
            known.append((IEType.RECOVERY, bytes((msg.recovery,))))
    elif isinstance(msg, ErrorIndication):
        if not 0 <= msg.teid_data_i <= 0xFFFFFFFF:
            raise EncodeError(
                "GTP-U message", f"teid_data_i={msg.teid_data_i} does not fit in 32 bits"
            )
        known.append((IEType.TEID_DATA_I, _U32.pack(msg.teid_data_i)))
        known.append((IEType.GTPU_PEER_ADDRESS, msg.peer_address.packed))
    elif isinstance(msg, SupportedExtensionHeadersNotification):
        known.append((IEType.EXTENSION_HEADER_TYPE_LIST, bytes(msg.extension_types)))
    return _encode_ies(known, msg.extra_ies)


def encode(msg: GtpuMessage) -> bytes:
    """Wire octets of ``msg``; flags and the length field are computed from the fields.

    Raises ``ValueError`` if a field does not fit (a caller's bug, not an input error).
    """
    body = _body(msg)
    return encode_header(msg.header, _message_type(msg), len(body)) + body


_TYPES: dict[type, int] = {
    GPdu: MessageType.G_PDU,
    EchoRequest: MessageType.ECHO_REQUEST,
    EchoResponse: MessageType.ECHO_RESPONSE,
    ErrorIndication: MessageType.ERROR_INDICATION,
    SupportedExtensionHeadersNotification: MessageType.SUPPORTED_EXTENSION_HEADERS_NOTIFICATION,
    EndMarker: MessageType.END_MARKER,
}

_GPDU_PLAIN = struct.Struct("!BBHI")
_GPDU_PSC = struct.Struct("!BBHIHBBBBBB")
"""Mandatory + optional octets + one 4-octet PDU Session Container: the usual N3 G-PDU."""


def _is_bare(psc: PduSessionContainer) -> bool:
    """A DL/UL container with QFI (and RQI on DL) only: 4 octets with no padding."""
    return (
        psc.ppi is None
        and psc.dl_sending_time_stamp is None
        and psc.qfi_sequence_number is None
        and psc.mbs_qfi_sequence_number is None
        and psc.ul_time_stamps is None
        and psc.dl_delay_result is None
        and psc.ul_delay_result is None
        and psc.n3n9_delay_result is None
        and not psc.new_ie_flag
        and not psc.spare_bits
        and not psc.ppi_spare
        and not psc.spare
        and (psc.pdu_type == 0 or (psc.pdu_type == 1 and not psc.rqi))
    )


def encode_gpdu(
    teid: int,
    payload: bytes | bytearray | memoryview,
    *,
    sequence: int | None = None,
    npdu: int | None = None,
    extensions: tuple[ExtensionHeader, ...] = (),
) -> bytes:
    """G-PDU octets: the emulators' and TOF's fast path (one ``struct`` call when plain)."""
    if sequence is None and npdu is None and not extensions:
        try:
            return _GPDU_PLAIN.pack(PLAIN_FLAGS, _G_PDU, len(payload), teid) + payload
        except struct.error as exc:
            raise EncodeError("GTP-U message", f"G-PDU field out of range: {exc}") from exc
    if sequence is None and npdu is None and len(extensions) == 1:
        psc = extensions[0]
        if type(psc) is PduSessionContainer and _is_bare(psc):
            qfi, pdu_type = psc.qfi, psc.pdu_type
            if 0 <= qfi < 64:
                o2 = qfi | 0x40 if psc.rqi else qfi
                try:
                    return (
                        _GPDU_PSC.pack(
                            0x34,
                            _G_PDU,
                            len(payload) + 8,
                            teid,
                            0,
                            0,
                            _PSC,
                            1,
                            pdu_type << 4,
                            o2,
                            0,
                        )
                        + payload
                    )
                except struct.error as exc:
                    raise EncodeError("GTP-U message", f"G-PDU field out of range: {exc}") from exc
    header = GtpuHeader(
        message_type=MessageType.G_PDU,
        teid=teid,
        sequence=sequence,
        npdu=npdu,
        extensions=extensions,
    )
    return encode_header(header, MessageType.G_PDU, len(payload)) + payload


def echo_request(sequence: int) -> bytes:
    """Echo Request with S=1 and TEID 0, as TS 29.281 §5.1 and §7.2.1 require."""
    return encode(EchoRequest(GtpuHeader(message_type=MessageType.ECHO_REQUEST, sequence=sequence)))


def echo_response(request: EchoRequest, recovery: int = 0) -> bytes:
    """Echo Response to ``request``: same sequence number, Recovery IE (restart counter 0)."""
    seq = request.header.sequence if request.header.sequence is not None else 0
    header = GtpuHeader(message_type=MessageType.ECHO_RESPONSE, sequence=seq)
    return encode(EchoResponse(header, recovery))


def error_indication(
    teid: int,
    peer: IPv4Address | IPv6Address | str,
    *,
    sequence: int = 0,
    udp_port: int | None = None,
) -> bytes:
    """Error Indication for a G-PDU that arrived on unknown ``teid``; ``peer`` is our address
    (an address object or its text; ``ValueError`` if the text is not an address).

    TEID 0 and S=1 in the header (TS 29.281 §5.1); ``udp_port`` adds the UDP Port extension
    header with the offending packet's source port (§7.3.1).
    """
    extensions: tuple[ExtensionHeader, ...] = (
        (UdpPortExtension(udp_port),) if udp_port is not None else ()
    )
    header = GtpuHeader(
        message_type=MessageType.ERROR_INDICATION, sequence=sequence, extensions=extensions
    )
    address = ip_address(peer) if isinstance(peer, str) else peer
    return encode(ErrorIndication(header, teid, address))


def end_marker(teid: int) -> bytes:
    """End Marker on tunnel ``teid`` (TS 29.281 §7.3.3)."""
    return encode(EndMarker(GtpuHeader(message_type=MessageType.END_MARKER, teid=teid)))


__all__ = [
    "EchoRequest",
    "EchoResponse",
    "EndMarker",
    "ErrorIndication",
    "GPdu",
    "GenericMessage",
    "GtpuMessage",
    "InformationElement",
    "SupportedExtensionHeadersNotification",
    "decode",
    "echo_request",
    "echo_response",
    "encode",
    "encode_gpdu",
    "end_marker",
    "error_indication",
]
