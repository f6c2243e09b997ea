"""The OVN renderer (pure): port groups, address sets, ACL matches, port security, diffs."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from fluidedge.secgroups import ovn_render
from fluidedge.secgroups.compiler import compile_program
from fluidedge.secgroups.errors import FilterFailure
from fluidedge.secgroups.model import AddressPair, Port, Rule, SecurityGroup, default_group
from fluidedge.secgroups.ovn_render import NbState, SharedSet, abandoned, diff, render

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
DB_SET = ovn_render.shared_set_name("db", "net-a", "IPv4")


def _as_read(state: NbState, node: str = "", others: NbState | None = None) -> NbState:
    """What reading the NB returns once ``state`` (and ``others``' sets, another node's) is in:
    the shared sets whole, with each node's part."""
    read = NbState(
        port_groups=dict(state.port_groups),
        address_sets=dict(state.address_sets),
        port_security=dict(state.port_security),
    )
    parts: dict[str, dict[str, tuple[str, ...]]] = {}
    for who, st in ((node, state), ("other", others)):
        if st is None:
            continue
        for name, mine in st.address_sets.items():
            parts.setdefault(name, {})[ovn_render.member_key(who)] = mine
    labels = {**(others.set_labels if others else {}), **state.set_labels}
    for name, by_node in parts.items():
        ids = dict(labels[name])
        ids.update({k: ",".join(v) for k, v in by_node.items()})
        addresses = frozenset(a for v in by_node.values() for a in v)
        read.shared[name] = SharedSet(addresses, tuple(sorted(ids.items())))
    return read


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
    assert remote == f"inport == @{pg} && ip4 && tcp && tcp.dst == 5432 && ip4.dst == ${DB_SET}"
    db = ovn_render.rules_pg_name("net-a", ("db",))
    (acl,) = state.port_groups[db].acls
    assert acl.match.endswith("ip4.src == 10.0.0.0/29")


def test_address_sets_are_per_network_and_carry_pairs() -> None:
    program = compile_program(_ports(), GROUPS)
    a = render(program, "net-a")
    b = render(program, "net-b")
    assert a.address_sets == {DB_SET: ("10.0.0.3", "10.0.0.64/26")}
    assert dict(a.set_labels[DB_SET]) == {"fluidedge-network": "net-a", "fluidedge-set": "db 4"}
    # nothing on net-b names db as a remote, but its member there is its part of net-b's set
    # (another node's port on net-b may name it): a set of its own, apart from net-a's
    net_b_db = ovn_render.shared_set_name("db", "net-b", "IPv4")
    assert net_b_db != DB_SET
    assert b.address_sets == {net_b_db: ("10.0.0.3",)}


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
    assert commands[0][:3] == ["create", "Address_Set", f"name={DB_SET}"]
    assert 'external_ids:fluidedge-members-local="10.0.0.3,10.0.0.64/26"' in commands[0]
    assert diff(_as_read(state), state, "net-a") == []


def test_a_rule_change_touches_only_its_acl() -> None:
    before = render(compile_program(_ports(), GROUPS), "net-a")
    ssh = Rule(id="ssh", direction="ingress", protocol=6, port_range_min=22)
    web = SecurityGroup(id="web-tier", rules=(*WEB.rules[:2], ssh))
    after = render(compile_program(_ports(), {**GROUPS, "web-tier": web}), "net-a")
    commands = diff(_as_read(before), after, "net-a")
    assert [c[1] for c in commands] == ["acl-del", "acl-add"]
    assert "icmp4.type == 8" in commands[0][-1]
    assert "tcp.dst == 22" in commands[1][-2]


