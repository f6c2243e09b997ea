"""GTP-U extension headers (TS 29.281 §5.2) and the PDU Session Container (TS 38.415 §5.5.2).

Each known type decodes to a frozen dataclass; what is not understood is kept as bytes so that
re-encoding a decoded message gives the same octets. Every class keeps the octets that follow
its decoded fields in ``spare`` *unless* they are exactly the all-zero padding the encoder adds
anyway, so that ``UdpPortExtension(2152)`` and the decoded form of its encoding compare equal.

The ``content`` of an extension header is what lies between its length octet and its
next-type octet: ``4 * length - 2`` octets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from fluidedge.codec.errors import EncodeError, MalformedError
from fluidedge.codec.gtpu._fastbuild import fast_constructor
from fluidedge.codec.gtpu.constants import ExtensionType

PDU_TYPE_DL = 0
PDU_TYPE_UL = 1
MAX_CONTENT = 4 * 255 - 2
"""Largest content an extension header can hold (length octet 255)."""


@dataclass(frozen=True, slots=True)
class PduSessionContainer:
    """PDU Session Container (0x85): DL or UL PDU SESSION INFORMATION of TS 38.415 §5.5.2.

    A flag of the wire format is set iff the field it introduces is not ``None``
    (PPP: ``ppi``; QMP: the time stamps; SNP: the QFI sequence number; MSNP: the MBS QFI
    sequence number; DL/UL/N3N9 Delay Ind: the delay results). ``rqi``, ``spare_bits`` and
    ``ppi_spare`` are DL-only; ``new_ie_flag`` and the delay fields are UL-only. With
    ``new_ie_flag`` the New IE Flags octet and what it introduces stay in ``spare``.
    """

    pdu_type: int
    qfi: int
    rqi: bool = False
    ppi: int | None = None
    dl_sending_time_stamp: int | None = None
    qfi_sequence_number: int | None = None
    mbs_qfi_sequence_number: int | None = None
    ul_time_stamps: tuple[int, int, int] | None = None
    """UL QMP: DL Sending Time Stamp Repeated, DL Received Time Stamp, UL Sending Time Stamp."""
    dl_delay_result: int | None = None
    ul_delay_result: int | None = None
    n3n9_delay_result: int | None = None
    new_ie_flag: bool = False
    spare_bits: int = 0
    """DL octet 1 bit 0 (spare)."""
    ppi_spare: int = 0
    """DL: the 5 spare bits after the PPI."""
    spare: bytes = b""


@dataclass(frozen=True, slots=True)
class UdpPortExtension:
    """UDP Port (0x40, TS 29.281 §5.2.2.1): source port of the message that caused an Error
    Indication."""

    port: int
    spare: bytes = b""


@dataclass(frozen=True, slots=True)
class PdcpPduNumber:
    """PDCP PDU Number (0xC0, TS 29.281 §5.2.2.2)."""

    number: int
    spare: bytes = b""


@dataclass(frozen=True, slots=True)
class LongPdcpPduNumber:
    """Long PDCP PDU Number (0x82, TS 29.281 §5.2.2.2A): 18-bit number."""

    number: int
    spare_bits: int = 0
    """The 6 spare bits before the number."""
    spare: bytes = b""


@dataclass(frozen=True, slots=True)
class ServiceClassIndicator:
    """Service Class Indicator (0x20, TS 29.281 §5.2.2.3)."""

    value: int
    spare: bytes = b""


@dataclass(frozen=True, slots=True)
class RanContainer:
    """RAN Container (0x81), Xw RAN Container (0x83) or NR RAN Container (0x84), opaque
    (TS 29.281 §5.2.2.4-6; the content belongs to TS 38.425/36.425)."""

    ext_type: int
    content: bytes


@dataclass(frozen=True, slots=True)
class UnknownExtension:
    """An extension type we do not decode whose comprehension is not required, carried through.

    Also used for a PDU Session Container whose PDU type is neither DL (0) nor UL (1).
    """

    ext_type: int
    content: bytes


ExtensionHeader = Union[  # noqa: UP007 - a runtime alias others import and isinstance against
    PduSessionContainer,
    UdpPortExtension,
    PdcpPduNumber,
    LongPdcpPduNumber,
    ServiceClassIndicator,
    RanContainer,
    UnknownExtension,
]

# Plain ints for the hot paths: reading an IntEnum member costs ~0.1 µs on CPython 3.11.
_PSC = int(ExtensionType.PDU_SESSION_CONTAINER)
_UDP_PORT = int(ExtensionType.UDP_PORT)
_PDCP = int(ExtensionType.PDCP_PDU_NUMBER)
_SCI = int(ExtensionType.SERVICE_CLASS_INDICATOR)
_LONG_PDCP = int(ExtensionType.LONG_PDCP_PDU_NUMBER)

RAN_CONTAINER_TYPES = frozenset(
    {ExtensionType.RAN_CONTAINER, ExtensionType.XW_RAN_CONTAINER, ExtensionType.NR_RAN_CONTAINER}
)
KNOWN_TYPES: frozenset[int] = frozenset(
    int(t)
    for t in {
        ExtensionType.PDU_SESSION_CONTAINER,
        ExtensionType.UDP_PORT,
        ExtensionType.PDCP_PDU_NUMBER,
        ExtensionType.LONG_PDCP_PDU_NUMBER,
        ExtensionType.SERVICE_CLASS_INDICATOR,
        *RAN_CONTAINER_TYPES,
    }
)


def _pad_needed(n: int) -> int:
    """Zero octets to add after ``n`` content octets so that ``n + 2`` is a multiple of 4."""
    return -(n + 2) % 4


def _tail(content: bytes, used: int) -> bytes:
    """Octets after the decoded fields, or ``b""`` if they are the encoder's own padding."""
    rest = content[used:]
    if len(rest) == _pad_needed(used) and not any(rest):
        return b""
    return rest


