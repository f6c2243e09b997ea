"""The security-group part's SQLite tables: groups, instance ports' settings, network zones.

Groups and port settings are the declared state restored at start; a network keeps its
conntrack zone across restarts (allocated once, lowest free), so a restart never moves a
network's connections to another zone.
"""

from __future__ import annotations

import json
from typing import Any

from fluidedge.core.store import Store

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
