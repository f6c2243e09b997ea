"""A damaged row of the security groups' tables is set aside at start; the rest loads.

A real store on a file: groups declared and instances' ports filtered through the service,
the store closed, one row damaged with ``sqlite3`` as an operator's edit or a bad disk would,
the part started again on it (:meth:`SecgroupService.load`, then :meth:`restore_ports` of the
same instances, as the daemon's start). No network bound: nothing is installed."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tests.fixtures.rows import set_aside

from fluidedge.core import rows
from fluidedge.core.store import Store
from fluidedge.secgroups.driver import FirewallDriver, NftRenderer
from fluidedge.secgroups.model import ZONE_MAX, ZONE_MIN
from fluidedge.secgroups.persist import Tables
from fluidedge.secgroups.service import CLOSED, SecgroupService

WEB = {"direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80}
FROM_WEB = {"direction": "ingress", "protocol": "tcp", "remote_group": "web"}
# instance -> (its network, the groups of its interface eth0)
INSTANCES = {"i1": ("n1", ["db"]), "i2": ("n1", ["spare"]), "i3": ("n2", ["web"])}


def _instance(name: str) -> Any:
    network, _ = INSTANCES[name]
    number = sorted(INSTANCES).index(name) + 2
    return SimpleNamespace(
        name=name,
        interfaces=[
            SimpleNamespace(
                name="eth0",
                network=network,
                host_ifname=f"fet{number}",
                addresses=[f"10.9.0.{number}/24"],
            )
        ],
    )


class Node:
    """The store's file, and the part started on it (again) as the daemon would."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.store = Store(path)
        self.service = self._started()

    def _started(self) -> SecgroupService:
        service = SecgroupService(Tables(self.store), FirewallDriver(NftRenderer()))
        service.load()
        return service

    def restart(self) -> None:
        self.store.close()
        self.store = Store(self.path)
        self.service = self._started()
        self.service.restore_ports([_instance(name) for name in sorted(INSTANCES)], [])

    def damage(self, table: str, column: str, value: object, **key: str) -> None:
        """Write ``value`` in ``column`` of the row of ``table`` with ``key``, the part
        stopped."""
        self.store.close()
        where = " AND ".join(f"{name} = ?" for name in key)
        with closing(sqlite3.connect(self.path)) as conn, conn:
            changed = conn.execute(
                f"UPDATE {table} SET {column} = ? WHERE {where}",  # noqa: S608 (the test's own)
                (value, *key.values()),
            ).rowcount
        assert changed == 1

    def set_aside(self) -> list[rows.SetAside]:
        return set_aside(self.path)

    def groups(self) -> set[str]:
        return {g.id for g in self.service.list_groups()}

    def port_groups(self) -> dict[str, tuple[str, ...]]:
        return {p.id: p.groups for p in self.service.list_ports()}


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    made = Node(tmp_path / "db.sqlite")
    made.service.create_group({"id": "web", "rules": [WEB]})
    made.service.create_group({"id": "db", "rules": [FROM_WEB]})
    made.service.create_group({"id": "spare", "rules": [WEB]})
    made.service.create_group({"id": "idle", "rules": [WEB]})
    for name, (_, groups) in INSTANCES.items():
        iface = SimpleNamespace(
            name="eth0", port_security=True, allowed_address_pairs=[], security_groups=groups
        )
        made.service.ports_up(_instance(name), None, SimpleNamespace(interfaces=[iface]))
    yield made
    made.store.close()


GROUPS = {"default", "web", "db", "spare", "idle"}
PORTS = {"i1.eth0": ("db",), "i2.eth0": ("spare",), "i3.eth0": ("web",)}
IDLE = {"id": "idle", "tenant": "default", "rules": [{**WEB, "id": "r1"}]}


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param(json.dumps(IDLE)[:-2], id="bad-json"),
        pytest.param(json.dumps([IDLE]), id="wrong-type"),
        pytest.param(json.dumps({**IDLE, "rules": [{"direction": "sideways"}]}), id="refused"),
        pytest.param(json.dumps({k: v for k, v in IDLE.items() if k != "id"}), id="no-id"),
    ],
)
def test_a_damaged_group_is_set_aside_and_the_rest_loads(node: Node, doc: str) -> None:
    node.damage("sg_groups", "doc", doc, id="idle")
    node.restart()

    assert node.groups() == GROUPS - {"idle"}
    assert node.port_groups() == PORTS
    [aside] = node.set_aside()
    assert (aside.source, aside.key) == ("sg_groups", "idle")
    assert aside.row["doc"] == doc
    assert rows.count(node.store) == 1
    assert not node.store.query("SELECT 1 FROM sg_groups WHERE id = 'idle'")

    # its id is free: declaring it again is no conflict, and it survives the next start
    node.service.create_group({"id": "idle", "rules": [WEB]})
    node.restart()
    assert node.groups() == GROUPS
    assert rows.count(node.store) == 1


