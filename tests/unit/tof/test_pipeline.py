"""The pure TOF pipeline on hand-built frames: every behaviour of the issue, without I/O."""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from fluidedge.codec import gtpu
from fluidedge.codec.gtpu import PDU_TYPE_UL, PduSessionContainer
from fluidedge.codec.net import checksum as ck
from fluidedge.codec.net import ipv4, udp
from fluidedge.codec.stack import Kind, classify, encapsulate, encapsulate_gpdu, ethernet_frame
from fluidedge.tof.config import TofConfig
from fluidedge.tof.models import Service
from fluidedge.tof.pipeline import APPS, ENB, PINGER_ID, SGW, Pipeline

MAC_ENB = bytes.fromhex("020000000001")
MAC_SGW = bytes.fromhex("020000000002")
ENB1 = ipaddress.IPv4Address("198.18.0.11").packed
ENB2 = ipaddress.IPv4Address("198.18.0.12").packed
SGW1 = ipaddress.IPv4Address("198.18.0.21").packed
SGW2 = ipaddress.IPv4Address("198.18.0.22").packed
UE1 = ipaddress.IPv4Address("198.18.100.1").packed
UE2 = ipaddress.IPv4Address("198.18.100.2").packed
PDN = ipaddress.IPv4Address("198.18.200.10").packed
SVC_IP = ipaddress.IPv4Address("198.18.50.1").packed
APP = ipaddress.IPv4Address("198.19.0.10").packed
APP2 = ipaddress.IPv4Address("198.19.0.11").packed
SERVICE = Service("web", "198.18.50.1", "198.19.0.10")


