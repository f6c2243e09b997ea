"""The traffic matrix: every (source, destination, protocol, port) cell, real packets, each
renderer; the expected verdict of each cell comes from the reference evaluator of the model
(tests/fixtures/secgroups_ref.py), never from the compiler under test."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from fluidedge.secgroups.model import AddressPair, Rule, SecurityGroup, default_group
from tests.fixtures.secgroups_net import Host, SgLab
from tests.fixtures.secgroups_ref import Conn, expected

pytestmark = pytest.mark.root

TIMEOUT = 2.0
TCP_PORTS = (80, 5432, 22)
UDP_PORTS = (53,)

WEB = SecurityGroup(
    id="web",
    rules=(
        Rule(id="http", direction="ingress", protocol=6, port_range_min=80),
        Rule(
            id="http6",
            direction="ingress",
            ethertype="IPv6",
            protocol=6,
            port_range_min=80,
            port_range_max=81,
        ),
        Rule(
            id="dns",
            direction="ingress",
            protocol=17,
            port_range_min=53,
            remote_ip_prefix=ipaddress.ip_network("10.0.0.0/29"),
        ),
        Rule(id="ping", direction="ingress", protocol=1, icmp_type=8, remote_group="admin"),
        Rule(id="db", direction="egress", protocol=6, port_range_min=5432, remote_group="db"),
    ),
)
ADMIN = SecurityGroup(
    id="admin",
    rules=(
        Rule(id="tcp", direction="egress", protocol=6),
        Rule(id="icmp", direction="egress", protocol=1),
        Rule(id="icmp6", direction="egress", ethertype="IPv6", protocol=58),
        Rule(id="ssh", direction="ingress", protocol=6, port_range_min=22),
    ),
)
DB = SecurityGroup(
    id="db",
    rules=(
        Rule(id="pg", direction="ingress", protocol=6, port_range_min=5432, remote_group="web"),
        Rule(id="ping6", direction="ingress", ethertype="IPv6", protocol=58, icmp_type=128),
    ),
)
GROUPS = {g.id: g for g in (default_group(), WEB, ADMIN, DB)}


def _probe(
    src: Host, dst: Host, kind: str, port: int | None, v6: bool
) -> tuple[Conn, dict[str, Any]]:
    addr = dst.v6 if v6 else dst.v4
    srcaddr = src.v6 if v6 else src.v4
    if kind == "icmp":
        proto, itype = (58, 128) if v6 else (1, 8)
        conn = Conn(protocol=proto, src=srcaddr, dst=addr, icmp_type=itype, icmp_code=0)
        return conn, {"op": "ping", "dst": addr, "timeout": TIMEOUT}
    proto = 6 if kind == "tcp" else 17
    conn = Conn(protocol=proto, src=srcaddr, dst=addr, dport=port)
    return conn, {"op": kind, "dst": addr, "port": port, "timeout": TIMEOUT}


def build(lab: SgLab) -> None:
    lab.network("n1", zone=11)
    lab.network("n2", zone=12)  # the same subnets: overlapping addresses, isolated
    with lab.driver.defer_apply():
        for group in GROUPS.values():
            lab.driver.set_group(group)
        servers: dict[str, Any] = {"tcp": TCP_PORTS, "udp": UDP_PORTS}
        lab.host("a", "n1", 1, groups=("default",), **servers)
        lab.host("w", "n1", 2, groups=("web", "default"), **servers)
        lab.host("d", "n1", 3, groups=("db",), **servers)
        lab.host("u", "n1", 4, port_security=False, **servers)
        lab.host("m", "n1", 9, groups=("admin",), **servers)
        lab.host("y", "n2", 1, groups=("default",), **servers)
        lab.host("x", "n2", 2, groups=("db",), **servers)


def check_matrix(lab: SgLab, seen: dict[str, bool] | None = None) -> list[str]:
    """Run every cell; return the cells whose verdict is not the reference's (and a note if
    the matrix lacks passes or drops, which would make it prove nothing). ``seen`` receives
    every cell's verdict."""
    ports = [h.port() for h in lab.hosts.values()]
    groups = lab.driver.groups()
    wrong: list[str] = []
    verdicts: set[bool] = set()
    for src in lab.hosts.values():
        cells: list[tuple[str, bool, str]] = []
        probes: list[dict[str, Any]] = []
        for dst in lab.hosts.values():
            if dst is src or dst.network != src.network:
                continue
            kinds: list[tuple[str, int | None, bool]] = [("tcp", p, False) for p in TCP_PORTS]
            kinds += [("udp", 53, False), ("icmp", None, False), ("tcp", 80, True)]
            kinds += [("icmp", None, True)]
            for kind, port, v6 in kinds:
                conn, probe = _probe(src, dst, kind, port, v6)
                want = expected(src.port(), dst.port(), conn, groups, ports)
                label = f"{src.name}->{dst.name} {kind}{'6' if v6 else ''}/{port}"
                cells.append((label, want, dst.name))
                probes.append(probe)
        for (label, want, dst_name), got in zip(cells, src.batch(probes), strict=True):
            ok = bool(got)
            if seen is not None:
                seen[label] = ok
            verdicts.add(want)
            if ok != want:
                wrong.append(f"{label}: expected {'pass' if want else 'drop'}, got {got!r}")
            elif isinstance(got, str) and got != dst_name:
                wrong.append(f"{label}: answered by {got}, not {dst_name}")
    if verdicts != {True, False}:
        wrong.append(f"the matrix only has {verdicts} verdicts")
    return wrong


