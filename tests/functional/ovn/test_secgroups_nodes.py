"""Security groups of several nodes on one logical switch (the 3-member central's lab).

Each node has its own firewall driver (its store's ports, every group), rendering as itself
(``OvnRenderer(node=...)``) into the one northbound database: a node's changes never remove
another node's rows, and a remote group admits its members on every node.
"""

from __future__ import annotations

import ipaddress

import pytest

from fluidedge.secgroups import ovn_render
from fluidedge.secgroups.driver import FirewallDriver
from fluidedge.secgroups.model import Port, Rule, SecurityGroup
from fluidedge.secgroups.nft import Binding
from fluidedge.secgroups.ovn_driver import OvnConntrack, OvnRenderer
from tests.fixtures.ovn_lab import Instance, OvnLab
from tests.fixtures.wait import wait_until

pytestmark = pytest.mark.root

NET = "shared"
ANY4 = ipaddress.ip_network("0.0.0.0/0")
GROUPS = (
    SecurityGroup(id="web", rules=(Rule(id="out", direction="egress", remote_ip_prefix=ANY4),)),
    SecurityGroup(id="other", rules=(Rule(id="out", direction="egress", remote_ip_prefix=ANY4),)),
    SecurityGroup(
        id="db", rules=(Rule(id="ping", direction="ingress", protocol=1, remote_group="web"),)
    ),
)


class Node:
    """One node's driver: its own ports only, every group."""

    def __init__(self, lab: OvnLab, name: str, switch: str) -> None:
        self.name = name
        self.driver = FirewallDriver(
            OvnRenderer(
                lab.nbctl,
                lambda port: port.device,
                node=name,
                owns_port=lambda lsp: lsp.startswith(f"{lab.prefix}{name[-1]}"),
            ),
            OvnConntrack(),
        )
        with self.driver.defer_apply():
            for group in GROUPS:
                self.driver.set_group(group)
            self.driver.bind_network(Binding(network=NET, bridge=switch, netns=None))

    def port(self, inst: Instance, *groups: str) -> None:
        self.driver.update_port_filter(
            Port(
                id=inst.lsp,
                device=inst.lsp,
                network=NET,
                zone=7,
                mac=inst.mac,
                fixed_ips=(ipaddress.ip_address(inst.ip),),
                groups=groups,
            )
        )


@pytest.fixture
def nodes(ovn: OvnLab) -> tuple[Node, Node, dict[str, Instance]]:
    p = ovn.prefix
    switch = f"{p}-sh"
    spec = {  # name: (chassis, node letter, mac, ip)
        "w": (0, "a", "02:31:00:00:00:01", "10.31.0.1"),
        "o": (0, "a", "02:31:00:00:00:02", "10.31.0.2"),
        "d": (1, "b", "02:31:00:00:00:03", "10.31.0.3"),
    }
    commands: list[list[str]] = [["ls-add", switch]]
    for name, (_, letter, mac, _ip) in spec.items():
        lsp = f"{p}{letter}{name}"
        commands += [["lsp-add", switch, lsp], ["lsp-set-addresses", lsp, mac]]
    ovn.nbctl.transact(commands)
    insts = {
        name: ovn.instance(name, chassis, f"{p}{letter}{name}", mac, ip)
        for name, (chassis, letter, mac, ip) in spec.items()
    }
    for inst in insts.values():
        ovn.nbctl.run("wait-until", "Logical_Switch_Port", inst.lsp, "up=true", wait="hv")
    a, b = Node(ovn, "edge-a", switch), Node(ovn, "edge-b", switch)
    return a, b, insts


def _reaches(src: Instance, dst: Instance) -> bool:
    return wait_until(lambda: src.ping(dst.ip), timeout=5)


def _refused(src: Instance, dst: Instance) -> bool:
    return not any(src.ping(dst.ip) for _ in range(3))


def _ours(lab: OvnLab, node: str) -> set[str]:
    rows = lab.nbctl.rows("Port_Group", ["name"], f'external_ids:{ovn_render.NODE_KEY}="{node}"')
    return {r["name"] for r in rows}


def _web_other_db(a: Node, b: Node, i: dict[str, Instance]) -> None:
    """w (web) and o (other) on a, d (db: pings from web only) on b."""
    with a.driver.defer_apply():
        a.port(i["w"], "web")
        a.port(i["o"], "other")
    b.port(i["d"], "db")


