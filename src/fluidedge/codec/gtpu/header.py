"""The GTP-U header (TS 29.281 §5): mandatory part, optional octets and extension chain.

``decode_header`` is on the hot path of every packet the TOF and the benchmarks classify, so the
plain G-PDU (flags ``0x30``: version 1, PT 1, no E/S/PN) and the usual N3 G-PDU (flags ``0x34``
with one bare PDU Session Container) take branches with one ``struct`` call and no loop, and
headers are built through mutable twins instead of the frozen dataclass ``__init__`` (see
``_fastbuild``). :func:`peek` does the same validation but returns a plain tuple, for
classifiers that need no objects.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from fluidedge.codec.errors import EncodeError, MalformedError, TruncatedError, UnsupportedError
from fluidedge.codec.gtpu import layouts
from fluidedge.codec.gtpu._fastbuild import check_twin, fast_constructor
from fluidedge.codec.gtpu.constants import COMPREHENSION_BITS, COMPREHENSION_BY_ALL
from fluidedge.codec.gtpu.extensions import (
    KNOWN_TYPES,
    ExtensionHeader,
    PduSessionContainer,
    UnknownExtension,
    decode_content,
    encode_chain,
)

FLAG_E = 0x04
FLAG_S = 0x02
FLAG_PN = 0x01
FLAG_SPARE = 0x08
PLAIN_FLAGS = 0x30
"""Version 1, PT 1, spare 0, no E/S/PN: the usual S1-U/N3 G-PDU."""

_MANDATORY = layouts.HEADER.struct
_OPTIONAL = layouts.OPTIONAL.struct
_unpack_mandatory = _MANDATORY.unpack_from
_unpack_optional = _OPTIONAL.unpack_from
_pack_mandatory = _MANDATORY.pack
_pack_optional = _OPTIONAL.pack
N3_FLAGS = 0x34
"""Version 1, PT 1, E=1: the usual N3 G-PDU carrying a PDU Session Container."""
_unpack_n3 = struct.Struct("!3sBBBBB").unpack_from
"""Octets 9-16 of an N3 G-PDU: sequence + N-PDU (3), next type, PSC length, octets 1-2, next."""
_ZERO3 = bytes(3)
_BARE_PSC: dict[int, tuple[ExtensionHeader, ...]] = {}


@dataclass(frozen=True, slots=True)
class GtpuHeader:
    """A decoded GTP-U header.

    ``sequence``/``npdu`` are ``None`` unless their flag (S/PN) is set. ``length`` and
    ``header_size`` describe the wire form and are recomputed by the encoder, so they take no
    part in equality. ``spare_flags`` keeps the octet-1 bits the other fields do not imply
    (the spare bit ``0x08``, and ``0x04`` for an E flag followed by no extension header);
    ``spare_optional`` keeps the four optional octets, with the ones whose flag is set zeroed,
    when any of the others is non-zero (``b""`` otherwise), so re-encoding is byte-identical.
    """

    version: int = 1
    protocol_type: int = 1
    message_type: int = 255
    length: int = field(default=0, compare=False)
    teid: int = 0
    sequence: int | None = None
    npdu: int | None = None
    extensions: tuple[ExtensionHeader, ...] = ()
    header_size: int = field(default=0, compare=False)
    """Octets from the start of the GTP-U header to the message body (T-PDU or IEs)."""
    spare_flags: int = 0
    spare_optional: bytes = b""

    @property
    def qfi(self) -> int | None:
        """QFI of the first PDU Session Container, if any (what the TOF classifies on)."""
        for ext in self.extensions:
            if isinstance(ext, PduSessionContainer):
                return ext.qfi
        return None

    @property
    def body_length(self) -> int:
        """Octets of the message body (``length`` minus optional octets and extensions)."""
        return self.length + 8 - self.header_size


class _PlainHeaderTwin:
    """Mutable twin of :class:`GtpuHeader` for the mandatory-only header (see ``_fastbuild``):
    its constant fields are set in ``__init__``, saving the generic builder's argument
    passing on the plain G-PDU path."""

    # the same names in the same order: that is what makes ``__class__`` assignment legal
    __slots__ = GtpuHeader.__slots__

    def __init__(self, message_type: int, length: int, teid: int) -> None:
        self.version = 1
        self.protocol_type = 1
        self.message_type = message_type
        self.length = length
        self.teid = teid
        self.sequence = None
        self.npdu = None
        self.extensions = ()
        self.header_size = 8
        self.spare_flags = 0
        self.spare_optional = b""


check_twin(_PlainHeaderTwin, GtpuHeader)
_build_header = fast_constructor(GtpuHeader)
"""Positional constructor of all 11 fields, skipping the frozen ``__init__`` (hot path)."""


def as_bytes_view(buf: bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
    """``buf`` itself if it indexes as octets, else a flat byte copy (or MalformedError).

    Exotic memoryviews (other formats, several dimensions, strides) would make ``len`` and
    indexing count items rather than octets, so they are flattened first.
    """
    kind = type(buf)
    if kind is bytes or kind is bytearray:
        return buf
    try:
        if kind is memoryview:
            flat = buf
            if flat.format == "B" and flat.ndim == 1 and flat.c_contiguous:  # type: ignore[union-attr]
                return buf
        view = memoryview(buf)
        if view.itemsize != 1 or view.ndim != 1 or not view.c_contiguous or view.format != "B":
            view = memoryview(view.tobytes())
    except (TypeError, ValueError) as exc:  # not a buffer, or a released memoryview
        raise MalformedError("GTP-U header", 0, f"not a bytes-like buffer: {exc}") from None
    return view


def _bare_psc(
    buf: bytes | bytearray | memoryview, offset: int
) -> tuple[ExtensionHeader, ...] | None:
    """The extension tuple of the usual N3 shape, or None to take the general path.

    That shape is: zero sequence/N-PDU octets, next type 0x85, one 4-octet PDU Session
    Container with QFI (and RQI on DL) only, then no more extension headers. Such tuples are
    immutable, so one per (octet 1, octet 2) value is kept and shared (at most a few hundred).
    """
    optional, next_type, units, o1, o2, after = _unpack_n3(buf, offset + 8)
    if optional != _ZERO3 or next_type != 0x85 or units != 1 or after:
        return None
    key = o1 << 8 | o2
    extensions = _BARE_PSC.get(key)
    if extensions is None:
        ext = decode_content(0x85, bytes((o1, o2)), offset + 12)
        if not isinstance(ext, PduSessionContainer) or ext.new_ie_flag:
            return None
        extensions = _BARE_PSC[key] = (ext,)
    return extensions


def _check_version(flags: int, offset: int) -> None:
    if flags >> 5 != 1:
        raise UnsupportedError("GTP-U header", offset, f"version {flags >> 5}, only 1 is GTP-U")
    if not flags & 0x10:
        raise UnsupportedError("GTP-U header", offset, "PT=0 is GTP' (charging), not GTP-U")


def _walk_options(
    buf: bytes | bytearray | memoryview, offset: int, flags: int, length: int, decode: bool
) -> tuple[int | None, int | None, int, bytes, tuple[ExtensionHeader, ...], int]:
    """Optional octets and extension chain of a header with some of E/S/PN set.

    Returns ``(sequence, npdu, header_size, spare_optional, extensions, qfi)``; extension
    headers are only built when ``decode`` (``qfi`` is found either way, -1 if none).
    The walk stops at the end of the buffer (:class:`TruncatedError`) or of the message the
    length field declares (:class:`MalformedError`), whichever comes first.
    """
    size = len(buf)
    declared_end = offset + 8 + length
    pos = offset + 8
    if pos + 4 > size:
        raise TruncatedError(
            "GTP-U optional fields", pos, f"need 4 bytes, have {max(size - pos, 0)}"
        )
    if pos + 4 > declared_end:
        raise MalformedError(
            "GTP-U optional fields", pos, f"length field {length} leaves no room for them"
        )
    seq_raw, npdu_raw, next_type = _unpack_optional(buf, pos)
    sequence = seq_raw if flags & FLAG_S else None
    npdu = npdu_raw if flags & FLAG_PN else None
    masked = (
        (0 if flags & FLAG_S else seq_raw << 16)
        | (0 if flags & FLAG_PN else npdu_raw << 8)
        | (0 if flags & FLAG_E else next_type)
    )
    spare_optional = masked.to_bytes(4, "big") if masked else b""
    pos += 4
    extensions: list[ExtensionHeader] = []
    qfi = -1
    if flags & FLAG_E:
        while next_type:
            ext_type = next_type
            if pos >= size:
                raise TruncatedError(
                    f"GTP-U extension header 0x{ext_type:02x}", pos, "buffer ends before it"
                )
            units = buf[pos]
            if units == 0:
                raise MalformedError(
                    f"GTP-U extension header 0x{ext_type:02x}", pos, "length 0 is invalid"
                )
            end = pos + 4 * units
            if end > size:
                raise TruncatedError(
                    f"GTP-U extension header 0x{ext_type:02x}",
                    pos,
                    f"length {units} needs {4 * units} bytes, have {size - pos}",
                )
            if end > declared_end:
                raise MalformedError(
                    f"GTP-U extension header 0x{ext_type:02x}",
                    pos,
                    f"runs {end - declared_end} bytes past the length field's end",
                )
            if ext_type not in KNOWN_TYPES:
                if ext_type & COMPREHENSION_BITS == COMPREHENSION_BY_ALL:
                    raise UnsupportedError(
                        f"GTP-U extension header 0x{ext_type:02x}",
                        pos,
                        "unknown type whose comprehension is required by every node, "
                        "intermediate ones too (TS 29.281 §5.2.1)",
                    )
                if decode:
                    extensions.append(UnknownExtension(ext_type, bytes(buf[pos + 1 : end - 1])))
            elif ext_type == 0x85 and qfi < 0 and not decode:  # PDU Session Container
                qfi = buf[pos + 2] & 0x3F if buf[pos + 1] >> 4 <= 1 else -1
            elif decode:
                ext = decode_content(ext_type, bytes(buf[pos + 1 : end - 1]), pos)
                if qfi < 0 and isinstance(ext, PduSessionContainer):
                    qfi = ext.qfi
                extensions.append(ext)
            next_type = buf[end - 1]
            pos = end
    return sequence, npdu, pos - offset, spare_optional, tuple(extensions), qfi


def _mandatory(buf: bytes | bytearray | memoryview, offset: int) -> tuple[int, int, int, int]:
    if offset < 0:
        raise MalformedError("GTP-U header", offset, "negative offset")
    if len(buf) - offset < 8:
        raise TruncatedError(
            "GTP-U header", offset, f"need 8 bytes, have {max(len(buf) - offset, 0)}"
        )
    flags, message_type, length, teid = _unpack_mandatory(buf, offset)
    return flags, message_type, length, teid


def decode_header(buf: bytes | bytearray | memoryview, offset: int = 0) -> GtpuHeader:
    """Decode the header at ``offset`` (mandatory part, options, whole extension chain).

    Does not check that the body the length field announces is in the buffer (:func:`decode`
    does); the optional part and extension headers must lie inside both the buffer and the
    declared length. Raises only :class:`~fluidedge.codec.errors.CodecError` subclasses.
    """
    if type(buf) is not bytes:
        buf = as_bytes_view(buf)
    if offset >= 0 and len(buf) - offset >= 8:
        flags, message_type, length, teid = _unpack_mandatory(buf, offset)
        if flags == PLAIN_FLAGS:
            h: Any = _PlainHeaderTwin(message_type, length, teid)
            h.__class__ = GtpuHeader
            return h  # type: ignore[no-any-return]
        if flags == N3_FLAGS and length >= 8 and len(buf) - offset >= 16:
            extensions = _bare_psc(buf, offset)
            if extensions is not None:
                return _build_header(
                    1, 1, message_type, length, teid, None, None, extensions, 16, 0, b""
                )
    else:
        flags, message_type, length, teid = _mandatory(buf, offset)
    _check_version(flags, offset)
    if not flags & 0x07:
        return _build_header(
            1, 1, message_type, length, teid, None, None, (), 8, flags & FLAG_SPARE, b""
        )
    sequence, npdu, header_size, spare_optional, extensions, _ = _walk_options(
        buf, offset, flags, length, decode=True
    )
    spare_flags = flags & FLAG_SPARE | (FLAG_E if flags & FLAG_E and not extensions else 0)
    return _build_header(
        1,
        1,
        message_type,
        length,
        teid,
        sequence,
        npdu,
        extensions,
        header_size,
        spare_flags,
        spare_optional,
    )


def peek(buf: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, int, int, int, int]:
    """Classify a GTP-U message without building objects.

    Returns ``(message_type, teid, body_offset, end, qfi)``: the body (T-PDU for a G-PDU)
    is ``buf[body_offset:end]``, ``qfi`` is that of the first PDU Session Container or -1.
    Validates exactly what :func:`decode_header` and the length check of :func:`decode` do
    (extension contents other than the PDU Session Container's first two octets excepted).
    """
    if type(buf) is not bytes:
        buf = as_bytes_view(buf)
    if offset >= 0 and len(buf) - offset >= 8:
        flags, message_type, length, teid = _unpack_mandatory(buf, offset)
        if flags == PLAIN_FLAGS:
            end = offset + 8 + length
            if end > len(buf):
                _raise_short_body(buf, offset, length, offset + 8)
            return message_type, teid, offset + 8, end, -1
        if flags == N3_FLAGS and length >= 8 and len(buf) - offset >= 16:
            optional, next_type, units, o1, o2, after = _unpack_n3(buf, offset + 8)
            if optional == _ZERO3 and next_type == 0x85 and units == 1 and not after and o1 < 0x20:
                end = offset + 8 + length
                if end > len(buf):
                    _raise_short_body(buf, offset, length, offset + 16)
                return message_type, teid, offset + 16, end, o2 & 0x3F
    else:
        flags, message_type, length, teid = _mandatory(buf, offset)
    _check_version(flags, offset)
    header_size = 8
    qfi = -1
    if flags & 0x07:
        _, _, header_size, _, _, qfi = _walk_options(buf, offset, flags, length, decode=False)
    end = offset + 8 + length
    if end > len(buf):
        _raise_short_body(buf, offset, length, offset + header_size)
    return message_type, teid, offset + header_size, end, qfi


def _raise_short_body(
    buf: bytes | bytearray | memoryview, offset: int, length: int, body: int
) -> None:
    raise TruncatedError(
        "GTP-U message body",
        body,
        f"length field says {length} bytes after the mandatory header, "
        f"buffer holds {len(buf) - offset - 8}",
    )


def encode_header(header: GtpuHeader, message_type: int, body_length: int) -> bytes:
    """Header octets (mandatory, optional, extension chain) for a body of ``body_length``.

    Flags and the length field are computed from the fields; ``ValueError`` for values that
    do not fit.
    """
    if header.version != 1 or header.protocol_type != 1:
        raise EncodeError("GTP-U header", "only GTPv1-U (version 1, PT 1) can be encoded")
    if header.spare_flags & ~(FLAG_SPARE | FLAG_E):
        raise EncodeError(
            "GTP-U header", "spare_flags may hold only 0x08 (spare) and 0x04 (empty E)"
        )
    first_type, chain = encode_chain(header.extensions)
    if first_type and header.spare_flags & FLAG_E:
        raise EncodeError(
            "GTP-U header", "spare_flags 0x04 means E=1 with no extension header, yet some follow"
        )
    flags = (
        0x30
        | header.spare_flags
        | (FLAG_E if first_type else 0)
        | (FLAG_S if header.sequence is not None else 0)
        | (FLAG_PN if header.npdu is not None else 0)
    )
    try:
        if flags & 0x07:
            spare = header.spare_optional
            if spare and len(spare) != 4:
                raise EncodeError("GTP-U header", "spare_optional must be empty or 4 octets")
            seq_raw, npdu_raw, next_raw = _unpack_optional(spare) if spare else (0, 0, 0)
            optional = _pack_optional(
                seq_raw if header.sequence is None else header.sequence,
                npdu_raw if header.npdu is None else header.npdu,
                next_raw if not flags & FLAG_E else first_type,
            )
            optional += chain
        else:
            if header.spare_optional:
                raise EncodeError("GTP-U header", "spare_optional needs an E, S or PN flag")
            optional = b""
        length = len(optional) + body_length
        return _pack_mandatory(flags, message_type, length, header.teid) + optional
    except struct.error as exc:
        raise EncodeError("GTP-U header", f"GTP-U header field out of range: {exc}") from exc
