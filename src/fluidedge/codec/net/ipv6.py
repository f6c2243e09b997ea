"""IPv6 header (RFC 8200) with its extension-header chain walked to the upper layer.

The walk knows the extension headers of RFC 8200 §4 and the IANA "IPv6 Extension Header Types"
registry: Hop-by-Hop (0, only first), Routing (43), Fragment (44), Destination Options (60),
Authentication Header (51, RFC 4302: length in 4-octet units), Mobility (135), HIP (139),
Shim6 (140) and the two experimental types (253, 254). ESP (50) ends the walk (what follows is
encrypted) and so does No Next Header (59). Anything else is the upper-layer protocol.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from fluidedge.codec.errors import MalformedError, TruncatedError, UnsupportedError
from fluidedge.codec.fields import Field, Layout

Buffer = bytes | bytearray | memoryview

IPV6 = Layout(
    "IPv6",
    "RFC 8200 §3",
    (
        Field("version_class_flow", "I", "RFC 8200 §3", "version(4)=6 class(8) flow label(20)"),
        Field("payload_length", "H", "RFC 8200 §3", "octets after this header, ext incl."),
        Field("next_header", "B", "RFC 8200 §3; IANA protocol numbers"),
        Field("hop_limit", "B", "RFC 8200 §3"),
        Field("source", "16s", "RFC 8200 §3"),
        Field("destination", "16s", "RFC 8200 §3"),
    ),
)
EXTENSION = Layout(
    "IPv6 extension",
    "RFC 8200 §4.2-4.6 (generic TLV-length form)",
    (
        Field("next_header", "B", "RFC 8200 §4"),
        Field("hdr_ext_len", "B", "RFC 8200 §4.3", "8-octet units not counting the first 8"),
    ),
)
FRAGMENT = Layout(
    "IPv6 fragment",
    "RFC 8200 §4.5",
    (
        Field("next_header", "B", "RFC 8200 §4.5"),
        Field("reserved", "B", "RFC 8200 §4.5"),
        Field("offset_flags", "H", "RFC 8200 §4.5", "offset(13) in 8 octets, res(2), M(1)"),
        Field("identification", "I", "RFC 8200 §4.5"),
    ),
)

NH_HOP_BY_HOP = 0
NH_ROUTING = 43
NH_FRAGMENT = 44
NH_ESP = 50
NH_AH = 51
NH_NONE = 59
NH_DEST_OPTS = 60
#: Extension headers with the generic (next header, 8-octet length) form.
_GENERIC_EXT = frozenset({NH_HOP_BY_HOP, NH_ROUTING, NH_DEST_OPTS, 135, 139, 140, 253, 254})
EXTENSION_TYPES = _GENERIC_EXT | {NH_FRAGMENT, NH_AH}

_MAX_EXTENSIONS = 16
_HEADER = IPV6.struct
_FRAG = FRAGMENT.struct


@dataclass(frozen=True, slots=True)
class IPv6Extension:
    """One extension header: its type, where it starts and how long it is (whole header)."""

    type: int
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class IPv6Fragment:
    """The Fragment header's fields (RFC 8200 §4.5); offset in octets."""

    offset: int
    more_fragments: bool
    identification: int

    @property
    def is_fragment(self) -> bool:
        """False for an "atomic fragment" (offset 0, M=0: a whole packet, RFC 6946)."""
        return self.more_fragments or self.offset != 0


@dataclass(frozen=True, slots=True)
class Chain:
    """Result of walking extension headers: the upper-layer protocol and where it starts."""

    extensions: tuple[IPv6Extension, ...]
    upper_protocol: int
    upper_offset: int
    fragment: IPv6Fragment | None


@dataclass(frozen=True, slots=True)
class IPv6Header:
    traffic_class: int
    flow_label: int
    payload_length: int
    next_header: int
    hop_limit: int
    source: bytes
    destination: bytes
    extensions: tuple[IPv6Extension, ...]
    upper_protocol: int  # after the extension chain; 59 if none, 50 if ESP
    upper_offset: int  # absolute offset in the buffer of the upper-layer header
    fragment: IPv6Fragment | None

    header_size = 40

    @property
    def total_length(self) -> int:
        return 40 + self.payload_length

    @property
    def is_fragment(self) -> bool:
        return self.fragment is not None and self.fragment.is_fragment


