"""The CAT part's SQLite tables: declared classes and instance assignments (JSON rows)."""

from __future__ import annotations

import json
from typing import Any

from fluidedge.core.store import Store

MIGRATIONS = [
    """
    CREATE TABLE cat_classes (name TEXT PRIMARY KEY, spec TEXT NOT NULL);
    CREATE TABLE cat_assignments (instance TEXT PRIMARY KEY, cos TEXT NOT NULL)
    """,
]


class Tables:
    """Typed access to the part's tables."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate("cat", MIGRATIONS)

    def classes(self) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT spec FROM cat_classes ORDER BY name")
        return [json.loads(r["spec"]) for r in rows]

    def put_class(self, name: str, spec: dict[str, Any]) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO cat_classes (name, spec) VALUES (?, ?)",
                (name, json.dumps(spec)),
            )

    def delete_class(self, name: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM cat_classes WHERE name = ?", (name,))

    def assignments(self) -> list[tuple[str, str]]:
        rows = self.store.query("SELECT instance, cos FROM cat_assignments ORDER BY instance")
        return [(r["instance"], r["cos"]) for r in rows]

    def put_assignment(self, instance: str, cos: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO cat_assignments (instance, cos) VALUES (?, ?)",
                (instance, cos),
            )

    def delete_assignment(self, instance: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM cat_assignments WHERE instance = ?", (instance,))
