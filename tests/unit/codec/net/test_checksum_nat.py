"""RFC 1071 checksums and RFC 1624 incremental NAT updates against full recomputation."""

from __future__ import annotations

import struct

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from tests.unit.codec.net.packets import ICMP, ICMPV6, TCP, UDP, checksums_ok, packet

from fluidedge.codec.errors import CodecError, UnsupportedError
from fluidedge.codec.net import checksum as ck
from fluidedge.codec.net import inner, nat
from fluidedge.codec.stack import Kind, classify, encapsulate_gpdu, ethernet_frame, rewrite_inner

MAC1, MAC2 = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")


def reference_sum(data: bytes) -> int:
    """RFC 1071 §4.1 loop, literally: 16-bit words, end-around carry."""
    if len(data) % 2:
        data += b"\x00"
    s = 0
    for (w,) in struct.iter_unpack("!H", data):
        s += w
        s = (s & 0xFFFF) + (s >> 16)
    return s


def test_rfc1071_example() -> None:
    # RFC 1071 §3 numerical example: words 0001 f203 f4f5 f6f7 sum to ddf2
    assert ck.ones_sum(bytes.fromhex("0001f203f4f5f6f7")) == 0xDDF2
    assert ck.checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


@given(st.binary(max_size=300))
def test_ones_sum_matches_rfc1071_loop(data: bytes) -> None:
    assert ck.ones_sum(data) == reference_sum(data)


@given(st.binary(min_size=2, max_size=64).filter(lambda b: len(b) % 2 == 0), st.data())
def test_incremental_update_equals_recomputation(data: bytes, draw: st.DataObject) -> None:
    """RFC 1624 eq. 3 on a buffer whose checksum is embedded in its first word."""
    buf = bytearray(b"\x00\x00" + data)
    struct.pack_into("!H", buf, 0, ck.checksum(buf))
    at = draw.draw(st.integers(1, len(data) // 2)) * 2
    new = draw.draw(st.binary(min_size=2, max_size=2))
    old_csum = struct.unpack_from("!H", buf, 0)[0]
    new_csum = ck.update(old_csum, bytes(buf[at : at + 2]), new)
    buf[at : at + 2] = new
    buf[0:2] = b"\x00\x00"
    # RFC 1624 §3: only data that is ALL zero can tell the two zeros apart (full: 0xFFFF,
    # incremental: 0x0000); no real header is all zero (version, protocol, type fields).
    assume(any(buf))
    assert new_csum == ck.checksum(buf)


addr4 = st.binary(min_size=4, max_size=4)
addr6 = st.binary(min_size=16, max_size=16)
port = st.integers(0, 0xFFFF)


@st.composite
def nat_case(draw: st.DrawFn) -> tuple[int, int, bytes, dict[str, object]]:
    version = draw(st.sampled_from([4, 6]))
    proto = draw(st.sampled_from([TCP, UDP, ICMP if version == 4 else ICMPV6]))
    addr = addr4 if version == 4 else addr6
    udp_zero = version == 4 and proto == UDP and draw(st.booleans())
    pkt = packet(
        version,
        proto,
        draw(addr),
        draw(addr),
        draw(port),
        draw(port),
        draw(st.binary(max_size=40)),
        udp_zero=udp_zero,
    )
    edits: dict[str, object] = {}
    if draw(st.booleans()):
        edits["source"] = draw(addr)
    if draw(st.booleans()):
        edits["destination"] = draw(addr)
    if proto in (TCP, UDP):
        if draw(st.booleans()):
            edits["source_port"] = draw(port)
        if draw(st.booleans()):
            edits["destination_port"] = draw(port)
    elif draw(st.booleans()):
        edits["icmp_id"] = draw(port)
    return version, proto, pkt, edits


@given(nat_case())
def test_nat_rewrite_equals_full_recomputation(case: tuple[int, int, bytes, dict]) -> None:  # type: ignore[type-arg]
    version, proto, pkt, edits = case
    buf = bytearray(pkt)
    udp_zero = proto == UDP and version == 4 and pkt[26:28] == b"\x00\x00"
    nat.rewrite(buf, 0, **edits)
    got = inner.decode(buf)
    for key, attr in (
        ("source", "source"),
        ("destination", "destination"),
        ("source_port", "source_port"),
        ("destination_port", "destination_port"),
        ("icmp_id", "icmp_id"),
    ):
        if key in edits:
            assert getattr(got, attr) == edits[key]
    assert checksums_ok(buf) == (True, True)
    if udp_zero:
        assert buf[26:28] == b"\x00\x00"  # "no checksum" stays "no checksum"


@given(nat_case(), st.booleans())
def test_rewrite_inner_keeps_outer_udp_checksum_right(
    case: tuple[int, int, bytes, dict],  # type: ignore[type-arg]
    outer6: bool,
) -> None:
    _, _, pkt, edits = case
    src, dst = (
        (b"\x20\x01\x0d\xb8" + bytes(11) + b"\x01", b"\x20\x01\x0d\xb8" + bytes(12))
        if (outer6)
        else (bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2]))
    )
    frame = bytearray(ethernet_frame(MAC2, MAC1, encapsulate_gpdu(src, dst, 5, pkt)))
    c = classify(frame)
    assert c.kind == Kind.GTP_GPDU
    rewrite_inner(frame, c, **edits)
    assert c.inner_offset is not None
    assert checksums_ok(frame, c.inner_offset) == (True, True)
    assert checksums_ok(frame, 14)[0]
    # the outer UDP checksum still verifies over the rewritten G-PDU
    from fluidedge.codec.net import udp

    assert c.udp_offset is not None
    ulen = struct.unpack_from("!H", frame, c.udp_offset + 4)[0]
    assert udp.checksum_ok(src, dst, frame[c.udp_offset : c.udp_offset + ulen])


def test_ports_of_a_later_fragment_cannot_be_rewritten() -> None:
    from fluidedge.codec.net import ipv4

    frag = bytearray(ipv4.encode(bytes(4), bytes(4), 6, b"x" * 16, fragment_offset=64))
    with pytest.raises(UnsupportedError) as err:
        nat.rewrite(frag, 0, source_port=1)
    assert err.value.header == "inner IP"
    # addresses still can, and the header checksum stays right
    nat.rewrite(frag, 0, source=bytes([10, 0, 0, 1]))
    assert ck.checksum(frag[:20]) == 0


def test_bad_nat_arguments_leave_the_packet_alone() -> None:
    pkt = bytearray(packet(4, TCP, bytes(4), bytes(4), 1, 2, b""))
    before = bytes(pkt)
    with pytest.raises(CodecError):
        nat.rewrite(pkt, 0, source=bytes(4), source_port=70000)
    with pytest.raises(CodecError):
        nat.rewrite(pkt, 0, source=bytes(16))
    assert bytes(pkt) == before
