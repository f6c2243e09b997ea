"""Differential tests against scapy, an implementation we did not write.

1. Frames that scapy builds decode, with our decoder, to the fields scapy put in.
2. Frames that our encoders build are dissected by scapy into the fields we meant, and scapy's
   own checksum recomputation agrees with the checksums we wrote.
"""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.contrib.gtp import GTP_U_Header, GTPPDUSessionContainer
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Packet, Raw
from tests.unit.codec.net.packets import ICMP as P_ICMP
from tests.unit.codec.net.packets import ICMPV6 as P_ICMPV6
from tests.unit.codec.net.packets import TCP as P_TCP
from tests.unit.codec.net.packets import UDP as P_UDP
from tests.unit.codec.net.packets import packet

from fluidedge.codec.gtpu import PduSessionContainer
from fluidedge.codec.net.ethernet import VlanTag
from fluidedge.codec.stack import (
    Kind,
    classify,
    decode_frame,
    encapsulate_gpdu,
    ethernet_frame,
    rewrite_inner,
)

v4 = st.ip_addresses(v=4).map(str)
v6 = st.ip_addresses(v=6).map(str)
port = st.integers(1, 0xFFFF)
teid = st.integers(0, 0xFFFFFFFF)


@st.composite
def scapy_frame(draw: st.DrawFn) -> tuple[Packet, dict[str, object]]:
    """A random G-PDU built by scapy, and the fields it was built with."""
    want: dict[str, object] = {}
    pkt: Packet = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    if draw(st.booleans()):
        vid = draw(st.integers(0, 4095))
        pkt = pkt / Dot1Q(vlan=vid)
        want["vlan"] = vid
    if draw(st.booleans()):
        src, dst = draw(v4), draw(v4)
        pkt = pkt / IP(src=src, dst=dst, ttl=draw(st.integers(1, 255)))
    else:
        src, dst = draw(v6), draw(v6)
        pkt = pkt / IPv6(src=src, dst=dst)
        if draw(st.booleans()):
            pkt = pkt / IPv6ExtHdrHopByHop()
    want["outer_src"] = ipaddress.ip_address(src).packed
    want["outer_dst"] = ipaddress.ip_address(dst).packed
    sport = draw(st.sampled_from([2152, draw(port)]))
    pkt = pkt / UDP(sport=sport, dport=2152)
    want["src_port"] = sport
    t = draw(teid)
    want["teid"] = t
    if draw(st.booleans()):
        qfi = draw(st.integers(0, 63))
        pkt = (
            pkt
            / GTP_U_Header(teid=t, E=1, next_ex=0x85)
            / GTPPDUSessionContainer(type=draw(st.integers(0, 1)), QFI=qfi)
        )
        want["qfi"] = qfi
    else:
        pkt = pkt / GTP_U_Header(teid=t)
        want["qfi"] = None
    if draw(st.booleans()):
        isrc, idst = draw(v4), draw(v4)
        pkt = pkt / IP(src=isrc, dst=idst)
        icmp: Packet = ICMP(type=8, id=draw(port))
    else:
        isrc, idst = draw(v6), draw(v6)
        pkt = pkt / IPv6(src=isrc, dst=idst)
        if draw(st.booleans()):
            pkt = pkt / IPv6ExtHdrDestOpt()
        icmp = ICMPv6EchoRequest(id=draw(port))
    want["inner_src"] = ipaddress.ip_address(isrc).packed
    want["inner_dst"] = ipaddress.ip_address(idst).packed
    kind = draw(st.sampled_from(["tcp", "udp", "icmp"]))
    if kind == "icmp":
        pkt = pkt / icmp
        want["icmp_id"] = icmp.id
        want["inner_sport"] = None
    else:
        isport, idport = draw(port), draw(port)
        pkt = pkt / (TCP if kind == "tcp" else UDP)(sport=isport, dport=idport)
        want["inner_sport"], want["inner_dport"] = isport, idport
    pkt = pkt / Raw(draw(st.binary(max_size=32)))
    return pkt, want


@settings(max_examples=150)
@given(scapy_frame())
def test_scapy_built_frames_decode_to_their_fields(case: tuple[Packet, dict[str, object]]) -> None:
    pkt, want = case
    raw = bytes(pkt)
    got = classify(raw)
    assert got.kind == Kind.GTP_GPDU, got.error
    for name, value in want.items():
        assert getattr(got, name) == value, name
    assert got == decode_frame(raw).classified()
    # the inner offset is where scapy put the inner IP header
    inner = pkt[GTP_U_Header].payload
    while isinstance(inner, GTPPDUSessionContainer):
        inner = inner.payload
    assert got.inner_offset is not None
    assert raw[got.inner_offset :] == bytes(inner)