def ip(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


def udp_packet(src: bytes, dst: bytes, sport: int, dport: int, body: bytes = b"hello") -> bytes:
    return ipv4.encode(src, dst, 17, udp.encode(src, dst, sport, dport, body))


def gpdu(
    src: bytes, dst: bytes, teid: int, inner: bytes, *, uplink: bool = True, **kw: object
) -> bytes:
    outer = encapsulate_gpdu(src, dst, teid, inner, udp_checksum=False, **kw)  # type: ignore[arg-type]
    macs = (MAC_SGW, MAC_ENB) if uplink else (MAC_ENB, MAC_SGW)
    return ethernet_frame(macs[0], macs[1], outer)


def pipeline(**kw: object) -> Pipeline:
    p = Pipeline(TofConfig(backend="none", **kw))  # type: ignore[arg-type]
    return p


def inner_of(frame: bytes) -> tuple[bytes, int]:
    c = classify(frame)
    assert c.kind == Kind.GTP_GPDU
    assert c.inner_offset is not None
    assert c.inner_end is not None
    assert c.teid is not None
    return frame[c.inner_offset : c.inner_end], c.teid


def assert_checksums(packet: bytes) -> None:
    assert ck.checksum(packet[:20]) == 0  # IPv4 header
    if packet[9] == 17:
        assert udp.checksum_ok(packet[12:16], packet[16:20], packet[20:])


def test_non_gtp_and_malformed_pass_through_identical() -> None:
    p = pipeline()
    arp = MAC_SGW + MAC_ENB + b"\x08\x06" + bytes(28)
    out = p.from_s1(arp, ENB, 0.0)
    assert out == [(SGW, arp)]
    assert out[0][1] is arp
    plain = ethernet_frame(MAC_SGW, MAC_ENB, udp_packet(UE1, PDN, 1000, 53))
    assert p.from_s1(plain, SGW, 0.0)[0][1] is plain
    bad = bytearray(gpdu(ENB1, SGW1, 7, udp_packet(UE1, PDN, 1, 2)))
    bad[42] = 0x50  # GTP version 2
    frame = bytes(bad)
    out = p.from_s1(frame, ENB, 0.0)
    assert out[0][0] == SGW
    assert out[0][1] is frame
    assert sum(p.malformed.values()) == 1
    assert p.bearers == {}
    assert p.from_s1(b"\x01", ENB, 0.0)[0][1] == b"\x01"


def test_learning_both_directions_and_colliding_teids() -> None:
    p = pipeline()
    up1 = gpdu(ENB1, SGW1, 0x100, udp_packet(UE1, PDN, 1000, 80))
    up2 = gpdu(ENB2, SGW2, 0x100, udp_packet(UE2, PDN, 1000, 80))  # same TEID, other peers
    down1 = gpdu(SGW1, ENB1, 0x200, udp_packet(PDN, UE1, 80, 1000), uplink=False)
    down2 = gpdu(SGW2, ENB2, 0x200, udp_packet(PDN, UE2, 80, 1000), uplink=False)
    for frame, port in ((up1, ENB), (up2, ENB), (down1, SGW), (down2, SGW)):
        out = p.from_s1(frame, port, 1.0)
        assert len(out) == 1
        assert out[0][1] is frame  # pass-through: same bytes
    rows = {t["ue"]: t for t in p.tunnels()}
    assert set(rows) == {"198.18.100.1", "198.18.100.2"}
    assert rows["198.18.100.1"]["enb"] == "198.18.0.11"
    assert rows["198.18.100.2"]["sgw"] == "198.18.0.22"
    assert rows["198.18.100.1"]["uplinkTEID"] == 0x100
    assert rows["198.18.100.2"]["downlinkTEID"] == 0x200
    assert p.counters["bearers_learned"] == 2


def offload_setup() -> tuple[Pipeline, bytes]:
    p = pipeline(pinger_interval=0.5)
    p.set_services({"web": SERVICE})
    up = gpdu(ENB1, SGW1, 0x100, udp_packet(UE1, SVC_IP, 40000, 8080, b"GET"))
    return p, up


def test_offload_nat_pinger_queue_and_reply() -> None:
    p, up = offload_setup()
    out = p.from_s1(up, ENB, 10.0)
    ports = [port for port, _ in out]
    assert ports == [APPS, SGW]  # decapsulated to the apps; a Pinger request up the tunnel
    to_app = out[0][1]
    assert to_app[16:20] == APP
    assert to_app[12:16] == UE1
    assert_checksums(to_app)
    ping_inner, teid = inner_of(out[1][1])
    assert teid == 0x100
    assert ping_inner[12:16] == UE1
    assert ping_inner[16:20] == PDN
    assert ping_inner[20] == 8  # echo request
    # The app answers before the downlink TEID is known: queued, nothing sent yet.
    reply = udp_packet(APP, UE1, 8080, 40000, b"edge")
    assert p.from_apps(reply, 10.1) == []
    assert p.stats()["queued"] == 1
    # Ticks keep pinging at the configured interval.
    assert p.tick(10.2) == []
    again = p.tick(10.6)
    assert len(again) == 1
    assert again[0][0] == SGW
    # The SGW's echo reply arrives: the downlink TEID is learned, the queue flushed, the reply
    # swallowed and the Pinger stopped.
    echo_reply = bytearray(ping_inner)
    echo_reply[12:16], echo_reply[16:20] = PDN, UE1
    echo_reply[20] = 0
    struct.pack_into("!H", echo_reply, 22, 0)
    struct.pack_into("!H", echo_reply, 22, ck.checksum(echo_reply[20:]))
    struct.pack_into("!H", echo_reply, 10, 0)
    struct.pack_into("!H", echo_reply, 10, ck.checksum(echo_reply[:20]))
    down = gpdu(SGW1, ENB1, 0x200, bytes(echo_reply), uplink=False)
    out = p.from_s1(down, SGW, 10.7)
    assert len(out) == 1
    port, frame = out[0]
    assert port == ENB
    inner, teid = inner_of(frame)
    assert teid == 0x200
    assert frame[:6] == MAC_ENB  # Ethernet copied from the SGW's frames
    c = classify(frame)
    assert (c.outer_src, c.outer_dst) == (SGW1, ENB1)
    assert inner[12:16] == SVC_IP  # reply source = service IP
    assert inner[16:20] == UE1
    assert_checksums(inner)
    assert p.counters["pinger_replies_swallowed"] == 1
    assert p.tick(20.0) == []  # Pinger stopped
    # Later replies go straight out, and the counters say so.
    out = p.from_apps(reply, 11.0)
    assert [port for port, _ in out] == [ENB]
    stats = p.stats()
    assert stats["services"] == {
        "web": {
            "upPackets": 1,
            "upBytes": len(to_app),
            "downPackets": 2,
            "downBytes": 2 * len(reply),
        }
    }
    # Traffic to other destinations is untouched.
    other = gpdu(ENB1, SGW1, 0x100, udp_packet(UE1, PDN, 40000, 53))
    assert p.from_s1(other, ENB, 11.0)[0][1] is other


def test_pinger_not_needed_when_downlink_known() -> None:
    p, up = offload_setup()
    down = gpdu(SGW1, ENB1, 0x200, udp_packet(PDN, UE1, 53, 40000), uplink=False)
    p.from_s1(down, SGW, 1.0)
    out = p.from_s1(up, ENB, 1.0)
    assert [port for port, _ in out] == [APPS]
    assert p.counters["pinger_requests_sent"] == 0


def test_queue_is_bounded_and_times_out() -> None:
    p = pipeline(queue_limit=2, queue_timeout=1.0, pinger_interval=10)
    p.set_services({"web": SERVICE})
    p.from_s1(gpdu(ENB1, SGW1, 1, udp_packet(UE1, SVC_IP, 1, 2)), ENB, 0.0)
    reply = udp_packet(APP, UE1, 2, 1)
    for _ in range(3):
        p.from_apps(reply, 0.0)
    assert p.drops["queue_overflow"] == 1
    p.tick(5.0)
    assert p.drops["queue_timeout"] == 2
    assert p.stats()["queued"] == 0


def test_update_moves_flows_and_delete_restores_pdn_path() -> None:
    p, up = offload_setup()
    p.from_s1(gpdu(SGW1, ENB1, 0x200, udp_packet(PDN, UE1, 1, 1), uplink=False), SGW, 0.0)
    p.from_s1(up, ENB, 1.0)
    p.set_services({"web": Service("web", "198.18.50.1", "198.19.0.11")})
    assert p.from_apps(udp_packet(APP, UE1, 8080, 40000), 1.1) == []
    assert p.drops["apps_no_flow"] + p.drops["apps_stale_flow"] == 1
    out = p.from_s1(up, ENB, 1.2)
    assert out[0][0] == APPS
    assert out[0][1][16:20] == APP2
    p.set_services({})
    assert p.from_s1(up, ENB, 1.3) == [(SGW, up)]


def test_extension_header_uplink_is_offloaded() -> None:
    p = pipeline()
    p.set_services({"web": SERVICE})
    inner = udp_packet(UE1, SVC_IP, 5, 6, b"5g")
    psc = PduSessionContainer(pdu_type=PDU_TYPE_UL, qfi=9)
    frame = gpdu(ENB1, SGW1, 0x300, inner, extensions=(psc,))
    out = p.from_s1(frame, ENB, 0.0)
    assert out[0][0] == APPS
    assert out[0][1][16:20] == APP
    assert_checksums(out[0][1])
    other = gpdu(ENB1, SGW1, 0x300, udp_packet(UE1, PDN, 5, 6), extensions=(psc,))
    assert p.from_s1(other, ENB, 0.0)[0][1] is other


def test_end_marker_and_error_indication_forget_tunnels() -> None:
    p = pipeline()
    p.from_s1(gpdu(ENB1, SGW1, 0x100, udp_packet(UE1, PDN, 1, 2)), ENB, 0.0)
    p.from_s1(gpdu(SGW1, ENB1, 0x200, udp_packet(PDN, UE1, 2, 1), uplink=False), SGW, 0.0)
    marker = ethernet_frame(MAC_ENB, MAC_SGW, encapsulate(SGW1, ENB1, gtpu.end_marker(0x200)))
    out = p.from_s1(marker, SGW, 1.0)
    assert out == [(ENB, marker)]
    assert out[0][1] is marker
    (row,) = p.tunnels()
    assert row["downlinkTEID"] is None
    assert row["uplinkTEID"] == 0x100
    # The SGW says it does not know TEID 0x100: the uplink tunnel goes, and with it the bearer.
    ei = gtpu.error_indication(0x100, ipaddress.IPv4Address(SGW1))
    frame = ethernet_frame(MAC_ENB, MAC_SGW, encapsulate(SGW1, ENB1, ei))
    assert p.from_s1(frame, SGW, 2.0)[0][1] is frame
    assert p.tunnels() == []


def test_echo_passes_through() -> None:
    p = pipeline()
    echo = ethernet_frame(MAC_SGW, MAC_ENB, encapsulate(ENB1, SGW1, gtpu.echo_request(1)))
    assert p.from_s1(echo, ENB, 0.0) == [(SGW, echo)]
    assert p.counters["gtpu_type_1"] == 1


def test_idle_purge_and_relearn() -> None:
    p = pipeline(idle_timeout=5)
    up = gpdu(ENB1, SGW1, 0x100, udp_packet(UE1, PDN, 1, 2))
    p.from_s1(up, ENB, 0.0)
    p.tick(3.0)
    assert len(p.tunnels()) == 1
    p.tick(6.0)
    assert p.tunnels() == []
    assert p.counters["bearers_purged"] == 1
    p.from_s1(up, ENB, 7.0)
    assert len(p.tunnels()) == 1


def test_peer_filters_restrict_learning() -> None:
    p = pipeline(enb_addresses=["198.18.0.12"])
    up = gpdu(ENB1, SGW1, 0x100, udp_packet(UE1, PDN, 1, 2))
    assert p.from_s1(up, ENB, 0.0)[0][1] is up
    assert p.tunnels() == []


def test_ping_offload_uses_echo_id_as_port() -> None:
    p, _ = offload_setup()
    icmp = bytearray(struct.pack("!BBHHH", 8, 0, 0, 77, 1) + b"x")
    struct.pack_into("!H", icmp, 2, ck.checksum(icmp))
    inner = ipv4.encode(UE1, SVC_IP, 1, bytes(icmp))
    out = p.from_s1(gpdu(ENB1, SGW1, 0x100, inner), ENB, 0.0)
    assert out[0][0] == APPS
    p.from_s1(gpdu(SGW1, ENB1, 0x200, udp_packet(PDN, UE1, 1, 1), uplink=False), SGW, 0.1)
    reply = bytearray(struct.pack("!BBHHH", 0, 0, 0, 77, 1) + b"x")
    struct.pack_into("!H", reply, 2, ck.checksum(reply))
    out = p.from_apps(ipv4.encode(APP, UE1, 1, bytes(reply)), 0.2)
    assert [port for port, _ in out] == [ENB]
    assert PINGER_ID != 77


def _icmp_error(src: bytes, dst: bytes, quoted: bytes) -> bytes:
    icmp = bytearray(struct.pack("!BBHI", 3, 3, 0, 0) + quoted)
    struct.pack_into("!H", icmp, 2, ck.checksum(icmp))
    return ipv4.encode(src, dst, 1, bytes(icmp))


def test_icmp_errors_quote_the_addresses_each_side_saw() -> None:
    p, up = offload_setup()
    p.from_s1(gpdu(SGW1, ENB1, 0x200, udp_packet(PDN, UE1, 1, 1), uplink=False), SGW, 9.9)
    p.from_s1(up, ENB, 10.0)
    # The app cannot be reached on that port: its error quotes the UE's datagram to the app.
    sent_to_app = udp_packet(UE1, APP, 40000, 8080, b"GET")
    out = p.from_apps(_icmp_error(APP, UE1, sent_to_app), 10.1)
    assert [port for port, _ in out] == [ENB]
    inner, teid = inner_of(out[0][1])
    assert teid == 0x200
    # The UE sees the error from the service IP, quoting its own datagram to the service IP.
    assert inner == _icmp_error(SVC_IP, UE1, udp_packet(UE1, SVC_IP, 40000, 8080, b"GET"))
    # The other way: the UE rejects the app's datagram (which it saw from the service IP).
    seen_by_ue = udp_packet(SVC_IP, UE1, 8080, 40001, b"push")
    out = p.from_s1(gpdu(ENB1, SGW1, 0x100, _icmp_error(UE1, SVC_IP, seen_by_ue)), ENB, 10.2)
    assert [port for port, _ in out] == [APPS]
    sent_by_app = udp_packet(APP, UE1, 8080, 40001, b"push")
    assert out[0][1] == _icmp_error(UE1, APP, sent_by_app)


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=0, max_size=200), st.sampled_from([ENB, SGW]))
def test_random_frames_never_raise(frame: bytes, port: int) -> None:
    p, up = offload_setup()
    p.from_s1(up, ENB, 0.0)
    out = p.from_s1(frame, port, 1.0)
    assert all(isinstance(f, bytes) for _, f in out)
    p.from_apps(frame, 1.0)
    p.tick(2.0)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=42, max_value=120), st.integers(min_value=0, max_value=255))
