"""Re-attach with TEID reuse and GTPv1-C learning, on both backends, with real frames.

The kernel program forwards learned tunnels on its own, so this is where a stale bearer would
hide: a re-used key must still reach the agent (punt ``ue_changed``), the old bearer be retired
and the maps follow (same key, new UE). Each step asserts what came out on each side.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import time

import pytest

from fluidedge.codec import gtpc
from fluidedge.codec.net import ipv4, udp
from fluidedge.codec.stack import Kind, classify, encapsulate, ethernet_frame
from fluidedge.linux.netns import call_in_netns
from fluidedge.tof.models import Service
from fluidedge.tof.pipeline import PINGER_ID, PINGER_MAGIC
from tests.unit.tof.bearer_frames import create_request, create_response, delete_request

from .scenario import APP, APP_PORT, ENB1, PDN, SGW1, SVC, Backend, down, inner_udp, up
from .topo import APP_IP, MAC_ENB, MAC_SGW, Topo

pytestmark = pytest.mark.root

UE1, UE2, UE3, UE4 = (ipaddress.ip_address(f"198.18.100.{i}").packed for i in (11, 12, 13, 14))


def gpdus(frames: list[bytes]) -> list[tuple[int, bytes, bytes, bytes]]:
    """(TEID, inner source, inner destination, inner packet) of the G-PDUs among ``frames``."""
    out = []
    for f in frames:
        c = classify(f)
        if c.kind == Kind.GTP_GPDU and c.inner_src and c.inner_dst and c.teid is not None:
            out.append((c.teid, c.inner_src, c.inner_dst, f[c.inner_offset : c.inner_end]))
    return out


def app_datagrams(frames: list[bytes]) -> list[tuple[bytes, bytes]]:
    """(source, destination) of the UDP datagrams the app received on its port."""
    out = []
    for f in frames:
        if f[12:14] == b"\x08\x00" and f[23] == 17 and f[36:38] == APP_PORT.to_bytes(2, "big"):
            out.append((f[26:30], f[30:34]))
    return out


def echo_reply(request: bytes, teid: int) -> bytes:
    """The PDN's answer to a Pinger request frame, tunnelled down with ``teid``."""
    c = classify(request)
    assert c.inner_offset is not None
    inner = bytearray(request[c.inner_offset : c.inner_end])
    src, dst = bytes(inner[12:16]), bytes(inner[16:20])
    icmp = bytearray(inner[20:])
    icmp[0] = 0
    struct.pack_into("!H", icmp, 2, 0)
    from fluidedge.codec.net import checksum as ck

    struct.pack_into("!H", icmp, 2, ck.checksum(icmp))
    return down(ENB1, teid, ipv4.encode(dst, src, 1, bytes(icmp)))


def events(backend: Backend) -> list[dict[str, object]]:
    return backend.events()  # type: ignore[attr-defined,no-any-return]


def retired(backend: Backend) -> list[tuple[object, object]]:
    return [(e["reason"], e["ue"]) for e in events(backend) if e["event"] == "retired"]