def decode(buf: Buffer, offset: int = 0) -> IPv6Header:
    """Decode the IPv6 header at ``offset`` and walk its extension headers.

    The payload length must fit in ``buf``; trailing bytes (Ethernet padding) are ignored.
    """
    if offset < 0:
        raise MalformedError("IPv6", offset, "negative offset")
    vcf, plen, nh, hops, src, dst = IPV6.unpack(buf, offset)
    if vcf >> 28 != 6:
        raise MalformedError("IPv6", offset, f"version {vcf >> 28}, expected 6")
    if plen == 0 and nh == NH_HOP_BY_HOP:
        raise UnsupportedError("IPv6", offset + 4, "payload length 0 (jumbogram) not supported")
    end = offset + 40 + plen
    if len(buf) < end:
        raise TruncatedError(
            "IPv6", offset + 4, f"payload length {plen}, only {len(buf) - offset - 40} bytes"
        )
    chain = walk_extensions(buf, nh, offset + 40, end)
    return IPv6Header(
        (vcf >> 20) & 0xFF,
        vcf & 0xFFFFF,
        plen,
        nh,
        hops,
        bytes(src),
        bytes(dst),
        chain.extensions,
        chain.upper_protocol,
        chain.upper_offset,
        chain.fragment,
    )


def walk_extensions(buf: Buffer, next_header: int, pos: int, end: int) -> Chain:
    """Follow the extension chain from ``pos`` (the first header after the fixed one) to ``end``.

    Stops at the first non-extension header, or at a non-first fragment (whose "next header" is
    the protocol of a payload that this packet does not start).
    """
    exts: list[IPv6Extension] = []
    fragment: IPv6Fragment | None = None
    nh = next_header
    while nh in EXTENSION_TYPES:
        if len(exts) == _MAX_EXTENSIONS:
            raise MalformedError("IPv6 extension", pos, f"more than {_MAX_EXTENSIONS} headers")
        if nh == NH_HOP_BY_HOP and exts:
            raise MalformedError("IPv6 hop-by-hop", pos, "hop-by-hop header not first")
        if end - pos < 8:
            raise TruncatedError(
                "IPv6 extension", pos, f"type {nh} needs 8 bytes, have {max(end - pos, 0)}"
            )
        if nh == NH_FRAGMENT:
            nxt, _res, off_flags, ident = _FRAG.unpack_from(buf, pos)
            length = 8
            fragment = IPv6Fragment(off_flags & 0xFFF8, bool(off_flags & 1), ident)
        else:
            nxt = buf[pos]
            units = buf[pos + 1]
            length = (units + 2) * 4 if nh == NH_AH else (units + 1) * 8
            if pos + length > end:
                raise TruncatedError(
                    "IPv6 extension",
                    pos + 1,
                    f"type {nh} length {length} runs past the payload end {end}",
                )
        exts.append(IPv6Extension(nh, pos, length))
        pos += length
        nh = nxt
        if fragment is not None and fragment.offset != 0:
            break
    return Chain(tuple(exts), nh, pos, fragment)


def encode(
    source: bytes,
    destination: bytes,
    next_header: int,
    payload: Buffer = b"",
    *,
    hop_limit: int = 64,
    traffic_class: int = 0,
    flow_label: int = 0,
) -> bytes:
    """Build an IPv6 packet; ``payload`` includes any extension headers the caller built."""
    if len(source) != 16 or len(destination) != 16:
        raise MalformedError("IPv6", 8, "IPv6 addresses are 16 bytes")
    if len(payload) > 0xFFFF:
        raise MalformedError("IPv6", 4, "payload longer than 65535 (jumbograms unsupported)")
    if not 0 <= traffic_class <= 0xFF or not 0 <= flow_label <= 0xFFFFF:
        raise MalformedError("IPv6", 0, "traffic class or flow label out of range")
    try:
        head = _HEADER.pack(
            (6 << 28) | (traffic_class << 20) | flow_label,
            len(payload),
            next_header,
            hop_limit,
            source,
            destination,
        )
    except struct.error as exc:
        raise MalformedError("IPv6", 0, f"field out of range: {exc}") from None
    return head + bytes(payload)


def encode_extension(next_header: int, body: bytes, *, kind: int = NH_DEST_OPTS) -> bytes:
    """A generic extension header (options padded with PadN to a multiple of 8 octets)."""
    raw = bytes((next_header, 0)) + body
    pad = -len(raw) % 8
    if pad == 1:
        raw += b"\x00"  # Pad1
    elif pad:
        raw += bytes((1, pad - 2)) + b"\x00" * (pad - 2)  # PadN
    if kind == NH_AH:
        raise MalformedError("IPv6 extension", 0, "build AH headers by hand")
    return bytes((next_header, len(raw) // 8 - 1)) + raw[2:]


def encode_fragment(next_header: int, offset: int, more: bool, identification: int) -> bytes:
    """An 8-octet Fragment header (RFC 8200 §4.5)."""
    if offset % 8 or not 0 <= offset < 0x10000:
        raise MalformedError("IPv6 fragment", 2, f"fragment offset {offset} not encodable")
    return _FRAG.pack(next_header, 0, offset | int(more), identification & 0xFFFFFFFF)
