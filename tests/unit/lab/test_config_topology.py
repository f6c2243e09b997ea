"""Pure lab logic: the description, TEID allocation, the plan, packet building."""

from __future__ import annotations

import re
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from fluidedge.codec.gtpu import GPdu, decode
from fluidedge.lab.config import LabConfig, bearers, default_text, load, loads
from fluidedge.lab.errors import LabConfigError
from fluidedge.lab.gen import FRAME_SIZES, gpdu_frame
from fluidedge.lab.packets import dissect, read_pcap, write_pcap
from fluidedge.lab.topology import Topology, validate_prefix


def test_default_topology_has_colliding_teids_across_peers() -> None:
    cfg = load()
    table = bearers(cfg)
    assert len(table) == 4
    # each eNB talks to both SGWs
    for enb in ("enb1", "enb2"):
        assert {b.sgw for b in table if b.enb == enb} == {"sgw1", "sgw2"}
    # the SGWs hand out the same uplink TEIDs to different UEs, the eNBs the same downlink TEIDs
    ul = {(b.sgw, b.ul_teid): b.ue for b in table}
    assert len(ul) == 4
    assert {b.ul_teid for b in table if b.sgw == "sgw1"} == {
        b.ul_teid for b in table if b.sgw == "sgw2"
    }
    assert {b.dl_teid for b in table if b.enb == "enb1"} == {
        b.dl_teid for b in table if b.enb == "enb2"
    }


def test_uniqueness_within_one_peer_is_enforced() -> None:
    text = default_text().replace(
        'name = "ue3"\naddress = "198.18.100.3"\nenb = "enb2"\nsgw = "sgw1"',
        'name = "ue3"\naddress = "198.18.100.3"\nenb = "enb2"\nsgw = "sgw1"\nul_teid = 0x1001',
    )
    with pytest.raises(LabConfigError, match="uplink TEID 0x1001 already used at sgw1"):
        loads(text)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ('name = "ue1"', 'name = "UE-1"', "lowercase"),
        ('sgw = "sgw2"', 'sgw = "sgw9"', "unknown sgw"),
        ('address = "198.18.100.4"', 'address = "198.18.7.4"', "not a host address"),
        ('address = "198.19.0.10"', 'address = "198.19.0.1"', "already used"),
        ('mode = "bridge"', 'mode = "ovs"', "lab.mode"),
        ('name = "app1"', 'name = "core"', "reserved"),
        ('[pdn]\nsubnet = "198.18.200.0/24"', '[pdn]\nsubnet = "198.18.0.0/16"', "subnet"),
    ],
)
def test_bad_descriptions_are_refused_with_a_reason(old: str, new: str, reason: str) -> None:
    text = default_text()
    assert old in text
    with pytest.raises(LabConfigError, match=reason):
        loads(text.replace(old, new, 1))


def test_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(LabConfigError, match="cannot read"):
        load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[lab\n")
    with pytest.raises(LabConfigError, match="not valid TOML"):
        load(bad)


@pytest.mark.parametrize("prefix", ["", "Fe", "1fe", "fe-x", "abcdefghijklm"])
def test_bad_prefixes(prefix: str) -> None:
    with pytest.raises(LabConfigError):
        validate_prefix(prefix)


@pytest.mark.parametrize("mode", ["bridge", "tof", "routed"])
def test_plan_keeps_everything_inside_lab_namespaces(mode: str) -> None:
    raw = load().model_dump(mode="json")
    raw["lab"]["mode"] = mode
    topo = Topology(LabConfig.model_validate(raw), "t1")
    plan = topo.plan("/usr/bin/python3", "/run/x")
    assert all(ns.startswith("t1-") for ns in plan.namespaces)
    assert len(set(plan.namespaces)) == len(plan.namespaces)
    for ns, lines in plan.create.items():
        for line in lines:
            assert ns in plan.namespaces
            peer = re.search(r"peer name (\S+)(?: netns (\S+))?", line)
            if peer and peer.group(2):
                assert peer.group(2) in plan.namespaces
    for lines in [*plan.create.values(), *plan.configure.values()]:
        for line in lines:
            for name in re.findall(r"(?:name|dev) (\S+)", line):
                assert len(name) <= 15
    host = plan.configure[topo.host_ns]
    bridged = any("master br0" in line and "s1enb" in line for line in host)
    assert bridged == (mode == "bridge")
    assert any("proxy_arp" in key for key, _ in plan.sysctls[topo.host_ns]) == (mode == "routed")


@pytest.mark.parametrize("psc", [False, True])
@pytest.mark.parametrize("size", [*FRAME_SIZES, 594])
def test_generated_frames_have_the_size_and_tunnel(size: int, psc: bool, tmp_path: Path) -> None:
    b = bearers(load())[1]
    frame = gpdu_frame(
        b,
        size=size,
        dst_mac=b"\x02" * 6,
        src_mac=b"\x04" * 6,
        inner_dst=IPv4Address("198.18.200.10"),
        psc=psc,
    )
    minimum = 82 + (8 if psc else 0)
    assert len(frame) + 4 == max(size, minimum)
    seen = dissect(frame)
    assert seen.is_gpdu
    assert (seen.src, seen.dst, seen.teid) == (b.enb_address, b.sgw_address, b.ul_teid)
    assert seen.qfi == (b.qfi if psc else None)
    assert (seen.inner_src, seen.inner_dst) == (b.ue_address, IPv4Address("198.18.200.10"))
    msg = decode(frame, 42)
    assert isinstance(msg, GPdu)
    path = tmp_path / "x.pcap"
    write_pcap(path, [frame, frame])
    assert [f for _, f in read_pcap(path)] == [frame, frame]


def test_ipv6_is_optional_and_mirrors_ipv4_host_indexes() -> None:
    dual = load()
    assert [str(b.ue_address6) for b in bearers(dual)][:2] == ["2001:db8:100::1", "2001:db8:100::2"]
    topo = Topology(dual, "t1")
    assert str(topo.pdn_address6) == "2001:db8:200::a"
    assert any(topo.plan("/p", "/r").configure6.values())
    text = default_text().replace('subnet6 = "2001:db8:100::/64"', "")
    v4 = loads(text)
    assert {b.ue_address6 for b in bearers(v4)} == {None}
    plan = Topology(v4, "t1").plan("/p", "/r")
    assert not any(plan.configure6.values())
    assert not any(plan.link_sysctls.values())
