"""G-PDUs with unknown extension headers an intermediate node forwards (TS 29.281 §5.2.1,
comprehension bits 00/01/10), as real cores may send them with the S flag set: the TOF passes
them through byte for byte and learns their bearer (the codec reports them as G-PDUs, the
unknown type in ``Classified.unknown_ext``). Unknown types with bits 11 stay malformed and
pass through, counted."""

from __future__ import annotations

import pytest

from fluidedge.codec.gtpu import UnknownExtension
from fluidedge.codec.stack import Kind, classify
from fluidedge.tof.pipeline import ENB, SGW

from .test_pipeline import ENB1, PDN, SGW1, UE1, gpdu, pipeline, udp_packet


@pytest.mark.parametrize("ext_type", [0x03, 0x41, 0xA0])
def test_forwardable_unknown_extension_passes_through_and_is_learned(ext_type: int) -> None:
    p = pipeline()
    ext = (UnknownExtension(ext_type, b"\x12\x34"),)
    up = gpdu(ENB1, SGW1, 0x100, udp_packet(UE1, PDN, 1000, 80), sequence=1, extensions=ext)
    down = gpdu(
        SGW1, ENB1, 0x200, udp_packet(PDN, UE1, 80, 1000), uplink=False, sequence=7, extensions=ext
    )
    assert classify(up).unknown_ext == ext_type
    assert classify(up).kind == Kind.GTP_GPDU
    out_up = p.from_s1(up, ENB, 1.0)
    out_down = p.from_s1(down, SGW, 1.0)
    assert out_up == [(SGW, up)]
    assert out_up[0][1] is up  # the same bytes object: byte for byte
    assert out_down[0][1] is down
    (row,) = p.tunnels()
    assert (row["ue"], row["uplinkTEID"], row["downlinkTEID"]) == ("198.18.100.1", 0x100, 0x200)
    assert sum(p.malformed.values()) == 0


def test_unknown_extension_required_by_every_node_passes_through_as_malformed() -> None:
    p = pipeline()
    frame = bytearray(
        gpdu(ENB1, SGW1, 0x100, udp_packet(UE1, PDN, 1000, 80),
             extensions=(UnknownExtension(0xA0, b"\x00\x00"),))
    )  # fmt: skip
    frame[42 + 11] = 0xE0  # comprehension bits 11: every node must understand it
    data = bytes(frame)
    out = p.from_s1(data, ENB, 1.0)
    assert out[0][1] is data
    assert p.tunnels() == []
    assert sum(p.malformed.values()) == 1