def test_corrupted_gtpu_frames_never_raise(pos: int, value: int) -> None:
    p, up = offload_setup()
    frame = bytearray(up)
    if pos < len(frame):
        frame[pos] = value
    out = p.from_s1(bytes(frame), ENB, 0.0)
    assert out


def tcp_syn(src: bytes, dst: bytes, sport: int, dport: int, mss: int) -> bytes:
    tcp = bytearray(struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 6 << 4, 0x02, 65535, 0, 0))
    tcp += struct.pack("!BBH", 2, 4, mss)
    csum = ck.transport_checksum(src, dst, 6, tcp)
    struct.pack_into("!H", tcp, 16, csum)
    return ipv4.encode(src, dst, 6, bytes(tcp))


def test_mss_is_clamped_both_ways_and_big_replies_fragmented() -> None:
    p, _ = offload_setup()
    syn = tcp_syn(UE1, SVC_IP, 40000, 80, 1460)
    out = p.from_s1(gpdu(ENB1, SGW1, 0x100, syn), ENB, 0.0)
    to_app = out[0][1]
    assert struct.unpack_from("!H", to_app, 42)[0] == 1500 - 104
    assert ck.checksum(to_app[20:], ck.pseudo_header_sum(UE1, APP, 6, len(to_app) - 20)) == 0
    p.from_s1(gpdu(SGW1, ENB1, 0x200, udp_packet(PDN, UE1, 1, 1), uplink=False), SGW, 0.1)
    synack = tcp_syn(APP, UE1, 80, 40000, 1460)
    (frame,) = [f for _, f in p.from_apps(synack, 0.2)]
    inner, _ = inner_of(frame)
    assert struct.unpack_from("!H", inner, 42)[0] == 1500 - 104
    big = udp_packet(APP, UE1, 80, 40000, b"x" * 1472)
    frags = p.from_apps(big, 0.3)
    assert len(frags) == 2
    assert all(len(f) - 14 <= 1500 for _, f in frags)
    assert p.counters["downlink_fragmented"] == 1
    reassembled = frags[0][1][34:] + frags[1][1][34:]
    assert reassembled[16 + 12 : 16 + 16] == SVC_IP


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([1, 6, 17]),
    st.binary(min_size=4, max_size=4),
    st.binary(min_size=4, max_size=4),
    st.binary(min_size=0, max_size=64),
    st.booleans(),
    st.booleans(),
)
def test_fast_nat_matches_the_codec(  # noqa: PLR0917 - hypothesis arguments
    proto: int, old: bytes, new: bytes, body: bytes, zero_udp: bool, source: bool
) -> None:
    from fluidedge.codec.net import nat

    peer = ipaddress.IPv4Address("198.18.100.9").packed
    src, dst = (old, peer) if source else (peer, old)
    if proto == 17:
        l4 = bytearray(udp.encode(src, dst, 1000, 2000, body, with_checksum=not zero_udp))
    elif proto == 6:
        l4 = bytearray(struct.pack("!HHIIBBHHH", 1000, 2000, 1, 2, 5 << 4, 0x10, 100, 0, 0) + body)
        struct.pack_into("!H", l4, 16, ck.transport_checksum(src, dst, 6, l4))
    else:
        l4 = bytearray(struct.pack("!BBHHH", 8, 0, 0, 7, 1) + body)
        struct.pack_into("!H", l4, 2, ck.checksum(l4))
    packet = ipv4.encode(src, dst, proto, bytes(l4))
    expected = bytearray(packet)
    if source:
        nat.rewrite(expected, source=new)
    else:
        nat.rewrite(expected, destination=new)
    fast = bytearray(packet)
    pipeline()._nat4(fast, 12 if source else 16, old, new, proto)
    assert fast == expected


