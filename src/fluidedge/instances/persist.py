"""The instance manager's SQLite tables (declared state that survives restarts and kill -9).

Rows are JSON documents keyed by name/id: the part reads them once at start and writes them on
each change. A shell's row is written *before* ``runc create`` so a crash mid-prepare leaves a
row naming everything to clean (container id, veth names, directory).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from fluidedge.core import rows
from fluidedge.core.store import Store

T = TypeVar("T")

#: A container id of ours ("fe" and ten hex digits, :meth:`Manager.prepare_shell`): what a
#: stored row must name before its id becomes a path, a cgroup or a runc argument.
CONTAINER_ID = re.compile(r"^fe[0-9a-f]{10}$")


def container_id(value: object) -> str:
    """``value`` if it is one of our container ids (ValueError otherwise)."""
    if not isinstance(value, str) or not CONTAINER_ID.match(value):
        raise ValueError(f"id {value!r} is not a container id of ours")
    return value


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

    # read back at start: a row that cannot be decoded is set aside (fluidedge.core.rows)
    def stored_templates(self, decode: Callable[[dict[str, Any], bool], T]) -> list[T]:
        return rows.load(
            self.store,
            "inst_templates",
            ("spec", "builtin"),
            lambda r: decode(rows.json_object(r, "spec", "name"), bool(r["builtin"])),
            order=("name",),
        )

    def stored_networks(self, decode: Callable[[dict[str, Any], bool], T]) -> list[T]:
        return rows.load(
            self.store,
            "inst_networks",
            ("spec", "managed"),
            lambda r: decode(rows.json_object(r, "spec", "name"), bool(r["managed"])),
            order=("name",),
        )

    def stored_shells(self, decode: Callable[[dict[str, Any]], T]) -> list[T]:
        return rows.load(
            self.store, "inst_shells", ("info",), lambda r: decode(_checked(r, "info")), key=("id",)
        )

    def stored_instances(self, decode: Callable[[dict[str, Any]], T]) -> list[T]:
        return rows.load(
            self.store, "inst_instances", ("record", "id"), lambda r: decode(_checked(r, "record"))
        )

    # templates
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
        found = self.store.query("SELECT info FROM inst_shells")
        return [json.loads(r["info"]) for r in found]

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
        found = self.store.query("SELECT record FROM inst_instances")
        return [json.loads(r["record"]) for r in found]

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


def _checked(row: sqlite3.Row, column: str) -> dict[str, Any]:
    """A shell's or instance's document, its id one of ours and the same as its row's (and an
    instance's name)."""
    doc = rows.json_object(row, column)
    container_id(doc.get("id"))  # first: the reason a path in the id gives
    for key in ("id", "name"):
        if key in row.keys() and doc.get(key) != row[key]:  # noqa: SIM118 (sqlite3.Row)
            raise ValueError(f"{column}'s {key} {doc.get(key)!r} is not its row's {row[key]!r}")
    return doc