def test_a_remote_group_admits_its_members_on_another_node(
    ovn: OvnLab, nodes: tuple[Node, Node, dict[str, Instance]]
) -> None:
    a, b, i = nodes
    _web_other_db(a, b, i)
    # d (on b) admits pings from web's members, and web's only member is a's
    assert _reaches(i["w"], i["d"])
    assert _refused(i["o"], i["d"])
    # the set is one row, with each node's part
    (row,) = ovn.nbctl.rows(
        "Address_Set", ["addresses", "external_ids"], 'external_ids:fluidedge-set="web 4"'
    )
    assert row["addresses"] == "10.31.0.1"
    assert row["external_ids"][ovn_render.member_key("edge-a")] == "10.31.0.1"
    assert row["external_ids"][ovn_render.member_key("edge-b")] == ""
    # o joins web on a: b admits it without b doing anything
    a.port(i["o"], "web", "other")
    assert _reaches(i["o"], i["d"])
    # and leaves it again
    a.port(i["o"], "other")
    assert wait_until(lambda: _refused(i["o"], i["d"]), timeout=5)


def test_a_nodes_change_never_removes_another_nodes_rows(
    ovn: OvnLab, nodes: tuple[Node, Node, dict[str, Instance]]
) -> None:
    a, b, i = nodes
    a.port(i["w"], "web")
    b.port(i["d"], "db")
    mine_a, mine_b = _ours(ovn, "edge-a"), _ours(ovn, "edge-b")
    assert mine_a
    assert mine_b
    assert not mine_a & mine_b
    # b changes its port many ways: a's rows and a's traffic stay
    b.port(i["d"], "db", "other")
    b.port(i["d"], "db")
    assert _ours(ovn, "edge-a") == mine_a
    assert _reaches(i["w"], i["d"])
    # a's port security is a's: b leaving the network clears b's ports only
    b.driver.unbind_network(NET)
    assert not _ours(ovn, "edge-b")
    assert _ours(ovn, "edge-a") == mine_a
    security = {
        r["name"]: r["port_security"]
        for r in ovn.nbctl.rows("Logical_Switch_Port", ["name", "port_security"])
    }
    assert security[i["w"].lsp]  # a's, kept
    assert not security[i["d"].lsp]  # b's, cleared
    # the web set stays while a lists it, and goes with the last node that does
    assert ovn.nbctl.rows("Address_Set", ["name"], 'external_ids:fluidedge-set="web 4"')
    a.driver.unbind_network(NET)
    assert not ovn.nbctl.rows("Address_Set", ["name"], 'external_ids:fluidedge-set="web 4"')
    assert not ovn.nbctl.rows("Port_Group", ["name"], f'external_ids:fluidedge-network="{NET}"')


def test_a_set_another_node_started_using_is_not_deleted(
    ovn: OvnLab, nodes: tuple[Node, Node, dict[str, Instance]]
) -> None:
    """The guarded delete: a node that read a set as abandoned does not delete it once
    another node has added its part."""
    a, b, i = nodes
    a.port(i["w"], "web")
    (row,) = ovn.nbctl.rows(
        "Address_Set", ["name", "external_ids"], 'external_ids:fluidedge-set="web 4"'
    )
    name, seen = row["name"], dict(row["external_ids"])
    b.port(i["d"], "db")  # b adds its (empty) part of web's set
    assert not ovn.nbctl.delete_if("Address_Set", name, seen)
    assert ovn.nbctl.rows("Address_Set", ["name"], f"name={name}")
    now = dict(ovn.nbctl.rows("Address_Set", ["external_ids"], f"name={name}")[0]["external_ids"])
    assert ovn.nbctl.delete_if("Address_Set", name, now)
    assert not ovn.nbctl.rows("Address_Set", ["name"], f"name={name}")


def test_acls_deleted_from_outside_are_seen_by_their_node_only_and_put_back(
    ovn: OvnLab, nodes: tuple[Node, Node, dict[str, Instance]]
) -> None:
    """``ovn-nbctl acl-del`` on b's port groups: OVN lets through what no ACL drops, so d
    (db: pings from web only) now answers o. b's check finds its rows changed and the driver
    puts them back; a's rows are intact and a's check says nothing, though the two nodes
    share the switch and the sets. A change of b's own is learnt, not reported."""
    a, b, i = nodes
    _web_other_db(a, b, i)
    assert _reaches(i["w"], i["d"])
    assert _refused(i["o"], i["d"])
    assert a.driver.heal() == {}
    assert b.driver.heal() == {}

    for pg in sorted(_ours(ovn, "edge-b")):
        ovn.nbctl.run("--type=port-group", "acl-del", pg, wait="hv")
    assert _reaches(i["o"], i["d"])  # unfiltered
    assert a.driver.heal() == {}
    lost = b.driver.heal()
    assert set(lost) == {NET}
    assert "rows in the OVN northbound database changed from outside (an ACL missing" in lost[NET]
    assert wait_until(lambda: _refused(i["o"], i["d"]), timeout=5)
    assert _reaches(i["w"], i["d"])
    assert b.driver.heal() == {}

    # b's own change is not one from outside
    b.port(i["d"], "db", "other")
    assert b.driver.heal() == {}
    assert a.driver.heal() == {}