_build_psc = fast_constructor(PduSessionContainer)
_PSC_NONE = (None,) * 8
"""ppi .. n3n9_delay_result: the optional fields absent from a flag-less container."""
_PSC_CACHE: dict[bytes, PduSessionContainer] = {}
"""Flag-less 2-octet containers by content (at most 2 types x 64 QFIs x RQI = 256 entries):
they are immutable, so the N3 hot path shares one object per QFI instead of building one."""

# --- decoding ------------------------------------------------------------------------------


def decode_content(ext_type: int, content: bytes, offset: int) -> ExtensionHeader:
    """Decode the content of one extension header of a type in :data:`KNOWN_TYPES`.

    ``offset`` is where the extension header starts in the input, for error messages.
    """
    if ext_type == _PSC:
        return _decode_pdu_session(content, offset)
    if ext_type == _UDP_PORT:
        return UdpPortExtension(int.from_bytes(content[0:2], "big"), _tail(content, 2))
    if ext_type == _PDCP:
        return PdcpPduNumber(int.from_bytes(content[0:2], "big"), _tail(content, 2))
    if ext_type == _SCI:
        return ServiceClassIndicator(content[0], _tail(content, 1))
    if ext_type == _LONG_PDCP:
        if len(content) < 3:
            raise MalformedError(
                "GTP-U Long PDCP PDU Number extension", offset, "length 1 cannot hold 3 octets"
            )
        raw = int.from_bytes(content[0:3], "big")
        return LongPdcpPduNumber(raw & 0x3FFFF, raw >> 18, _tail(content, 3))
    return RanContainer(ext_type, content)


