"""The cluster part's SQLite tables: what this node last saw of the site, and what it still
owes the site.

``cluster_seen``: a node deletes here what left the site (a template or ``ovn`` network an
admin deleted through another node). Telling "left the site" from "made here while etcd was out
of reach" needs what the site held before: kept here, so a node that was down when the
deletion happened still learns of it at its first pass after the restart, instead of keeping
the object for ever.

``cluster_pending``: a write to the site that failed (etcd out of reach) when the API changed
an object here: its latest value (NULL: a deletion). Each pass writes them before it reads the
site, so an object made here while etcd was down reaches the other nodes once it is back, and
one deleted here is not made again from the site's stale copy. Kept in the store: a restart
in between loses none.
"""

from __future__ import annotations

import json
from typing import Any

from fluidedge.core.store import Store

JsonObject = dict[str, Any]

MIGRATIONS = [
    """
    CREATE TABLE cluster_seen (kind TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (kind, name))
    """,
    """
    CREATE TABLE cluster_pending (
        kind TEXT NOT NULL, name TEXT NOT NULL, value TEXT, PRIMARY KEY (kind, name)
    )
    """,
]


class SeenTable:
    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate("cluster", MIGRATIONS)

    def load(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for row in self.store.query("SELECT kind, name FROM cluster_seen"):
            out.setdefault(str(row["kind"]), set()).add(str(row["name"]))
        return out

    def replace(self, kind: str, names: set[str]) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM cluster_seen WHERE kind = ?", (kind,))
            conn.executemany(
                "INSERT INTO cluster_seen (kind, name) VALUES (?, ?)",
                [(kind, name) for name in sorted(names)],
            )


class PendingTable:
    """Writes the site still owes: (kind, name) -> the object's value, or None for a delete."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate("cluster", MIGRATIONS)

    def load(self) -> dict[tuple[str, str], JsonObject | None]:
        out: dict[tuple[str, str], JsonObject | None] = {}
        for row in self.store.query("SELECT kind, name, value FROM cluster_pending"):
            value = row["value"]
            out[(str(row["kind"]), str(row["name"]))] = (
                None if value is None else json.loads(str(value))
            )
        return out

    def put(self, kind: str, name: str, value: JsonObject | None) -> None:
        text = None if value is None else json.dumps(value, sort_keys=True)
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO cluster_pending (kind, name, value) VALUES (?, ?, ?)",
                (kind, name, text),
            )

    def drop(self, kind: str, name: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM cluster_pending WHERE kind = ? AND name = ?", (kind, name))