def test_a_port_leaving_a_group_moves_between_port_groups() -> None:
    ports = _ports()
    before = render(compile_program(ports, GROUPS), "net-a")
    ports[1] = _port("w2", 2, ("db",))
    after = render(compile_program(ports, GROUPS), "net-a")
    commands = diff(_as_read(before), after, "net-a")
    web = ovn_render.rules_pg_name("net-a", ("web-tier",))
    db = ovn_render.rules_pg_name("net-a", ("db",))
    assert ["pg-set-ports", web, "w1"] in commands
    assert ["pg-set-ports", db, "d1", "w2"] in commands
    # w2 joined db's set: its address added by mutation, this node's part rewritten
    assert ["add", "Address_Set", DB_SET, "addresses", '"10.0.0.2"'] in commands
    assert [
        "set", "Address_Set", DB_SET,
        'external_ids:fluidedge-members-local="10.0.0.2,10.0.0.3,10.0.0.64/26"',
    ] in commands  # fmt: skip


def test_removed_groups_and_sets_are_deleted() -> None:
    before = render(compile_program(_ports(), GROUPS), "net-a")
    now = _as_read(before)
    commands = diff(now, NbState(), "net-a")
    assert {c[1] for c in commands if c[0] == "pg-del"} == set(before.port_groups)
    assert ["remove", "Address_Set", DB_SET, "external_ids", '"fluidedge-members-local"'] in (
        commands
    )
    assert abandoned(now, NbState()) == [
        (DB_SET, {"fluidedge-network": "net-a", "fluidedge-set": "db 4"})
    ]


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


# -- several nodes on one logical switch ---------------------------------------------------


def _node_ports(node: str) -> list[Port]:
    """Each node's own ports of net-a (w on a, d on b), as each node's store holds them."""
    if node == "edge-a":
        return [_port("w1", 1, ("web-tier",)), _port("w2", 2, ("db",))]
    return [_port("d1", 3, ("db",), allowed_address_pairs=(AddressPair(PAIR),))]


def test_each_node_owns_its_port_groups_by_name_and_tag() -> None:
    a = render(compile_program(_node_ports("edge-a"), GROUPS), "net-a", node="edge-a")
    b = render(compile_program(_node_ports("edge-b"), GROUPS), "net-a", node="edge-b")
    assert not set(a.port_groups) & set(b.port_groups)
    for pg in a.port_groups.values():
        assert dict(pg.external_ids)["fluidedge-node"] == "edge-a"
    # one node's view of the other's rows: not its own, so never in its diff
    theirs = dict(next(iter(b.port_groups.values())).external_ids)
    assert not ovn_render.owned(theirs, "net-a", "edge-a")
    assert ovn_render.owned(theirs, "net-a", "edge-b")
    assert ovn_render.owned({"fluidedge-network": "net-a"}, "net-a", "edge-a")  # untagged


def test_a_remote_group_set_is_shared_and_each_node_writes_only_its_part() -> None:
    a = render(compile_program(_node_ports("edge-a"), GROUPS), "net-a", node="edge-a")
    b = render(compile_program(_node_ports("edge-b"), GROUPS), "net-a", node="edge-b")
    assert DB_SET in a.address_sets  # one name on both
    assert DB_SET in b.address_sets
    # b arrives when a's part is in: b adds its own addresses and its key, touches no other
    now = _as_read(NbState(), node="edge-b", others=a)
    commands = diff(now, b, "net-a", node="edge-b")
    sets = [c for c in commands if "Address_Set" in c]
    assert sets == [
        ["add", "Address_Set", DB_SET, "addresses", '"10.0.0.3"', '"10.0.0.64/26"'],
        ["set", "Address_Set", DB_SET,
         'external_ids:fluidedge-members-edge-b="10.0.0.3,10.0.0.64/26"'],
    ]  # fmt: skip
    # b leaves: it removes its addresses and key only, and the set stays (a still lists it)
    both = _as_read(b, node="edge-b", others=a)
    gone = diff(both, NbState(), "net-a", node="edge-b")
    assert ["remove", "Address_Set", DB_SET, "addresses", '"10.0.0.3"', '"10.0.0.64/26"'] in gone
    assert ["remove", "Address_Set", DB_SET, "external_ids", '"fluidedge-members-edge-b"'] in gone
    assert not any(c[0] == "destroy" for c in gone)
    assert abandoned(both, NbState(), node="edge-b") == []