def test_ipv6_inner_and_outer_offload() -> None:
    from fluidedge.codec.net import ipv6

    enb6 = ipaddress.IPv6Address("2001:db8:1::11").packed
    sgw6 = ipaddress.IPv6Address("2001:db8:1::21").packed
    ue6 = ipaddress.IPv6Address("2001:db8:100::1").packed
    svc6 = ipaddress.IPv6Address("2001:db8:50::1").packed
    app6 = ipaddress.IPv6Address("fd00::10").packed
    p = pipeline(pinger_target6="2001:db8:200::10")
    p.set_services({"v6": Service("v6", "2001:db8:50::1", "fd00::10")})

    def udp6(src: bytes, dst: bytes, sport: int, dport: int) -> bytes:
        return ipv6.encode(src, dst, 17, udp.encode(src, dst, sport, dport, b"six"))

    def frame6(src: bytes, dst: bytes, teid: int, inner: bytes, macs: tuple[bytes, bytes]) -> bytes:
        outer = encapsulate_gpdu(src, dst, teid, inner)
        return ethernet_frame(macs[0], macs[1], outer)

    up = frame6(enb6, sgw6, 0x10, udp6(ue6, svc6, 5000, 80), (MAC_SGW, MAC_ENB))
    out = p.from_s1(up, ENB, 0.0)
    assert out[0][0] == APPS
    to_app = out[0][1]
    assert to_app[24:40] == app6
    assert udp.checksum_ok(to_app[8:24], to_app[24:40], to_app[40:])
    ping_frame = out[1][1]
    assert classify(ping_frame).teid == 0x10  # Pinger over the IPv6 uplink tunnel
    down = frame6(sgw6, enb6, 0x20, udp6(svc6, ue6, 1, 1), (MAC_ENB, MAC_SGW))
    p.from_s1(down, SGW, 0.1)
    (reply,) = p.from_apps(udp6(app6, ue6, 80, 5000), 0.2)
    c = classify(reply[1])
    assert (c.outer_src, c.outer_dst, c.teid) == (sgw6, enb6, 0x20)
    assert c.inner_src == svc6
    inner, _ = inner_of(reply[1])
    assert udp.checksum_ok(inner[8:24], inner[24:40], inner[40:])
    # The outer IPv6 UDP checksum is mandatory and correct.
    assert udp.checksum_ok(sgw6, enb6, reply[1][54:])


