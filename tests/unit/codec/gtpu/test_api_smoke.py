"""The public API others import: a plain G-PDU and a 5G N3 one, decoded and re-encoded."""

from __future__ import annotations

from fluidedge.codec.gtpu import (
    GPdu,
    GtpuHeader,
    PduSessionContainer,
    decode,
    decode_header,
    encode,
    encode_gpdu,
    peek,
)


def test_plain_gpdu_roundtrip_is_zero_copy() -> None:
    inner = b"\x45" + bytes(19)
    wire = encode_gpdu(0x1234, inner)
    assert wire[:8].hex() == "30ff001400001234"
    msg = decode(wire)
    assert isinstance(msg, GPdu)
    assert msg.header == GtpuHeader(teid=0x1234)
    assert msg.header.length == 20
    assert msg.header.header_size == 8
    assert isinstance(msg.payload, memoryview)
    assert msg.payload.obj is wire  # a view of the input, not a copy
    assert bytes(msg.payload) == inner
    assert encode(msg) == wire
    assert peek(wire) == (255, 0x1234, 8, 28, -1)


def test_n3_uplink_with_qfi() -> None:
    wire = encode_gpdu(7, b"abc", extensions=(PduSessionContainer(1, 9),))
    header = decode_header(wire)
    assert header.qfi == 9
    assert header.extensions == (PduSessionContainer(1, 9),)
    assert peek(wire) == (255, 7, 16, 19, 9)
