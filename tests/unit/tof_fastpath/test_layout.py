"""The pure half of the fast path: map layouts, the pipeline -> maps projection, the diff."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

import pytest

from fluidedge.codec.net import ipv4, udp
from fluidedge.codec.stack import encapsulate_gpdu, ethernet_frame
from fluidedge.tof.config import TofConfig
from fluidedge.tof.fastpath import build, cdefs
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


def test_every_python_format_matches_its_c_struct_field_by_field() -> None:
    # Offsets and sizes from the C declarations with C's alignment rules, against the
    # Python formats: a field added, reordered or resized on one side only fails here.
    for name, fmt in L.STRUCTS.items():
        c_size, c_fields = cdefs.struct_fields(name)
        py_size, py_fields = cdefs.python_fields(fmt)
        assert py_size == c_size, name
        assert [(f.offset, f.size) for f in py_fields] == [(f.offset, f.size) for f in c_fields], (
            name
        )
    assert cdefs.struct_fields("tunnel_key")[0] == L.TUNNEL_KEY_SIZE
    assert cdefs.struct_fields("bearer_key")[0] == L.BEARER_KEY_SIZE


def test_indexes_come_from_the_c_enums() -> None:
    cfg = cdefs.enum("cfg_index")
    assert cfg["CFG_ENB_IF"] == L.CFG_ENB_IF
    assert cfg["CFG_LEARN_BURST"] == L.CFG_LEARN_BURST
    # Every rate is followed by its burst (the program reads rate_index + 1).
    for rate in ("CFG_PUNT_RATE", "CFG_CONTROL_RATE", "CFG_LEARN_RATE"):
        assert cfg[rate.replace("RATE", "BURST")] == cfg[rate] + 1
    stats = cdefs.enum("stat_index")
    assert set(L.STAT_API_NAMES) == set(stats) - {"ST_MAX"}
    assert len(L.STAT_NAMES) == stats["ST_MAX"]
    assert L.STAT_NAMES[stats["ST_FAILOPEN"]] == "failopen_switched"
    # The per-class "limited" counters follow the class order (ST_LIMITED_CONTROL + class).
    classes = cdefs.enum("budget_class")
    for klass, index in classes.items():
        if klass != "B_MAX":
            assert stats[f"ST_LIMITED_{klass[2:]}"] == stats["ST_LIMITED_CONTROL"] + index
    reasons = cdefs.enum("punt_reason")
    assert set(L.PUNT_API_NAMES) == set(reasons) - {"P_MAX"}
    assert L.PUNT_REASONS[reasons["P_OUTER_UDP_LENGTH"]] == "outer_udp_length"
    assert cdefs.map_max_entries("service_stats") == L.MAX_SERVICES


def test_the_c_reader_applies_alignment_and_enum_values() -> None:
    text = """
    /* a comment with struct x { __u64 nope; }; */
    enum e { A, B = 5, C, // trailing
             D = 0x10 };
    struct s { __u8 a; __u32 b; __u16 c[3]; __u64 d; __u8 e; };
    """
    assert cdefs.enum("e", text) == {"A": 0, "B": 5, "C": 6, "D": 16}
    size, fields = cdefs.struct_fields("s", text)
    assert [(f.name, f.offset, f.size) for f in fields] == [
        ("a", 0, 1), ("b", 4, 4), ("c", 8, 6), ("d", 16, 8), ("e", 24, 1),
    ]  # fmt: skip
    assert size == 32
    # A Python format that forgets C's implicit padding is caught.
    _, py = cdefs.python_fields(struct.Struct("=BIH"))
    assert [(f.offset, f.size) for f in py] == [(0, 1), (1, 4), (5, 2)]
    with pytest.raises(cdefs.LayoutError):
        cdefs.struct_fields("missing", text)
    with pytest.raises(cdefs.LayoutError):
        cdefs.struct_fields("t", "struct t { float x; };")


def test_map_sizes_follow_the_config() -> None:
    assert L.map_sizes(100_000, 1_000_000) == {
        "tunnels": 200_000,
        "flows": 1_000_000,
        "downlink": 100_000,
        "ue_limits": 400_000,  # a bucket per UE, limited service and direction
        "usage": 200_000,  # a bearer's offloaded traffic per service (accounting)
    }
    assert L.map_sizes(10, 10, {"tunnels": 3})["tunnels"] == 3
    with pytest.raises(ValueError, match="services"):
        L.map_sizes(10, 10, {"services": 3})


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
    assert proj.services == {SVC: L.SERVICE_VAL.pack(APP, 3, 0, 0, 0, 0, 0)}  # not limited
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