def test_reattach_with_teid_reuse(running: tuple[Topo, Backend, str]) -> None:
    t, backend, kind = running
    raw = call_in_netns(t.app, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, 255))
    sink = call_in_netns(t.app, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sink.bind((APP_IP, APP_PORT))  # offloaded datagrams land here (no ICMP unreachable)
    try:

        def app_reply(ue: bytes, port: int) -> None:
            datagram = udp.encode(APP, ue, APP_PORT, port, b"edge")
            raw.sendto(ipv4.encode(APP, ue, 17, datagram), (str(ipaddress.ip_address(ue)), 0))

        t.collect(0.3)
        # UE1 attached: uplink TEID 0x100, downlink 0x200; traffic both ways, some offloaded.
        for _ in range(3):
            t.send("enb", up(ENB1, 0x100, inner_udp(UE1, PDN, 4000, 53, b"pdn")))
            t.send("sgw", down(ENB1, 0x200, inner_udp(PDN, UE1, 53, 4000, b"pdn")))
        t.send(
            "enb",
            up(ENB1, 0x100, inner_udp(UE1, ipaddress.ip_address(SVC).packed, 4001, APP_PORT, b"s")),
        )
        t.collect(0.2)
        app_reply(UE1, 4001)
        got = t.collect(0.3)
        assert [(teid, dst) for teid, _s, dst, _p in gpdus(got["enb"])] == [(0x200, UE1)]

        # Variant 2: UE2 re-uses both TEIDs. Its traffic is UE2's, offload answers UE2.
        frame = up(ENB1, 0x100, inner_udp(UE2, PDN, 5000, 53, b"pdn2"))
        t.send("enb", frame)
        got = t.collect(0.3)
        assert got["sgw"] == [frame]  # passed through unchanged
        assert retired(backend) == [("uplink_teid_reused", "198.18.100.11")]
        t.send("sgw", down(ENB1, 0x200, inner_udp(PDN, UE2, 53, 5000, b"pdn2")))
        t.collect(0.2)
        for _ in range(3):  # the kernel (fast path) now forwards UE2's keys
            t.send("enb", up(ENB1, 0x100, inner_udp(UE2, PDN, 5000, 53, b"pdn2")))
        svc = ipaddress.ip_address(SVC).packed
        t.send("enb", up(ENB1, 0x100, inner_udp(UE2, svc, 5001, APP_PORT, b"s2")))
        got = t.collect(0.3)
        assert app_datagrams(got["app"]) == [(UE2, APP)]
        app_reply(UE2, 5001)
        got = t.collect(0.3)
        assert [(teid, dst) for teid, _s, dst, _p in gpdus(got["enb"])] == [(0x200, UE2)]
        rows = {r["ue"]: r for r in backend.tunnels()}
        assert set(rows) == {"198.18.100.12"}
        assert rows["198.18.100.12"]["uplink"]["packets"] >= 4  # type: ignore[index]

        # Variant 1: UE3 gets a new uplink TEID 0x101 and the re-used downlink 0x200.
        start = time.monotonic()
        t.send("enb", up(ENB1, 0x101, inner_udp(UE3, svc, 6001, APP_PORT, b"s3")))
        got = t.collect(0.3)
        assert app_datagrams(got["app"]) == [(UE3, APP)]
        pings = [f for f in got["sgw"] if PINGER_MAGIC in f and PINGER_ID.to_bytes(2, "big") in f]
        assert [(teid, src) for teid, src, _d, _p in gpdus(pings)] == [(0x101, UE3)]
        app_reply(UE3, 6001)  # queued: UE3's downlink TEID is not known yet
        assert gpdus(t.collect(0.3)["enb"]) == []
        t.send("sgw", echo_reply(pings[0], 0x200))
        got = t.collect(0.3)
        delivered = gpdus(got["enb"])
        assert [(teid, src, dst) for teid, src, dst, _p in delivered] == [(0x200, svc, UE3)]
        took = time.monotonic() - start
        assert ("downlink_teid_reused", "198.18.100.12") in retired(backend)
        rows = {r["ue"]: r for r in backend.tunnels()}
        assert set(rows) == {"198.18.100.13"}
        assert (rows["198.18.100.13"]["uplinkTEID"], rows["198.18.100.13"]["downlinkTEID"]) == (
            0x101,
            0x200,
        )
        assert rows["198.18.100.13"]["pinger"] == {"active": False, "sent": 1, "replies": 1}
        print(f"\n{kind}: variant 1 offload answered after one Pinger request, {took:.2f} s")
        app_reply(UE3, 6001)  # straight out now
        assert [(teid, dst) for teid, _s, dst, _p in gpdus(t.collect(0.3)["enb"])] == [(0x200, UE3)]

        # GTPv1-C: UE4 created with both TEIDs at once (no Pinger), then deleted.
        def control(src: bytes, dst: bytes, msg: gtpc.GtpcMessage, side: str) -> bytes:
            outer = encapsulate(src, dst, gtpc.encode(msg), src_port=2123, dst_port=2123)
            macs = (MAC_SGW, MAC_ENB) if side == "enb" else (MAC_ENB, MAC_SGW)
            frame = ethernet_frame(*macs, outer)
            t.send(side, frame)
            return frame

        req = control(
            ENB1, SGW1, create_request(1, dl_teid=0x400, teid_c=0x10, nsapi=5, sgsn=ENB1), "enb"
        )
        resp = control(
            SGW1,
            ENB1,
            create_response(1, to_teid_c=0x10, ul_teid=0x500, teid_c=0x20, ue=UE4, ggsn=SGW1),
            "sgw",
        )
        got = t.collect(0.3)
        assert got["sgw"] == [req]
        assert got["enb"] == [resp]
        t.send("enb", up(ENB1, 0x500, inner_udp(UE4, svc, 7001, APP_PORT, b"s4")))
        got = t.collect(0.3)
        assert app_datagrams(got["app"]) == [(UE4, APP)]
        assert not [f for f in got["sgw"] if PINGER_MAGIC in f]  # downlink known: no Pinger
        app_reply(UE4, 7001)
        assert [(teid, dst) for teid, _s, dst, _p in gpdus(t.collect(0.3)["enb"])] == [(0x400, UE4)]
        control(ENB1, SGW1, delete_request(2, to_teid_c=0x20, nsapi=5), "enb")
        t.collect(0.3)
        assert ("gtpc_delete", "198.18.100.14") in retired(backend)
        assert "198.18.100.14" not in {r["ue"] for r in backend.tunnels()}
        stats = backend.stats()
        if kind == "fastpath":
            fast = stats["fastpath"]
            assert isinstance(fast, dict)
            assert fast.get("punt_ue_changed", 0) >= 1  # the kernel saw the re-used key
            assert fast.get("punt_gtpc", 0) == 3
            assert fast["passthrough_uplink"] > 0
            assert fast["offloaded_downlink"] > 0
    finally:
        raw.close()
        sink.close()


def test_service_at_the_application_address(running: tuple[Topo, Backend, str]) -> None:
    """serviceIP == applicationIP: the app gets the UE's packets as sent (TTL aside), and its
    replies reach the UE re-encapsulated, from the address the UE used."""
    t, backend, kind = running
    backend.apply({"here": Service("here", APP_IP, APP_IP)})
    raw = call_in_netns(t.app, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, 255))
    sink = call_in_netns(t.app, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sink.bind((APP_IP, APP_PORT))
    try:
        t.collect(0.3)
        t.send("sgw", down(ENB1, 0x200, inner_udp(PDN, UE1, 53, 4000, b"pdn")))
        assert len(t.collect(0.3)["enb"]) == 1  # learned before any uplink: no Pinger needed
        sent = [inner_udp(UE1, APP, 4000 + i, APP_PORT, b"same-%d" % i) for i in range(4)]
        at_app: list[bytes] = []
        got: dict[str, list[bytes]] = {}
        for rounds in (1, 2):  # first packets make the flows; then the kernel may offload
            for packet in sent:
                for _ in range(rounds):
                    t.send("enb", up(ENB1, 0x100, packet))
            got = t.collect(0.3)
            at_app += [f[14:] for f in got["app"] if f[12:14] == b"\x08\x00" and f[23] == 17]
            assert got["sgw"] == []  # nothing went to the core
        expected = sent + [p for p in sent for _ in (0, 1)]
        assert len(at_app) == len(expected)
        for packet, received in zip(expected, at_app, strict=True):
            # Only the TTL (forwarded once) and so the header checksum differ.
            assert received[:8] + received[12:] == packet[:8] + packet[12:]
            assert received[8] == packet[8] - 1
        datagram = udp.encode(APP, UE1, APP_PORT, 4000, b"reply")
        reply = ipv4.encode(APP, UE1, 17, datagram)
        raw.sendto(reply, (str(ipaddress.ip_address(UE1)), 0))
        delivered = gpdus(t.collect(0.3)["enb"])
        assert [(teid, src, dst) for teid, src, dst, _p in delivered] == [(0x200, APP, UE1)]
        assert delivered[0][3][20:] == datagram  # UDP header and payload untouched
        if kind == "fastpath":
            fast = backend.stats()["fastpath"]
            assert isinstance(fast, dict)
            assert fast["offloaded_uplink"] > 0
    finally:
        raw.close()
        sink.close()
