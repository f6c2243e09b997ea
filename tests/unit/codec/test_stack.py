"""The frame decoder and the fast classifier: same answers, never a foreign exception."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.codec.net.packets import ICMP, ICMPV6, TCP, UDP, packet

from fluidedge.codec.errors import CodecError
from fluidedge.codec.gtpu import ExtensionHeader, PduSessionContainer, UnknownExtension, encode_gpdu
from fluidedge.codec.net import ethernet, ipv4, ipv6, udp
from fluidedge.codec.net.ethernet import VlanTag
from fluidedge.codec.stack import (
    Classified,
    Kind,
    classify,
    decode_frame,
    encapsulate,
    encapsulate_gpdu,
    ethernet_frame,
)

MAC1, MAC2 = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
A4 = st.binary(min_size=4, max_size=4)
A6 = st.binary(min_size=16, max_size=16)


@st.composite
def gpdu_frame(draw: st.DrawFn) -> bytes:
    """Valid G-PDU frames, mostly of the shapes the fast path takes, some that it does not."""
    iv = draw(st.sampled_from([4, 4, 4, 6]))
    proto = draw(st.sampled_from([TCP, UDP, ICMP if iv == 4 else ICMPV6, 47]))
    a = A4 if iv == 4 else A6
    if proto == 47:  # GRE: no ports
        body = draw(st.binary(max_size=30))
        inner = (ipv4.encode if iv == 4 else ipv6.encode)(draw(a), draw(a), 47, body)
    else:
        inner = packet(iv, proto, draw(a), draw(a), draw(st.integers(0, 65535)),
                       draw(st.integers(0, 65535)), draw(st.binary(max_size=30)))  # fmt: skip
    outer6 = draw(st.sampled_from([False, False, False, True]))
    oa = A6 if outer6 else A4
    exts: tuple[ExtensionHeader, ...] = ()
    if draw(st.booleans()):
        exts = (
            PduSessionContainer(
                pdu_type=draw(st.integers(0, 1)),
                qfi=draw(st.integers(0, 63)),
                rqi=draw(st.booleans()),
            ),
        )
        if exts[0].pdu_type == 1:  # the UL form has no RQI
            exts = (PduSessionContainer(pdu_type=1, qfi=draw(st.integers(0, 63))),)
    if draw(st.integers(0, 5)) == 0:  # an unknown type an intermediate node forwards (00/01/10)
        unknown = UnknownExtension(draw(st.sampled_from([0x01, 0x41, 0xA0, 0xBE])), bytes(2))
        exts = (unknown, *exts) if draw(st.booleans()) else (*exts, unknown)
    # S and PN as real cores send them (osmo-ggsn always sets S)
    sequence = draw(st.one_of(st.none(), st.integers(0, 0xFFFF)))
    npdu = draw(st.one_of(st.none(), st.integers(0, 0xFF)))
    ports = draw(st.sampled_from([(2152, 2152), (40000, 2152), (2152, 40000)]))
    ip_packet = encapsulate_gpdu(
        draw(oa), draw(oa), draw(st.integers(0, 2**32 - 1)), inner, extensions=exts,
        sequence=sequence, npdu=npdu, src_port=ports[0], dst_port=ports[1],
        udp_checksum=outer6 or draw(st.booleans()),
    )  # fmt: skip
    vlans = (VlanTag(0x8100, 0, False, 5),) if draw(st.integers(0, 9)) == 0 else ()
    frame = ethernet_frame(MAC2, MAC1, ip_packet, vlans=vlans)
    return frame + bytes(draw(st.sampled_from([0, 0, 0, 4])))  # sometimes Ethernet padding


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid frame with a few bytes changed, cut short, or grown."""
    raw = bytearray(draw(gpdu_frame()))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["flip", "flip", "cut", "grow"]))
        if op == "flip" and raw:
            # bias towards the headers, where the fast path's conditions live
            at = draw(st.integers(0, min(len(raw), 90) - 1))
            raw[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del raw[draw(st.integers(0, len(raw))) :]
        else:
            raw += draw(st.binary(min_size=1, max_size=8))
    return bytes(raw)


def check_same(raw: bytes) -> Classified:
    fast = classify(raw)
    full = decode_frame(raw).classified()
    assert fast == full
    assert type(fast) is type(full)  # both IpGpdu, or both OtherFrame
    return fast


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(gpdu_frame())
def test_classify_equals_full_decoder_on_valid_frames(raw: bytes) -> None:
    got = check_same(raw)
    assert got.kind == Kind.GTP_GPDU
    assert got.error is None


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_classify_equals_full_decoder_on_mutated_frames(raw: bytes) -> None:
    check_same(raw)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise(raw: bytes) -> None:
    got = check_same(raw)  # neither raises: both return
    assert got.kind in set(Kind)
    assert (got.kind == Kind.MALFORMED) == (got.error is not None)


def test_fast_path_taken_for_plain_s_flagged_and_psc_gpdus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The common shapes (plain, S/PN-flagged, one PSC with or without S) never reach the full
    decoder."""
    from fluidedge.codec import stack

    inner = packet(4, UDP, bytes(4), bytes(4), 1, 2, b"x")
    psc = (PduSessionContainer(pdu_type=1, qfi=5),)
    shapes = {
        "plain": {},
        "S": {"sequence": 7},
        "PN": {"npdu": 3},
        "S+PN": {"sequence": 7, "npdu": 3},
        "PSC": {"extensions": psc},
        "S+PSC": {"sequence": 9, "extensions": psc},
    }
    frames = {
        name: ethernet_frame(MAC2, MAC1, encapsulate_gpdu(bytes(4), bytes(4), 1, inner, **kw))  # type: ignore[arg-type]
        for name, kw in shapes.items()
    }
    calls = []
    original = stack.decode_frame

    def spy(buf: bytes) -> stack.Frame:
        calls.append(buf)
        return original(buf)

    monkeypatch.setattr(stack, "decode_frame", spy)
    for name, frame in frames.items():
        got = stack.classify(frame)
        assert (got.kind, got.inner_sport, got.teid) == (Kind.GTP_GPDU, 1, 1), name
        assert got.qfi == (5 if "PSC" in name else None), name
        assert got.inner_offset == 50 + (8 if "PSC" in name else 4 if name != "plain" else 0)
    assert calls == []
    monkeypatch.setattr(stack, "decode_frame", original)
    for frame in frames.values():
        assert stack.classify(frame) == original(frame).classified()


@pytest.mark.parametrize("ext_type", [0x01, 0x41, 0x80, 0xA0, 0xBF])
def test_unknown_forwardable_extension_still_gives_teid_and_inner(ext_type: int) -> None:
    """Comprehension bits 00/01/10 (TS 29.281 §5.2.1): forwarded by intermediate nodes, so a
    G-PDU with its TEID and inner packet, the unknown type named in ``unknown_ext``."""
    inner = packet(4, TCP, bytes([10, 45, 0, 3]), bytes([198, 18, 0, 9]), 40000, 80, b"")
    exts = (UnknownExtension(0x41, b"\x00\x00"), UnknownExtension(ext_type, b"\xab\xcd"))
    frame = ethernet_frame(
        MAC2, MAC1, encapsulate_gpdu(bytes(4), bytes(4), 0x77, inner, sequence=1, extensions=exts)
    )
    got = check_same(frame)
    assert (got.kind, got.error, got.teid, got.inner_dport) == (Kind.GTP_GPDU, None, 0x77, 80)
    assert got.inner_src == bytes([10, 45, 0, 3])
    assert got.unknown_ext == (ext_type if ext_type >> 6 >= 1 else 0x41)


def test_unknown_extension_required_by_every_node_is_malformed() -> None:
    inner = packet(4, UDP, bytes(4), bytes(4), 1, 2, b"x")
    ok = encapsulate_gpdu(
        bytes(4), bytes(4), 1, inner, extensions=(UnknownExtension(0xA1, b"\x00\x00"),)
    )
    frame = bytearray(ethernet_frame(MAC2, MAC1, ok))
    assert frame[42 + 11] == 0xA1
    frame[42 + 11] = 0xE1  # comprehension bits 11
    got = check_same(bytes(frame))
    assert got.kind == Kind.MALFORMED
    assert got.error is not None
    assert (got.error.error, got.error.header) == (
        "UnsupportedError",
        "GTP-U extension header 0xe1",
    )
    assert got.unknown_ext is None


@pytest.mark.parametrize("junk", [None, 5, "text", 3.5, object(), [1, 2, 3]])
def test_non_buffers_are_malformed_not_raised(junk: object) -> None:
    for got in (classify(junk), decode_frame(junk).classified()):  # type: ignore[arg-type]
        assert got.kind == Kind.MALFORMED
        assert got.error is not None
        assert (got.error.header, got.error.offset) == ("Ethernet", 0)
        assert "not a bytes-like buffer" in got.error.reason


def test_released_memoryview_is_malformed_not_raised() -> None:
    view = memoryview(b"\x00" * 80)
    view.release()
    assert classify(view).kind == Kind.MALFORMED
    assert decode_frame(view).kind == Kind.MALFORMED


def test_memoryviews_of_other_formats_count_octets() -> None:
    """An 'H' view of a frame has half as many items as octets: offsets must still be octets."""
    inner = packet(4, UDP, bytes(4), bytes(4), 1, 2, b"xy")
    frame = ethernet_frame(MAC2, MAC1, encapsulate_gpdu(bytes(4), bytes(4), 9, inner, sequence=1))
    frame += bytes(len(frame) % 2)  # an even length, so that it casts to 16-bit items
    want = classify(frame)
    assert want.kind == Kind.GTP_GPDU
    for view in (
        memoryview(frame).cast("H"),
        memoryview(frame).cast("B", (2, len(frame) // 2)),
        memoryview(frame).cast("c"),
        memoryview(frame).cast("b"),
        memoryview(bytes(x for b in frame for x in (b, 0)))[::2],  # strided, not contiguous
    ):
        assert classify(view) == want
        assert decode_frame(view).classified() == want


# --- encoders: encode -> decode round trips ----------------------------------------------------


@given(
    A4, A4, st.integers(0, 255), st.binary(max_size=64), st.integers(0, 255), st.integers(0, 255),
    st.integers(0, 0xFFFF), st.booleans(), st.booleans(), st.integers(0, 0x1FFF),
    st.lists(st.sampled_from([1, 7, 68]), max_size=3),
)  # fmt: skip
def test_ipv4_round_trip(  # noqa: PLR0917 - hypothesis passes strategies positionally
    src: bytes, dst: bytes, proto: int, payload: bytes, ttl: int, tos: int, ident: int,
    df: bool, mf: bool, frag: int, opt_types: list[int],
) -> None:  # fmt: skip
    opts = tuple(
        ipv4.IPv4Option(t, b"" if t == 1 else bytes([4, 0, 0, 0, 0][: 1 + (t == 7) * 4]))
        for t in opt_types
    )
    raw = ipv4.encode(src, dst, proto, payload, ttl=ttl, tos=tos, identification=ident,
                      dont_fragment=df, more_fragments=mf, fragment_offset=frag * 8,
                      options=opts)  # fmt: skip
    h = ipv4.decode(raw)
    assert (h.source, h.destination, h.protocol, h.ttl, h.tos, h.identification) == (
        src, dst, proto, ttl, tos, ident)  # fmt: skip
    assert (h.dont_fragment, h.more_fragments, h.fragment_offset) == (df, mf, frag * 8)
    assert tuple(o for o in h.options) == opts
    assert raw[h.header_size :] == payload
    assert ipv4.header_checksum_ok(raw)


@given(A6, A6, st.binary(max_size=64), st.integers(0, 255), st.integers(0, 0xFFFFF),
       st.booleans(), st.booleans())  # fmt: skip
def test_ipv6_round_trip_with_extensions(  # noqa: PLR0917 - as above
    src: bytes, dst: bytes, payload: bytes, tclass: int, flow: int, hbh: bool, frag: bool
) -> None:
    body = udp.encode(src, dst, 2152, 2152, payload)
    nh = 17
    if frag:
        body = ipv6.encode_fragment(nh, 0, False, 0xABCD) + body
        nh = 44
    if hbh:
        body = ipv6.encode_extension(nh, b"") + body
        nh = 0
    raw = ipv6.encode(src, dst, nh, body, traffic_class=tclass, flow_label=flow)
    h = ipv6.decode(raw)
    assert (h.source, h.destination, h.traffic_class, h.flow_label) == (src, dst, tclass, flow)
    assert h.upper_protocol == 17
    assert [e.type for e in h.extensions] == [t for t, on in ((0, hbh), (44, frag)) if on]
    u = udp.decode(raw, h.upper_offset)
    assert u.length == 8 + len(payload)
    assert udp.checksum_ok(src, dst, raw[h.upper_offset :])


@given(st.lists(st.tuples(st.sampled_from([0x8100, 0x88A8]), st.integers(0, 7),
                          st.booleans(), st.integers(0, 4095)), max_size=3))  # fmt: skip
def test_ethernet_round_trip(tags: list[tuple[int, int, bool, int]]) -> None:
    vlans = tuple(VlanTag(*t) for t in tags)
    raw = ethernet.encode(MAC2, MAC1, 0x0800, b"payload", vlans=vlans)
    h = ethernet.decode(raw)
    assert (h.destination, h.source, h.vlans, h.ethertype) == (MAC2, MAC1, vlans, 0x0800)
    assert raw[h.header_size :] == b"payload"


@given(st.one_of(st.tuples(A4, A4), st.tuples(A6, A6)), st.integers(0, 2**32 - 1),
       st.binary(max_size=100), st.booleans())  # fmt: skip
def test_encapsulation_round_trip(
    addrs: tuple[bytes, bytes], teid: int, inner: bytes, checksum: bool
) -> None:
    src, dst = addrs
    with_ck = checksum or len(src) == 16
    raw = ethernet_frame(MAC2, MAC1, encapsulate(src, dst, encode_gpdu(teid, inner),
                                                 udp_checksum=with_ck))  # fmt: skip
    f = decode_frame(raw)
    assert f.ip is not None
    assert (f.ip.source, f.ip.destination) == (src, dst)
    assert f.gtpu is not None
    assert f.gtpu.header.teid == teid
    assert f.payload_offset is not None
    assert raw[f.payload_offset : f.payload_end] == inner
    assert f.udp is not None
    assert f.udp_offset is not None
    if with_ck:
        assert udp.checksum_ok(src, dst, raw[f.udp_offset :])
    else:
        assert f.udp.checksum == 0
    if len(src) == 4:
        assert ipv4.header_checksum_ok(raw, 14)


def test_udp_checksum_is_mandatory_over_ipv6() -> None:
    with pytest.raises(CodecError) as err:
        encapsulate(bytes(16), bytes(16), b"x", udp_checksum=False)
    assert err.value.header == "UDP"


def test_decode_errors_name_header_and_offset() -> None:
    inner = packet(4, TCP, bytes(4), bytes(4), 1, 2, b"")
    good = ethernet_frame(MAC2, MAC1, encapsulate_gpdu(bytes(4), bytes(4), 1, inner))
    cases = {
        "IPv4": (14, 0x55),  # version 5
        "UDP": (14 + 20 + 5, 4),  # UDP length 4 < 8
        "GTP-U header": (42, 0x50),  # GTP version 2
        "inner IPv4": (50, 0x43),  # IHL 3
    }
    for header, (at, value) in cases.items():
        raw = bytearray(good)
        raw[at] = value
        got = classify(bytes(raw))
        assert got.kind == Kind.MALFORMED, header
        assert got.error is not None
        assert got.error.header == header
        assert got.error.offset <= at
    truncated = classify(good[:40])
    assert truncated.error is not None
    assert truncated.error.header == "IPv4"
    assert truncated.error.error == "TruncatedError"


def test_non_ip_gpdu_payload_is_a_gpdu_without_inner_tuple() -> None:
    raw = ethernet_frame(MAC2, MAC1, encapsulate_gpdu(bytes(4), bytes(4), 9, b"\x00" * 20))
    got = check_same(raw)
    assert got.kind == Kind.GTP_GPDU
    assert got.inner_proto is None
    assert (got.inner_offset, got.inner_end) == (50, 70)


def test_udp_trailer_and_ethernet_padding() -> None:
    """Bytes after the UDP length (inside IP) and after IP (Ethernet pad) are ignored."""
    inner = packet(4, UDP, bytes(4), bytes(4), 7, 8, b"")
    ip = bytearray(encapsulate_gpdu(bytes(4), bytes(4), 1, inner, udp_checksum=False))
    ip += b"\x00" * 6
    struct.pack_into("!H", ip, 2, len(ip))
    struct.pack_into("!H", ip, 10, 0)
    from fluidedge.codec.net.checksum import checksum

    struct.pack_into("!H", ip, 10, checksum(ip[:20]))
    got = check_same(ethernet_frame(MAC2, MAC1, bytes(ip)) + b"\x00" * 10)
    assert got.kind == Kind.GTP_GPDU
    assert got.inner_sport == 7


def test_icmpv6_in_ipv4_is_just_an_unknown_protocol() -> None:
    """Found by bench/fuzz_stack.py: ICMP is read for IPv4 only, ICMPv6 for IPv6 only."""
    raw = bytes.fromhex(
        "0200000000020200000000010800450000400000400040112ad9d5470673bc7777a208680868002c5ef7"
        "30ff001ccc5c2f3f4500001c00000000403a1617284b674692a6a2d991ed784bae23426580c034bab69a"
        "e72d"
    )
    got = check_same(raw)
    assert (got.kind, got.inner_proto, got.icmp_type) == (Kind.GTP_GPDU, 58, None)


def test_fuzz_script_small_run() -> None:
    """bench/fuzz_stack.py (the 100,000-case run) works and finds nothing in a short run."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).parents[3]
    result = subprocess.run(
        [sys.executable, str(root / "bench" / "fuzz_stack.py"), "--cases", "3000", "--seed", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=root,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3,000 cases" in result.stdout
    assert " 0 failures" in result.stdout
