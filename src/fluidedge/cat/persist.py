"""The CAT part's SQLite tables: declared classes and instance assignments (JSON rows).

At start both are read through :func:`fluidedge.core.rows.load`: a row that does not decode is
set aside (kept, named) and the part starts with the others.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from fluidedge.core import rows
from fluidedge.core.store import Store

T = TypeVar("T")

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

    # read back at start: a row that cannot be decoded is set aside (fluidedge.core.rows)
    def stored_classes(self, decode: Callable[[dict[str, Any]], T]) -> tuple[list[T], list[str]]:
        """``decode`` of every declared class's spec (a JSON object of its row's name), and
        the names of the classes set aside (the part's status says so too)."""
        refused: list[str] = []
        decoded = rows.load(
            self.store,
            "cat_classes",
            ("spec",),
            _noted(lambda r: decode(rows.json_object(r, "spec", "name")), "name", refused),
            order=("name",),
        )
        return decoded, refused

    def stored_assignments(self, decode: Callable[[str, str], T]) -> tuple[list[T], list[str]]:
        """``decode(instance, cos)`` of every assignment, and the instances whose assignment
        was set aside."""
        refused: list[str] = []
        decoded = rows.load(
            self.store,
            "cat_assignments",
            ("cos",),
            _noted(lambda r: decode(r["instance"], r["cos"]), "instance", refused),
            key=("instance",),
            order=("instance",),
        )
        return decoded, refused

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


def _noted(
    decode: Callable[[sqlite3.Row], T], column: str, refused: list[str]
) -> Callable[[sqlite3.Row], T]:
    """``decode``, noting in ``refused`` the ``column`` of each row it refuses."""

    def noting(row: sqlite3.Row) -> T:
        try:
            return decode(row)
        except rows.DAMAGE:
            refused.append(str(row[column]))
            raise

    return noting