_EI_PEERS = (ENB1, ENB2, SGW1, SGW2)
_EI_UES = (UE1, UE2, ipaddress.IPv4Address("198.18.100.3").packed)
_ei_step = st.one_of(
    st.tuples(
        st.just("up"),
        st.sampled_from((ENB1, ENB2)),
        st.sampled_from((SGW1, SGW2)),
        st.integers(1, 3),
        st.sampled_from(_EI_UES),
    ),
    st.tuples(
        st.just("down"),
        st.sampled_from((SGW1, SGW2)),
        st.sampled_from((ENB1, ENB2)),
        st.integers(1, 3),
        st.sampled_from(_EI_UES),
    ),
    st.tuples(st.just("ei"), st.sampled_from(_EI_PEERS), st.integers(1, 3)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_ei_step, min_size=1, max_size=40))
def test_error_indication_forgets_exactly_the_named_tunnels(
    steps: list[tuple[object, ...]],
) -> None:
    """An Error Indication's lookup (one probe per peer pair) forgets exactly what a walk over
    every tunnel would: each tunnel toward the peer with that TEID, in either table, whatever
    re-attaches and TEID reuse came before; the per-peer index stays equal to a recount."""
    p = pipeline()
    now = 0.0
    for step in steps:
        now += 1.0
        if step[0] == "ei":
            _, peer, teid = step
            assert isinstance(peer, bytes)
            assert isinstance(teid, int)
            suffix = peer + teid.to_bytes(4, "big")
            expected = {
                name: {k for k in table if k[4:12] != suffix}
                for name, table in (("up", p.up), ("down", p.down))
            }
            ei = gtpu.error_indication(teid, ipaddress.IPv4Address(peer))
            frame = ethernet_frame(MAC_ENB, MAC_SGW, encapsulate(peer, ENB1, ei))
            assert p.from_s1(frame, SGW, now)[0][1] is frame
            assert set(p.up) == expected["up"]
            assert set(p.down) == expected["down"]
        else:
            kind, src, dst, teid, ue = step
            assert isinstance(src, bytes)
            assert isinstance(dst, bytes)
            assert isinstance(ue, bytes)
            assert isinstance(teid, int)
            if kind == "up":
                p.from_s1(gpdu(src, dst, teid, udp_packet(ue, PDN, 1, 2)), ENB, now)
            else:
                inner = udp_packet(PDN, ue, 2, 1)
                p.from_s1(gpdu(src, dst, teid, inner, uplink=False), SGW, now)
        recount: dict[bytes, dict[bytes, int]] = {}
        for table in (p.up, p.down):
            for key in table:
                srcs = recount.setdefault(key[4:8], {})
                srcs[key[:4]] = srcs.get(key[:4], 0) + 1
        assert {dst: dict(srcs) for dst, srcs in p._peer_srcs.items()} == recount
