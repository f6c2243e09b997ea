"""The chain part's SQLite table: every declared object, by kind and id (restored at start)."""

from __future__ import annotations

import json
from typing import Any

from fluidedge.core.store import Store

KINDS = ("port_pair", "port_pair_group", "flow_classifier", "port_chain")

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
