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

Both are read at start through :func:`fluidedge.core.rows.load`: a row of a kind the part does
not sync, of a name no object of the site can have, or (pending) whose value is not a JSON
object, is set aside (kept, named) and the part starts with the others. What that costs: a
seen name lost is an object the site deleted that stays here until deleted by hand; a pending
write lost is one the site does not get (the operator reads it in the set-aside rows).
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

from fluidedge.core import rows
from fluidedge.core.store import Store
from fluidedge.instances.models import NAME_PATTERN

JsonObject = dict[str, Any]

#: The kinds of site objects the part syncs (``<prefix>/<kind>/<name>``).
KINDS = frozenset({"networks", "secgroups", "templates", "tenants"})
KEY = ("kind", "name")
# Every site object's name (templates and networks, group ids; tenants' are narrower).
_NAME = re.compile(NAME_PATTERN)

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
        """The names seen per kind (a row that cannot be one is set aside)."""
        out: dict[str, set[str]] = {}
        for kind, name in rows.load(self.store, "cluster_seen", (), _key, key=KEY, order=KEY):
            out.setdefault(kind, set()).add(name)
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
        """The writes owed (a row that cannot be one is set aside)."""
        return dict(
            rows.load(self.store, "cluster_pending", ("value",), _pending, key=KEY, order=KEY)
        )

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


def _key(row: sqlite3.Row) -> tuple[str, str]:
    """A row's kind and name, which must be a kind the part syncs and a site object's name
    (it becomes a part of an etcd key and is given to the parts' deletes)."""
    kind, name = row["kind"], row["name"]
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one the site shares")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"name {name!r} is not the name of a site object")
    return kind, name


def _pending(row: sqlite3.Row) -> tuple[tuple[str, str], JsonObject | None]:
    """A write owed: its key, and its value (a JSON object) or None (a deletion)."""
    text = row["value"]
    if text is None:
        return _key(row), None
    if not isinstance(text, str):
        raise TypeError(f"value is {type(text).__name__}, not text")
    value = json.loads(text)
    if not isinstance(value, dict):
        raise TypeError(f"value is a JSON {type(value).__name__}, not an object")
    return _key(row), value
