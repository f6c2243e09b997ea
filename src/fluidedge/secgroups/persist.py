"""The security-group part's SQLite tables: groups, instance ports' settings, network zones.

Groups and port settings are the declared state restored at start; a network keeps its
conntrack zone across restarts (allocated once, lowest free), so a restart never moves a
network's connections to another zone.

At start the rows are read through :func:`fluidedge.core.rows.load`: a row that does not
decode is set aside (kept, named) and the part starts with the others.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from fluidedge.core import rows
from fluidedge.core.store import Store
from fluidedge.secgroups.model import NETWORK_PATTERN, ZONE_MAX, ZONE_MIN

T = TypeVar("T")

GROUPS, PORTS, ZONES = "sg_groups", "sg_ports", "sg_zones"
PORT_KEY = ("instance", "ifname")

_NETWORK_RE = re.compile(NETWORK_PATTERN)

MIGRATIONS = [
    """
    CREATE TABLE sg_groups (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, doc TEXT NOT NULL);
    CREATE TABLE sg_ports (instance TEXT NOT NULL, ifname TEXT NOT NULL, doc TEXT NOT NULL,
                           PRIMARY KEY (instance, ifname));
    CREATE TABLE sg_zones (network TEXT PRIMARY KEY, zone INTEGER NOT NULL UNIQUE)
    """,
]


class Tables:
    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate("secgroups", MIGRATIONS)

    # read back at start: a row that cannot be decoded is set aside (fluidedge.core.rows)
    def stored_groups(self, decode: Callable[[dict[str, Any]], T]) -> list[T]:
        """``decode`` of every stored group's document (an object of its row's id)."""
        return rows.load(
            self.store,
            GROUPS,
            ("doc",),
            lambda r: decode(rows.json_object(r, "doc", "id")),
            key=("id",),
            order=("id",),
        )

    def stored_ports(
        self,
        decode: Callable[[dict[str, Any]], T],
        lost: Callable[[tuple[str, str]], None] | None = None,
    ) -> list[tuple[tuple[str, str], T]]:
        """(instance, interface) and ``decode`` of its stored settings, for every interface;
        ``lost`` is called with the (instance, interface) of each one set aside."""
        return rows.load(
            self.store,
            PORTS,
            ("doc",),
            lambda r: ((r["instance"], r["ifname"]), decode(rows.json_object(r, "doc"))),
            key=PORT_KEY,
            order=PORT_KEY,
            on_set_aside=None if lost is None else lambda r: lost((r["instance"], r["ifname"])),
        )

    def stored_zones(self) -> dict[str, int]:
        """Each network's conntrack zone (a zone out of range, or a network name that is not
        one, is set aside: the network gets a new zone when it is used again)."""
        return dict(rows.load(self.store, ZONES, ("zone",), _zone, key=("network",)))

    def set_aside_group(self, group_id: str, reason: str) -> bool:
        """Set aside a stored group that decoded but that names one that was set aside."""
        return rows.set_aside_by_key(self.store, GROUPS, ("id",), (group_id,), reason)

    def set_aside_port(self, instance: str, ifname: str, reason: str) -> bool:
        """Set aside an interface's settings that decoded but name a group no longer stored."""
        return rows.set_aside_by_key(self.store, PORTS, PORT_KEY, (instance, ifname), reason)

    # groups
    def groups(self) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT doc FROM sg_groups ORDER BY id")
        return [json.loads(r["doc"]) for r in rows]

    def put_group(self, doc: dict[str, Any]) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO sg_groups (id, tenant, doc) VALUES (?, ?, ?)",
                (doc["id"], doc["tenant"], json.dumps(doc)),
            )

    def delete_group(self, group_id: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM sg_groups WHERE id = ?", (group_id,))

    # ports: {"security_groups": [...] | null} per instance interface
    def ports(self) -> dict[tuple[str, str], dict[str, Any]]:
        rows = self.store.query("SELECT instance, ifname, doc FROM sg_ports")
        return {(r["instance"], r["ifname"]): json.loads(r["doc"]) for r in rows}

    def put_ports(self, instance: str, docs: dict[str, dict[str, Any]]) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM sg_ports WHERE instance = ?", (instance,))
            conn.executemany(
                "INSERT INTO sg_ports (instance, ifname, doc) VALUES (?, ?, ?)",
                [(instance, ifname, json.dumps(doc)) for ifname, doc in docs.items()],
            )

    def delete_ports(self, instance: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM sg_ports WHERE instance = ?", (instance,))

    # zones
    def zones(self) -> dict[str, int]:
        rows = self.store.query("SELECT network, zone FROM sg_zones")
        return {r["network"]: int(r["zone"]) for r in rows}

    def put_zone(self, network: str, zone: int) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO sg_zones (network, zone) VALUES (?, ?)", (network, zone)
            )

    def delete_zone(self, network: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM sg_zones WHERE network = ?", (network,))


def _zone(row: sqlite3.Row) -> tuple[str, int]:
    network, zone = row["network"], row["zone"]
    if not isinstance(network, str) or not _NETWORK_RE.match(network):
        raise ValueError(f"network {network!r} is not a network name")
    if not isinstance(zone, int) or not ZONE_MIN <= zone <= ZONE_MAX:
        raise ValueError(f"zone {zone!r} is not a conntrack zone ({ZONE_MIN}-{ZONE_MAX})")
    return network, zone
