"""The chain part's SQLite table: every declared object, by kind and id (restored at start).

At start the objects are read through :func:`fluidedge.core.rows.load`: a row that does not
decode is set aside (kept, named) and the part starts with the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from fluidedge.core import rows
from fluidedge.core.store import Store

T = TypeVar("T")

KINDS = ("port_pair", "port_pair_group", "flow_classifier", "port_chain")

TABLE = "sfc_objects"
KEY = ("kind", "id")

MIGRATIONS = [
    """
    CREATE TABLE sfc_objects (kind TEXT NOT NULL, id TEXT NOT NULL, tenant TEXT NOT NULL,
                              doc TEXT NOT NULL, PRIMARY KEY (kind, id))
    """,
]


class Tables:
    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate("chains", MIGRATIONS)

    def stored_objects(self, decode: Callable[[str, dict[str, Any]], T]) -> list[T]:
        """``decode(kind, doc)`` of every stored object, by kind and id; a row it cannot read
        (or whose document is not an object of its row's id) is set aside."""
        return rows.load(
            self.store,
            TABLE,
            ("doc",),
            lambda r: decode(r["kind"], rows.json_object(r, "doc", "id")),
            key=KEY,
            order=KEY,
        )

    def set_aside(self, kind: str, object_id: str, reason: str) -> bool:
        """Set aside a stored object that decoded but that the state refuses once loaded (it
        names one that was set aside); whether it was stored."""
        return rows.set_aside_by_key(self.store, TABLE, KEY, (kind, object_id), reason)

    def objects(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
        for row in self.store.query("SELECT kind, doc FROM sfc_objects ORDER BY kind, id"):
            out.setdefault(row["kind"], []).append(json.loads(row["doc"]))
        return out

    def put(self, kind: str, doc: dict[str, Any]) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO sfc_objects (kind, id, tenant, doc) VALUES (?, ?, ?, ?)",
                (kind, doc["id"], doc["tenant"], json.dumps(doc)),
            )

    def delete(self, kind: str, object_id: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM sfc_objects WHERE kind = ? AND id = ?", (kind, object_id))