def test_an_address_two_nodes_list_stays_while_one_does() -> None:
    a = NbState(address_sets={DB_SET: ("10.0.0.9",)}, set_labels={DB_SET: ()})
    b = NbState(address_sets={DB_SET: ("10.0.0.3", "10.0.0.9")}, set_labels={DB_SET: ()})
    both = _as_read(b, node="edge-b", others=a)
    commands = diff(both, NbState(), "net-a", node="edge-b")
    assert ["remove", "Address_Set", DB_SET, "addresses", '"10.0.0.3"'] in commands
    assert not any('"10.0.0.9"' in c for c in commands)


def test_addresses_nobody_lists_are_removed() -> None:
    b = render(compile_program(_node_ports("edge-b"), GROUPS), "net-a", node="edge-b")
    now = _as_read(b, node="edge-b")
    stray = SharedSet(now.shared[DB_SET].addresses | {"10.0.0.77"}, now.shared[DB_SET].external_ids)
    now.shared[DB_SET] = stray
    commands = diff(now, b, "net-a", node="edge-b")
    assert commands == [["remove", "Address_Set", DB_SET, "addresses", '"10.0.0.77"']]


def test_one_writers_rows_are_adopted_by_a_node() -> None:
    """Rows written before nodes had names (no node tag, per-zone set names) are replaced by
    the node's own in the same transaction."""
    legacy = render(compile_program(_node_ports("edge-a"), GROUPS), "net-a")
    now = NbState(
        port_groups=dict(legacy.port_groups),
        port_security=dict(legacy.port_security),
        legacy_sets={"fe_rg_db_10_4"},
    )
    mine = render(compile_program(_node_ports("edge-a"), GROUPS), "net-a", node="edge-a")
    commands = diff(now, mine, "net-a", node="edge-a")
    assert {c[1] for c in commands if c[0] == "pg-del"} == set(legacy.port_groups)
    assert {c[1] for c in commands if c[0] == "pg-add"} == set(mine.port_groups)
    assert ["destroy", "Address_Set", "fe_rg_db_10_4"] in commands
    # the new set is created before the ACLs that name it, the old destroyed after
    verbs = [c[0] if not c[0].startswith("--") else c[1] for c in commands]
    assert verbs.index("create") < verbs.index("acl-add") < verbs.index("destroy")


def test_a_set_another_node_lists_is_never_abandoned() -> None:
    a = render(compile_program(_node_ports("edge-a"), GROUPS), "net-a", node="edge-a")
    only_other = _as_read(NbState(), node="edge-b", others=a)
    assert abandoned(only_other, NbState(), node="edge-b") == []
    empty_part = NbState(address_sets={DB_SET: ()}, set_labels=a.set_labels)
    listed_empty = _as_read(empty_part, node="edge-c")
    assert abandoned(listed_empty, NbState(), node="edge-b") == []  # c's empty part counts


def test_what_a_diff_puts_back_is_said_in_words() -> None:
    """The check's log line names what was changed from outside, counted by kind."""
    commands = [
        ["--type=port-group", "acl-add", "pg", "to-lport", "1001", "ip4", "drop"],
        ["--type=port-group", "acl-add", "pg", "to-lport", "1002", "ip6", "drop"],
        ["pg-set-ports", "pg", "p1"],
        ["add", "Address_Set", "s", "addresses", '"10.0.0.1"'],
        ["set", "Address_Set", "s", 'external_ids:fluidedge-members-a="10.0.0.1"'],
        ["lsp-set-port-security", "p1", "02:00:00:00:00:01 10.0.0.1"],
        ["pg-add", "pg2"],
        ["set", "Port_Group", "pg2", 'external_ids:x="y"'],
    ]
    assert ovn_render.describe(commands) == (
        "an ACL missing or changed (x2), a port group's ports changed, an address set's "
        "addresses changed, an address set's members changed, a port's port security changed, "
        "a port group missing, a port group's labels changed"
    )
    assert ovn_render.describe([]) == ""