def _decode_pdu_session(content: bytes, offset: int) -> ExtensionHeader:
    if len(content) == 2:
        cached = _PSC_CACHE.get(content)
        if cached is not None:
            return cached
    o1 = content[0]
    o2 = content[1]
    pdu_type = o1 >> 4
    if not o1 & 0x0F and not o2 & 0x80 and pdu_type <= PDU_TYPE_UL:
        # The usual N3 shape: QFI (and RQI on DL) only, no optional field.
        rqi = bool(o2 & 0x40)
        if pdu_type == PDU_TYPE_DL or not rqi:
            # two decoded octets need no padding, so whatever follows is kept as spare
            psc = _build_psc(pdu_type, o2 & 0x3F, rqi, *_PSC_NONE, False, 0, 0, content[2:])
            if len(content) == 2:
                _PSC_CACHE[bytes(content)] = psc
            return psc
    where = "GTP-U PDU Session Container"
    pos = 2
    n = len(content)

    def take(size: int, what: str) -> int:
        nonlocal pos
        if pos + size > n:
            raise MalformedError(
                where, offset + 1 + pos, f"{what} needs {size} octets, {n - pos} left"
            )
        value = int.from_bytes(content[pos : pos + size], "big")
        pos += size
        return value

    if pdu_type == PDU_TYPE_DL:
        ppi: int | None = None
        ppi_spare = 0
        if o2 & 0x80:
            ppi_octet = take(1, "PPI")
            ppi, ppi_spare = ppi_octet >> 5, ppi_octet & 0x1F
        ts = take(8, "DL Sending Time Stamp") if o1 & 0x08 else None
        sn = take(3, "DL QFI Sequence Number") if o1 & 0x04 else None
        msn = take(4, "DL MBS QFI Sequence Number") if o1 & 0x02 else None
        return PduSessionContainer(
            PDU_TYPE_DL,
            o2 & 0x3F,
            rqi=bool(o2 & 0x40),
            ppi=ppi,
            dl_sending_time_stamp=ts,
            qfi_sequence_number=sn,
            mbs_qfi_sequence_number=msn,
            spare_bits=o1 & 0x01,
            ppi_spare=ppi_spare,
            spare=_tail(content, pos),
        )
    if pdu_type == PDU_TYPE_UL:
        stamps: tuple[int, int, int] | None = None
        if o1 & 0x08:
            stamps = (
                take(8, "DL Sending Time Stamp Repeated"),
                take(8, "DL Received Time Stamp"),
                take(8, "UL Sending Time Stamp"),
            )
        dl_delay = take(4, "DL Delay Result") if o1 & 0x04 else None
        ul_delay = take(4, "UL Delay Result") if o1 & 0x02 else None
        sn = take(3, "UL QFI Sequence Number") if o1 & 0x01 else None
        n3n9 = take(4, "N3/N9 Delay Result") if o2 & 0x80 else None
        return PduSessionContainer(
            PDU_TYPE_UL,
            o2 & 0x3F,
            ul_time_stamps=stamps,
            qfi_sequence_number=sn,
            dl_delay_result=dl_delay,
            ul_delay_result=ul_delay,
            n3n9_delay_result=n3n9,
            new_ie_flag=bool(o2 & 0x40),
            spare=_tail(content, pos),
        )
    return UnknownExtension(ExtensionType.PDU_SESSION_CONTAINER, content)


# --- encoding ------------------------------------------------------------------------------


def _check(value: int, bits: int, what: str) -> int:
    if not 0 <= value < (1 << bits):
        raise EncodeError("GTP-U extension header", f"{what}={value} does not fit in {bits} bits")
    return value


def _encode_pdu_session(ext: PduSessionContainer) -> bytes:
    out = bytearray()
    qfi = _check(ext.qfi, 6, "qfi")
    if ext.pdu_type == PDU_TYPE_DL:
        if (
            ext.ul_time_stamps is not None
            or ext.dl_delay_result is not None
            or ext.ul_delay_result is not None
            or ext.n3n9_delay_result is not None
            or ext.new_ie_flag
        ):
            raise EncodeError(
                "GTP-U extension header", "UL-only field set on a DL PDU Session Container"
            )
        o1 = (
            (0x08 if ext.dl_sending_time_stamp is not None else 0)
            | (0x04 if ext.qfi_sequence_number is not None else 0)
            | (0x02 if ext.mbs_qfi_sequence_number is not None else 0)
            | _check(ext.spare_bits, 1, "spare_bits")
        )
        o2 = (0x80 if ext.ppi is not None else 0) | (0x40 if ext.rqi else 0) | qfi
        out += bytes((o1, o2))
        if ext.ppi is not None:
            out.append(_check(ext.ppi, 3, "ppi") << 5 | _check(ext.ppi_spare, 5, "ppi_spare"))
        elif ext.ppi_spare:
            raise EncodeError("GTP-U extension header", "ppi_spare needs a ppi")
        if ext.dl_sending_time_stamp is not None:
            out += _check(ext.dl_sending_time_stamp, 64, "time stamp").to_bytes(8, "big")
        if ext.qfi_sequence_number is not None:
            out += _check(ext.qfi_sequence_number, 24, "qfi_sequence_number").to_bytes(3, "big")
        if ext.mbs_qfi_sequence_number is not None:
            out += _check(ext.mbs_qfi_sequence_number, 32, "mbs sequence").to_bytes(4, "big")
    elif ext.pdu_type == PDU_TYPE_UL:
        if (
            ext.rqi
            or ext.ppi is not None
            or ext.dl_sending_time_stamp is not None
            or ext.mbs_qfi_sequence_number is not None
            or ext.spare_bits
            or ext.ppi_spare
        ):
            raise EncodeError(
                "GTP-U extension header", "DL-only field set on a UL PDU Session Container"
            )
        o1 = (
            0x10
            | (0x08 if ext.ul_time_stamps is not None else 0)
            | (0x04 if ext.dl_delay_result is not None else 0)
            | (0x02 if ext.ul_delay_result is not None else 0)
            | (0x01 if ext.qfi_sequence_number is not None else 0)
        )
        o2 = (
            (0x80 if ext.n3n9_delay_result is not None else 0)
            | (0x40 if ext.new_ie_flag else 0)
            | qfi
        )
        out += bytes((o1, o2))
        if ext.ul_time_stamps is not None:
            if len(ext.ul_time_stamps) != 3:
                raise EncodeError(
                    "GTP-U extension header", "ul_time_stamps needs exactly 3 time stamps"
                )
            for stamp in ext.ul_time_stamps:
                out += _check(stamp, 64, "time stamp").to_bytes(8, "big")
        for value, size, what in (
            (ext.dl_delay_result, 4, "dl_delay_result"),
            (ext.ul_delay_result, 4, "ul_delay_result"),
            (ext.qfi_sequence_number, 3, "qfi_sequence_number"),
            (ext.n3n9_delay_result, 4, "n3n9_delay_result"),
        ):
            if value is not None:
                out += _check(value, 8 * size, what).to_bytes(size, "big")
    else:
        raise EncodeError(
            "GTP-U extension header",
            f"pdu_type={ext.pdu_type}: only DL (0) and UL (1) are defined; "
            "carry other types as UnknownExtension(0x85, content)",
        )
    return bytes(out) + ext.spare


