"""The OVN renderer (pure): port groups, address sets, ACL matches, port security, diffs."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from fluidedge.secgroups import ovn_render
from fluidedge.secgroups.compiler import compile_program
from fluidedge.secgroups.errors import FilterFailure
from fluidedge.secgroups.model import AddressPair, Port, Rule, SecurityGroup, default_group
from fluidedge.secgroups.ovn_render import NbState, diff, render

ip = ipaddress.ip_address
WEB = SecurityGroup(
    id="web-tier",
    rules=(
        Rule(id="http", direction="ingress", protocol=6, port_range_min=80, port_range_max=81),
        Rule(id="db", direction="egress", protocol=6, port_range_min=5432, remote_group="db"),
        Rule(id="ping", direction="ingress", protocol=1, icmp_type=8),
    ),
)
DB = SecurityGroup(
    id="db",
    rules=(
        Rule(
            id="pg",
            direction="ingress",
            protocol=6,
            port_range_min=5432,
            remote_ip_prefix=ipaddress.ip_network("10.0.0.0/29"),
        ),
    ),
)
GROUPS = {g.id: g for g in (default_group(), WEB, DB)}
PAIR = ipaddress.ip_network("10.0.0.64/26")


def _port(pid: str, n: int, groups: tuple[str, ...], net: str = "net-a", **kw: Any) -> Port:
    base: dict[str, Any] = {
        "id": pid,
        "device": f"v{pid}",
        "network": net,
        "zone": 10 if net == "net-a" else 11,
        "mac": f"02:00:00:00:00:{n:02x}",
        "fixed_ips": (ip(f"10.0.0.{n}"), ip(f"fd00::{n:x}")),
        "groups": groups,
    }
    base.update(kw)
    return Port(**base)


def _ports() -> list[Port]:
    return [
        _port("w1", 1, ("web-tier",)),
        _port("w2", 2, ("web-tier",)),
        _port("d1", 3, ("db",), allowed_address_pairs=(AddressPair(PAIR),)),
        _port("u", 4, (), port_security=False),
        _port("d9", 3, ("db",), net="net-b"),  # the same address on another network
    ]


def test_port_groups_follow_filtering_and_groups() -> None:
    state = render(compile_program(_ports(), GROUPS), "net-a")
    drop = state.port_groups["fe_net_a_drop"]
    assert drop.ports == {"w1", "w2", "d1"}  # u is unfiltered, d9 on another network
    web = state.port_groups[ovn_render.rules_pg_name("net-a", ("web-tier",))]
    assert web.ports == {"w1", "w2"}  # the same groups share one port group
    assert dict(web.external_ids) == {"fluidedge-network": "net-a", "fluidedge-groups": "web-tier"}
    assert state.port_groups["fe_net_a_nodhcp"].ports == {"w1", "w2", "d1"}
    assert all(p.acls for p in state.port_groups.values())
    assert state.port_security["u"] == ()


def test_clauses_become_allow_related_acls() -> None:
    state = render(compile_program(_ports(), GROUPS), "net-a")
    pg = ovn_render.rules_pg_name("net-a", ("web-tier",))
    matches = {(a.direction, a.match, a.action) for a in state.port_groups[pg].acls}
    assert (
        "to-lport",
        f"outport == @{pg} && ip4 && tcp && tcp.dst >= 80 && tcp.dst <= 81",
        "allow-related",
    ) in matches
    assert (
        "to-lport",
        f"outport == @{pg} && ip4 && icmp4 && icmp4.type == 8",
        "allow-related",
    ) in matches
    remote = next(m for d, m, _ in matches if d == "from-lport")
    assert (
        remote == f"inport == @{pg} && ip4 && tcp && tcp.dst == 5432 && ip4.dst == $fe_rg_db_10_4"
    )
    db = ovn_render.rules_pg_name("net-a", ("db",))
    (acl,) = state.port_groups[db].acls
    assert acl.match.endswith("ip4.src == 10.0.0.0/29")


def test_address_sets_are_per_network_and_carry_pairs() -> None:
    program = compile_program(_ports(), GROUPS)
    a = render(program, "net-a")
    b = render(program, "net-b")
    assert a.address_sets == {"fe_rg_db_10_4": ("10.0.0.3", "10.0.0.64/26")}
    assert b.address_sets == {}  # nothing on net-b names db as a remote group


def test_port_security_lists_each_mac_with_its_sources() -> None:
    pair_mac = "02:aa:00:00:00:01"
    port = _port(
        "p", 5, ("db",),
        allowed_address_pairs=(AddressPair(ipaddress.ip_network("10.9.0.0/24"), pair_mac),),
    )  # fmt: skip
    state = render(compile_program([port], GROUPS), "net-a")
    entries = state.port_security["p"]
    assert len(entries) == 2
    own = next(e for e in entries if e.startswith("02:00:00:00:00:05 "))
    assert {"10.0.0.5", "fd00::5", "fe80::ff:fe00:5"} <= set(own.split()[1:])
    other = next(e for e in entries if e.startswith(pair_mac))
    assert "10.9.0.0/24" in other.split()


def test_diff_from_nothing_creates_everything_and_then_nothing() -> None:
    state = render(compile_program(_ports(), GROUPS), "net-a")
    commands = diff(NbState(), state, "net-a")
    verbs = [c[0] if not c[0].startswith("--") else c[1] for c in commands]
    assert verbs.count("pg-add") == len(state.port_groups)
    assert verbs.count("acl-add") == sum(len(p.acls) for p in state.port_groups.values())
    assert commands[0][:3] == ["create", "Address_Set", "name=fe_rg_db_10_4"]
    assert diff(state, state, "net-a") == []


def test_a_rule_change_touches_only_its_acl() -> None:
    before = render(compile_program(_ports(), GROUPS), "net-a")
    ssh = Rule(id="ssh", direction="ingress", protocol=6, port_range_min=22)
    web = SecurityGroup(id="web-tier", rules=(*WEB.rules[:2], ssh))
    after = render(compile_program(_ports(), {**GROUPS, "web-tier": web}), "net-a")
    commands = diff(before, after, "net-a")
    assert [c[1] for c in commands] == ["acl-del", "acl-add"]
    assert "icmp4.type == 8" in commands[0][-1]
    assert "tcp.dst == 22" in commands[1][-2]


def test_a_port_leaving_a_group_moves_between_port_groups() -> None:
    ports = _ports()
    before = render(compile_program(ports, GROUPS), "net-a")
    ports[1] = _port("w2", 2, ("db",))
    after = render(compile_program(ports, GROUPS), "net-a")
    commands = diff(before, after, "net-a")
    web = ovn_render.rules_pg_name("net-a", ("web-tier",))
    db = ovn_render.rules_pg_name("net-a", ("db",))
    assert ["pg-set-ports", web, "w1"] in commands
    assert ["pg-set-ports", db, "d1", "w2"] in commands
    assert any(c[:2] == ["set", "Address_Set"] for c in commands)  # w2 joined db's set


def test_removed_groups_and_sets_are_deleted() -> None:
    before = render(compile_program(_ports(), GROUPS), "net-a")
    commands = diff(before, NbState(), "net-a")
    assert {c[1] for c in commands if c[0] == "pg-del"} == set(before.port_groups)
    assert ["destroy", "Address_Set", "fe_rg_db_10_4"] in commands


def test_a_port_range_on_a_protocol_ovn_cannot_match_is_refused() -> None:
    dccp = SecurityGroup(
        id="dccp", rules=(Rule(id="r", direction="ingress", protocol=33, port_range_min=5000),)
    )
    program = compile_program([_port("p", 1, ("dccp",))], {"dccp": dccp})
    with pytest.raises(FilterFailure, match="protocol 33"):
        render(program, "net-a")


def test_other_protocols_match_by_number() -> None:
    gre = SecurityGroup(id="gre", rules=(Rule(id="r", direction="ingress", protocol=47),))
    state = render(compile_program([_port("p", 1, ("gre",))], {"gre": gre}), "net-a")
    pg = ovn_render.rules_pg_name("net-a", ("gre",))
    (acl,) = state.port_groups[pg].acls
    assert acl.match == f"outport == @{pg} && ip4 && ip.proto == 47"
