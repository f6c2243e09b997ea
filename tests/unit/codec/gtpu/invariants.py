"""What must hold for ANY input to the GTP-U decoder; shared by the fuzz test and
``bench/fuzz_gtpu.py``.

:func:`check` returns the outcome's name, raises ``AssertionError`` when an invariant breaks and
lets any other exception escape (which is itself the failure being hunted: decoders may raise
only :class:`CodecError`).
"""

from __future__ import annotations

from fluidedge.codec.errors import CodecError
from fluidedge.codec.gtpu import GenericMessage, GPdu, decode, decode_header, encode, peek

# Failures that lie in parts peek() deliberately does not read (IEs, extension contents).
_PEEK_BLIND = (
    "GTP-U PDU Session Container",
    "GTP-U Long PDCP PDU Number extension",
    "GTP-U IE",
    "GTP-U Error Indication",
    "GTP-U Echo Response",
    "GTP-U Supported Extension Headers Notification",
)


_BODY_ONLY = (
    "GTP-U message body",
    "GTP-U IE",
    "GTP-U Error Indication",
    "GTP-U Supported Extension Headers Notification",
    "GTP-U Echo Response",
)


def ie_types(body: bytes) -> list[int]:
    """Types of the IEs in a body the decoder accepted (so it is well formed)."""
    types, pos = [], 0
    while pos < len(body):
        t = body[pos]
        types.append(t)
        if t == 14:
            pos += 2
        elif t == 16:
            pos += 5
        elif t == 141:
            pos += 2 + body[pos + 1]
        else:
            pos += 3 + int.from_bytes(body[pos + 1 : pos + 3], "big")
    return types


def check(data: bytes | bytearray | memoryview, offset: int = 0) -> str:
    data = bytes(data) if not isinstance(data, bytes) else data
    try:
        msg = decode(data, offset)
    except CodecError as exc:
        return _check_error(exc, data, offset)
    h = msg.header
    end = offset + 8 + h.length
    assert end <= len(data)
    assert 8 <= h.header_size <= 8 + h.length
    assert decode_header(data, offset) == h
    qfi = -1 if h.qfi is None else h.qfi
    assert peek(data, offset) == (h.message_type, h.teid, offset + h.header_size, end, qfi)
    if isinstance(msg, GPdu):
        assert bytes(msg.payload) == data[offset + h.header_size : end]
    # the same octets as bytearray and as a memoryview decode the same
    assert decode(bytearray(data), offset) == msg
    assert decode(memoryview(data), offset) == msg
    wire = encode(msg)
    again = decode(wire)
    assert again == msg
    assert encode(again) == wire
    if wire != data[offset:end]:
        # The one allowed difference: IEs not in the ascending type order TS 29.281 §7.1
        # prescribes are written back sorted.
        assert not isinstance(msg, GPdu | GenericMessage), (data.hex(), wire.hex())
        assert wire[: h.header_size] == data[offset : offset + h.header_size]
        assert len(wire) == end - offset
        types = ie_types(data[offset + h.header_size : end])
        assert types != sorted(types), (data.hex(), wire.hex())
    return type(msg).__name__


def _check_error(exc: CodecError, data: bytes, offset: int) -> str:
    assert isinstance(exc.header, str)
    assert exc.header.startswith("GTP-U"), exc
    assert isinstance(exc.offset, int)
    assert exc.offset == offset or 0 <= exc.offset <= len(data), exc
    peek_error: CodecError | None = None
    try:
        peek(data, offset)
    except CodecError as peeked:
        peek_error = peeked
    if peek_error is None:
        assert exc.header.startswith(_PEEK_BLIND), f"peek accepted what decode refused: {exc}"
    header_error: CodecError | None = None
    try:
        decode_header(data, offset)
    except CodecError as failed:
        header_error = failed
    if header_error is None:
        # only the body (its presence, its IEs) is beyond decode_header's reach
        assert exc.header.startswith(_BODY_ONLY), f"decode_header accepted, decode said {exc}"
    else:
        same = (type(header_error), header_error.header, header_error.offset)
        assert same == (type(exc), exc.header, exc.offset), (header_error, exc)
    return type(exc).__name__