def scapy_checksums_agree(raw: bytes) -> int:
    """Dissect with scapy; for every layer with a checksum, blank it, let scapy rebuild the
    frame (scapy recomputes blank checksums, pseudo-headers included), and compare with ours.
    Returns how many checksums were compared."""
    pkt = Ether(raw)
    compared = 0
    depth = 0
    layer: Packet = pkt
    while layer and not isinstance(layer, Raw):
        attr = "chksum" if "chksum" in layer.fields else "cksum" if "cksum" in layer.fields else ""
        if attr and not isinstance(layer, GTP_U_Header):
            ours = getattr(layer, attr)
            check = pkt.copy()
            target: Packet = check
            for _ in range(depth):
                target = target.payload
            setattr(target, attr, None)
            rebuilt: Packet = Ether(bytes(check))
            for _ in range(depth):
                rebuilt = rebuilt.payload
            assert ours == getattr(rebuilt, attr), f"{layer.name} at depth {depth}"
            compared += 1
        layer = layer.payload
        depth += 1
    return compared


@st.composite
def our_frame(draw: st.DrawFn) -> tuple[bytes, dict[str, object]]:
    version = draw(st.sampled_from([4, 6]))
    proto = draw(st.sampled_from([P_TCP, P_UDP, P_ICMP if version == 4 else P_ICMPV6]))
    a = st.binary(min_size=4, max_size=4) if version == 4 else st.binary(min_size=16, max_size=16)
    isrc, idst, sp, dp = draw(a), draw(a), draw(port), draw(port)
    inner = packet(version, proto, isrc, idst, sp, dp, draw(st.binary(max_size=40)))
    outer6 = draw(st.booleans())
    oa = st.binary(min_size=16, max_size=16) if outer6 else st.binary(min_size=4, max_size=4)
    osrc, odst, t = draw(oa), draw(oa), draw(teid)
    psc = draw(st.booleans())
    exts = (PduSessionContainer(pdu_type=1, qfi=draw(st.integers(0, 63))),) if psc else ()
    vlans = (VlanTag(0x8100, 0, False, draw(st.integers(1, 4094))),) if draw(st.booleans()) else ()
    raw = ethernet_frame(
        bytes.fromhex("020000000002"),
        bytes.fromhex("020000000001"),
        encapsulate_gpdu(osrc, odst, t, inner, extensions=exts),
        vlans=vlans,
    )
    want = {"osrc": osrc, "odst": odst, "teid": t, "isrc": isrc, "idst": idst, "proto": proto,
            "sport": sp, "dport": dp, "vlan": vlans[0].vid if vlans else None}  # fmt: skip
    if draw(st.booleans()):
        c = classify(raw)
        buf = bytearray(raw)
        new_src = draw(a)
        rewrite_inner(buf, c, source=new_src, source_port=999 if proto in (6, 17) else None)
        raw = bytes(buf)
        want["isrc"] = new_src
        if proto in (6, 17):
            want["sport"] = 999
    return raw, want


@settings(max_examples=150, deadline=None)
@given(our_frame())
def test_scapy_dissects_our_frames_with_good_checksums(
    case: tuple[bytes, dict[str, object]],
) -> None:
    raw, want = case
    pkt = Ether(raw)
    outer = pkt[UDP].underlayer
    assert ipaddress.ip_address(outer.src).packed == want["osrc"]
    assert ipaddress.ip_address(outer.dst).packed == want["odst"]
    assert pkt[UDP].dport == 2152
    assert pkt[GTP_U_Header].teid == want["teid"]
    if want["vlan"] is not None:
        assert pkt[Dot1Q].vlan == want["vlan"]
    inner = pkt[GTP_U_Header].payload
    while isinstance(inner, GTPPDUSessionContainer):
        inner = inner.payload
    assert ipaddress.ip_address(inner.src).packed == want["isrc"]
    assert ipaddress.ip_address(inner.dst).packed == want["idst"]
    l4 = inner.payload
    while isinstance(l4, (IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop)):
        l4 = l4.payload
    if want["proto"] in (P_TCP, P_UDP):
        assert (l4.sport, l4.dport) == (want["sport"], want["dport"])
    else:
        assert l4.id == want["sport"]
    # outer UDP, inner transport, and one or two IPv4 header checksums
    assert scapy_checksums_agree(raw) >= 2
