"""The pure half of the fast path: map layouts, the pipeline -> maps projection, the diff."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from fluidedge.codec.net import ipv4, udp
from fluidedge.codec.stack import encapsulate_gpdu, ethernet_frame
from fluidedge.tof.config import TofConfig
from fluidedge.tof.fastpath import build
from fluidedge.tof.fastpath import layout as L
from fluidedge.tof.models import Service
from fluidedge.tof.pipeline import ENB, SGW, Pipeline


def P(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
ENB1, SGW1, UE1, PDN = P("198.18.0.11"), P("198.18.0.21"), P("198.18.100.1"), P("198.18.200.10")
SVC, APP = P("198.18.50.1"), P("198.19.0.10")


def frame(
    outer: tuple[bytes, bytes, int], inner_src: bytes, inner_dst: bytes, *ports: int
) -> bytes:
    """A G-PDU ``outer`` = (source, destination, TEID) carrying UDP ``ports`` between inners."""
    body = udp.encode(inner_src, inner_dst, ports[0], ports[1], b"x")
    inner = ipv4.encode(inner_src, inner_dst, 17, body)
    src, dst, teid = outer
    return ethernet_frame(MAC_B, MAC_A, encapsulate_gpdu(src, dst, teid, inner, udp_checksum=False))


def test_struct_sizes_match_the_c_program() -> None:
    src = build.source().decode()
    assert "struct tunnel_key { __u32 src; __u32 dst; __u32 teid; };" in src
    assert L.TUNNEL_VAL.size == 40
    assert L.SERVICE_VAL.size == 8
    assert L.FLOW_KEY.size == 16
    assert L.FLOW_VAL.size == 24
    assert L.DOWNLINK_VAL.size == 32
    assert L.SERVICE_STATS.size == 32
    # The stats enum and the names the API shows have the same order and length.
    enum = re.search(r"enum stat_index \{(.*?)\};", src, re.S)
    assert enum is not None
    names = [n.strip() for n in enum.group(1).replace("\n", " ").split(",") if n.strip()]
    assert names[-1] == "ST_MAX"
    assert len(names) - 1 == len(L.STAT_NAMES)


def test_projection_follows_learning_offload_and_service_changes() -> None:
    p = Pipeline(TofConfig(backend="none"))
    slots = {"web": 3}
    assert L.project(p, slots).tunnels == set()
    p.from_s1(frame((ENB1, SGW1, 0x100), UE1, PDN, 1000, 53), ENB, 1.0)
    proj = L.project(p, slots)
    assert proj.tunnels == {ENB1 + SGW1 + (0x100).to_bytes(4, "big")}
    assert proj.downlink == {}  # no downlink TEID yet: replies go to the agent
    p.from_s1(frame((SGW1, ENB1, 0x200), PDN, UE1, 53, 1000), SGW, 1.1)
    proj = L.project(p, slots)
    assert len(proj.tunnels) == 2
    value = proj.downlink[ENB1 + SGW1 + UE1]
    eth, tos, ttl, sport, _pad, teid, offloaded = L.DOWNLINK_VAL.unpack(value)
    assert eth == MAC_B + MAC_A + b"\x08\x00"  # copied from the downlink frame
    assert (tos, ttl, sport, teid, offloaded) == (0, 64, b"\x08\x68", b"\x00\x00\x02\x00", 0)
    p.set_services({"web": Service("web", "198.18.50.1", "198.19.0.10")})
    p.from_s1(frame((ENB1, SGW1, 0x100), UE1, SVC, 41000, 8080), ENB, 1.2)
    proj = L.project(p, slots)
    assert proj.services == {SVC: L.SERVICE_VAL.pack(APP, 3)}
    key = L.flow_key(17, APP, 8080, UE1, 41000)
    assert proj.flows == {key: L.FLOW_VAL.pack(SVC, ENB1, SGW1, 3, 0)}
    # A service without a slot (not applied to the maps yet) projects nothing.
    assert L.project(p, {}).flows == {}
    # Deleting the service drops its flows from the projection; purge drops the tunnels.
    p.set_services({})
    assert L.project(p, slots).flows == {}
    p.purge_all()
    proj = L.project(p, slots)
    assert proj.tunnels == set()
    assert proj.downlink == {}


def test_ipv6_state_stays_with_the_agent() -> None:
    p = Pipeline(TofConfig(backend="none"))
    e6, s6, u6, d6 = P("2001:db8::11"), P("2001:db8::21"), P("2001:db8:100::1"), P("2001:db8::99")
    inner = bytes.fromhex("60000000000911") + bytes([64]) + u6 + d6 + udp.encode(u6, d6, 1, 2, b"x")
    outer = encapsulate_gpdu(e6, s6, 7, inner, udp_checksum=True)
    p.from_s1(ethernet_frame(MAC_B, MAC_A, outer), ENB, 1.0)
    assert p.up  # the pipeline learned it...
    assert L.project(p, {}).tunnels == set()  # ...the maps (IPv4 keys) do not carry it


def test_diff_writes_only_changes_and_removes_stale() -> None:
    installed = {b"a": b"1", b"b": b"2", b"c": b"3"}
    desired = {b"a": b"1", b"b": b"9", b"d": b"4"}
    upserts, deletes = L.diff(installed, desired)
    assert upserts == {b"b": b"9", b"d": b"4"}
    assert deletes == [b"c"]
    assert L.diff(desired, desired) == ({}, [])


def test_program_compiles_and_is_cached(tmp_path: Path) -> None:
    first = build.object_path(tmp_path)
    assert first.read_bytes()[:4] == b"\x7fELF"
    mtime = first.stat().st_mtime_ns
    assert build.object_path(tmp_path) == first
    assert first.stat().st_mtime_ns == mtime  # not rebuilt
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temp files left


def test_punt_reason_names_match_the_c_enum() -> None:
    enum = re.search(r"enum punt_reason \{(.*?)\};", build.source().decode(), re.S)
    assert enum is not None
    names = [n.strip() for n in enum.group(1).replace("\n", " ").split(",") if n.strip()]
    assert names[-1] == "P_MAX"
    assert len(names) - 1 == len(L.PUNT_REASONS)
