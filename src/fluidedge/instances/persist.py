"""The instance manager's SQLite tables (declared state that survives restarts and kill -9).

Rows are JSON documents keyed by name/id: the part reads them once at start and writes them on
each change. A shell's row is written *before* ``runc create`` so a crash mid-prepare leaves a
row naming everything to clean (container id, veth names, directory).
"""

from __future__ import annotations

import json
from typing import Any

from fluidedge.core.store import Store

MIGRATIONS = [
    """
    CREATE TABLE inst_templates (name TEXT PRIMARY KEY, spec TEXT NOT NULL,
                                 builtin INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE inst_networks (name TEXT PRIMARY KEY, spec TEXT NOT NULL,
                                managed INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE inst_shells (id TEXT PRIMARY KEY, template TEXT NOT NULL,
                              state TEXT NOT NULL, info TEXT NOT NULL);
    CREATE TABLE inst_instances (name TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE,
                                 record TEXT NOT NULL)
    """,
]


class Tables:
    """Typed access to the part's tables."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate("instances", MIGRATIONS)

    # templates
    def templates(self) -> list[tuple[dict[str, Any], bool]]:
        rows = self.store.query("SELECT spec, builtin FROM inst_templates ORDER BY name")
        return [(json.loads(r["spec"]), bool(r["builtin"])) for r in rows]

    def put_template(self, name: str, spec: dict[str, Any], builtin: bool) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO inst_templates (name, spec, builtin) VALUES (?, ?, ?)",
                (name, json.dumps(spec), int(builtin)),
            )

    def delete_template(self, name: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM inst_templates WHERE name = ?", (name,))

    # networks
    def networks(self) -> list[tuple[dict[str, Any], bool]]:
        rows = self.store.query("SELECT spec, managed FROM inst_networks ORDER BY name")
        return [(json.loads(r["spec"]), bool(r["managed"])) for r in rows]

    def put_network(self, name: str, spec: dict[str, Any], managed: bool) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO inst_networks (name, spec, managed) VALUES (?, ?, ?)",
                (name, json.dumps(spec), int(managed)),
            )

    def delete_network(self, name: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM inst_networks WHERE name = ?", (name,))

    # shells
    def shells(self) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT info FROM inst_shells")
        return [json.loads(r["info"]) for r in rows]

    def put_shell(self, info: dict[str, Any]) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO inst_shells (id, template, state, info) "
                "VALUES (?, ?, ?, ?)",
                (info["id"], info["template"], info["state"], json.dumps(info)),
            )

    def delete_shell(self, shell_id: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM inst_shells WHERE id = ?", (shell_id,))

    # instances
    def instances(self) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT record FROM inst_instances")
        return [json.loads(r["record"]) for r in rows]

    def claim_shell(self, shell_id: str, record: dict[str, Any], durable: bool = True) -> None:
        """Atomically turn shell ``shell_id`` into instance ``record`` (one transaction;
        ``durable=False``: without waiting for the fsync, see :meth:`Store.transaction`)."""
        with self.store.transaction(durable=durable) as conn:
            conn.execute("DELETE FROM inst_shells WHERE id = ?", (shell_id,))
            conn.execute(
                "INSERT OR REPLACE INTO inst_instances (name, id, record) VALUES (?, ?, ?)",
                (record["name"], record["id"], json.dumps(record)),
            )

    def put_instance(self, record: dict[str, Any]) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO inst_instances (name, id, record) VALUES (?, ?, ?)",
                (record["name"], record["id"], json.dumps(record)),
            )

    def update_instance(self, record: dict[str, Any], durable: bool = True) -> None:
        """Rewrite instance ``record`` if its row (same name *and* id) still exists: a late
        follow-up write never resurrects a deleted instance nor overwrites a newer one."""
        with self.store.transaction(durable=durable) as conn:
            conn.execute(
                "UPDATE inst_instances SET record = ? WHERE name = ? AND id = ?",
                (json.dumps(record), record["name"], record["id"]),
            )

    def delete_instance(self, name: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM inst_instances WHERE name = ?", (name,))