def test_every_cell_matches_the_reference(sg_lab: SgLab) -> None:
    build(sg_lab)
    assert check_matrix(sg_lab) == []


def test_changes_reach_the_matrix(sg_lab: SgLab) -> None:
    """A rule change, a group change of a port and a member joining all show up in the
    matrix (the reference follows the model, the data plane follows the driver)."""
    build(sg_lab)
    lab = sg_lab
    with lab.driver.defer_apply():
        lab.driver.update_security_group_rules(
            "db",
            (
                *DB.rules,
                Rule(id="all-from-admin", direction="ingress", protocol=6, remote_group="admin"),
            ),
        )
        lab.update(lab.hosts["a"], groups=("default", "web"))
        lab.update(
            lab.hosts["u"],
            port_security=True,
            groups=("admin",),
            pairs=(AddressPair(ipaddress.ip_network("10.0.0.64/26")),),
        )
    assert check_matrix(lab) == []


def test_overlapping_subnets_keep_their_own_connection_state(sg_lab: SgLab) -> None:
    """The same 5-tuple on two networks: n1 allows it, n2 does not; without a zone per
    network n2's packet would ride on n1's connection."""
    build(sg_lab)
    a, w = sg_lab.hosts["a"], sg_lab.hosts["w"]
    y, x = sg_lab.hosts["y"], sg_lab.hosts["x"]
    assert a.call("udp", dst=w.v4, port=53, timeout=TIMEOUT, sport=5353) == "w"
    assert y.call("udp", dst=x.v4, port=53, timeout=TIMEOUT, sport=5353) is False


def test_incremental_changes_give_the_verdicts_of_a_full_reinstall(sg_lab: SgLab) -> None:
    """A sequence of changes, each applied on its own (the renderer sends only what changed),
    then the same model installed whole by a fresh driver (a restart's full install): every
    cell has the same verdict both ways, and the reference's."""
    build(sg_lab)
    lab = sg_lab
    driver = lab.driver
    driver.update_security_group_rules(
        "db", (*DB.rules, Rule(id="ssh", direction="ingress", protocol=6, port_range_min=22))
    )
    driver.update_security_group_rules("web", WEB.rules[1:])  # http goes
    lab.update(lab.hosts["a"], groups=("default", "admin"))  # a joins admin (a member)
    lab.update(lab.hosts["m"], groups=())  # m leaves it
    lab.update(lab.hosts["u"], port_security=True, groups=("web",))
    lab.update(lab.hosts["x"], pairs=(AddressPair(ipaddress.ip_network("10.0.0.64/26")),))
    driver.update_security_group_rules("web", WEB.rules)  # http is back
    incremental: dict[str, bool] = {}
    assert check_matrix(lab, incremental) == []
    fresh = lab.backend.make_driver()
    with fresh.defer_apply():
        for net in lab.networks.values():
            fresh.bind_network(net.binding)
        for group in driver.groups().values():
            fresh.set_group(group)
        for port in driver.ports().values():
            fresh.prepare_port_filter(port)
    assert fresh.program == driver.program
    lab.driver = fresh
    full: dict[str, bool] = {}
    assert check_matrix(lab, full) == []
    assert full == incremental