def encode_content(ext: ExtensionHeader) -> tuple[int, bytes]:
    """``(type, content)`` of one extension header, content padded to ``4n - 2`` octets.

    Raises ``ValueError`` for values that do not fit their fields (a caller's bug, not input).
    """
    if isinstance(ext, PduSessionContainer):
        ext_type, content = ExtensionType.PDU_SESSION_CONTAINER.value, _encode_pdu_session(ext)
    elif isinstance(ext, UdpPortExtension):
        content = _check(ext.port, 16, "port").to_bytes(2, "big") + ext.spare
        ext_type = ExtensionType.UDP_PORT.value
    elif isinstance(ext, PdcpPduNumber):
        content = _check(ext.number, 16, "number").to_bytes(2, "big") + ext.spare
        ext_type = ExtensionType.PDCP_PDU_NUMBER.value
    elif isinstance(ext, LongPdcpPduNumber):
        raw = _check(ext.spare_bits, 6, "spare_bits") << 18 | _check(ext.number, 18, "number")
        content = raw.to_bytes(3, "big") + ext.spare
        ext_type = ExtensionType.LONG_PDCP_PDU_NUMBER.value
    elif isinstance(ext, ServiceClassIndicator):
        content = bytes((_check(ext.value, 8, "value"),)) + ext.spare
        ext_type = ExtensionType.SERVICE_CLASS_INDICATOR.value
    elif isinstance(ext, RanContainer | UnknownExtension):
        ext_type = _check(ext.ext_type, 8, "ext_type")
        if ext_type == 0:
            raise EncodeError(
                "GTP-U extension header", "extension type 0 means 'no more extension headers'"
            )
        content = bytes(ext.content)
        if _pad_needed(len(content)):
            raise EncodeError(
                "GTP-U extension header",
                f"opaque extension content of {len(content)} octets: need 4n-2 octets",
            )
    else:
        raise TypeError(f"not a GTP-U extension header: {ext!r}")
    content += bytes(_pad_needed(len(content)))
    if len(content) > MAX_CONTENT:
        raise EncodeError(
            "GTP-U extension header",
            f"extension content of {len(content)} octets exceeds {MAX_CONTENT}",
        )
    return ext_type, content


def encode_chain(extensions: tuple[ExtensionHeader, ...]) -> tuple[int, bytes]:
    """``(first type, chain octets)`` for the Next Extension Header Type octet and what follows."""
    if not extensions:
        return 0, b""
    encoded = [encode_content(e) for e in extensions]
    out = bytearray()
    for i, (_, content) in enumerate(encoded):
        nxt = encoded[i + 1][0] if i + 1 < len(encoded) else 0
        out.append((len(content) + 2) // 4)
        out += content
        out.append(nxt)
    return encoded[0][0], bytes(out)


__all__ = [
    "KNOWN_TYPES",
    "PDU_TYPE_DL",
    "PDU_TYPE_UL",
    "ExtensionHeader",
    "LongPdcpPduNumber",
    "PdcpPduNumber",
    "PduSessionContainer",
    "RanContainer",
    "ServiceClassIndicator",
    "UdpPortExtension",
    "UnknownExtension",
    "decode_content",
    "encode_chain",
    "encode_content",
]