def test_what_names_a_set_aside_group_is_set_aside_in_turn(node: Node) -> None:
    """Group ``web`` does not decode: ``db`` names it as remote group (no port in ``db``
    would compile), and interfaces in either would not restore; all set aside, those
    interfaces closed (no group: nothing passes, not their tenant's default), the rest
    starts."""
    node.damage("sg_groups", "doc", "{", id="web")
    node.restart()

    assert node.groups() == {"default", "spare", "idle"}
    assert node.port_groups() == {
        "i1.eth0": (),
        "i2.eth0": ("spare",),
        "i3.eth0": (),
    }
    assert [(a.source, a.key) for a in node.set_aside()] == [
        ("sg_groups", "web"),
        ("sg_groups", "db"),
        ("sg_ports", "i1/eth0"),
        ("sg_ports", "i3/eth0"),
    ]
    assert "'web'" in node.set_aside()[1].reason
    assert rows.count(node.store) == 4

    node.service.create_group({"id": "web", "rules": [WEB]})
    node.service.create_group({"id": "db", "rules": [FROM_WEB]})
    node.service.set_port_groups("i1", "eth0", ["db"])
    node.service.set_port_groups("i3", "eth0", ["web"])
    node.restart()
    assert node.groups() == GROUPS
    assert node.port_groups() == PORTS


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param('{"security_groups": ["db"', id="bad-json"),
        pytest.param('["db"]', id="wrong-type"),
        pytest.param('{"security_groups": ["Not A Group"]}', id="refused-group"),
        pytest.param('{"allowed_address_pairs": ["10.0.0.300/32"]}', id="refused-pair"),
        pytest.param('{"port_security": false, "allowed_address_pairs": ["10.1.0.0/24"]}',
                     id="refused-together"),
    ],
)  # fmt: skip
def test_damaged_port_settings_are_set_aside_and_the_rest_loads(node: Node, doc: str) -> None:
    """``i1``'s settings do not decode: set aside; ``i1`` restores closed (port security on,
    no group: nothing passes; not its tenant's default group, which may allow more than the
    lost settings did), stored so, the others as declared."""
    node.damage("sg_ports", "doc", doc, instance="i1", ifname="eth0")
    node.restart()

    assert node.groups() == GROUPS
    assert node.port_groups() == {**PORTS, "i1.eth0": ()}
    ports = {p.id: p for p in node.service.list_ports()}
    assert ports["i1.eth0"].port_security
    [aside] = node.set_aside()
    assert (aside.source, aside.key) == ("sg_ports", "i1/eth0")
    assert aside.row["doc"] == doc
    assert rows.count(node.store) == 1
    assert node.service.tables.ports()[("i1", "eth0")] == CLOSED
    node.restart()  # still closed after the next start: nothing more set aside
    assert node.port_groups() == {**PORTS, "i1.eth0": ()}
    assert rows.count(node.store) == 1

    node.service.set_port_groups("i1", "eth0", ["db"])
    node.restart()
    assert node.port_groups() == PORTS
    assert rows.count(node.store) == 1


@pytest.mark.parametrize("zone", ["forty", ZONE_MIN - 1, ZONE_MAX + 1])
def test_a_damaged_zone_is_set_aside_and_the_network_gets_one_again(
    node: Node, zone: object
) -> None:
    """Network ``n2``'s zone is not one: set aside; its port restores in a new zone (not
    ``n1``'s), and that zone is stored."""
    zones = node.service.tables.zones()
    node.damage("sg_zones", "zone", zone, network="n2")
    node.restart()

    assert node.port_groups() == PORTS
    ports = {p.id: p for p in node.service.list_ports()}
    assert ports["i1.eth0"].zone == zones["n1"]
    assert ports["i3.eth0"].zone != zones["n1"]
    [aside] = node.set_aside()
    assert (aside.source, aside.key) == ("sg_zones", "n2")
    assert aside.row["zone"] == zone
    assert node.service.tables.zones() == {"n1": zones["n1"], "n2": ports["i3.eth0"].zone}
