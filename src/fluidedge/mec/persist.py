"""The ME platform's SQLite table: every object by kind and id, with its app instance.

Kinds: ``app`` (the instance record, its token's hash included), ``service`` (ServiceInfo),
``svc_sub`` and ``term_sub`` (the two subscription kinds), ``traffic_rule`` and ``dns_rule``
(id ``<appInstanceId>/<ruleId>``). All restored at start (:meth:`Tables.load`). The store file
is the daemon's (0600 under a 0700 state directory).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fluidedge.core import rows
from fluidedge.core.store import Store

T = TypeVar("T")

KINDS = ("app", "service", "svc_sub", "term_sub", "traffic_rule", "dns_rule")

MIGRATIONS = [
    """
    CREATE TABLE mec_objects (kind TEXT NOT NULL, id TEXT NOT NULL, app TEXT NOT NULL,
                              doc TEXT NOT NULL, PRIMARY KEY (kind, id))
    """,
]

Put = tuple[str, str, str, dict[str, Any]]  # kind, id, app, doc
Delete = tuple[str, str]  # kind, id


class Tables:
    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate("mec", MIGRATIONS)

    def load(self, decode: Callable[[str, dict[str, Any]], T]) -> dict[str, dict[str, T]]:
        """kind -> id -> ``decode(kind, doc)``. A row whose doc is not a JSON object, of a
        kind this release does not know, or that ``decode`` refuses is set aside
        (:mod:`fluidedge.core.rows`: kept, named in the log); the rest loads."""
        out: dict[str, dict[str, T]] = {kind: {} for kind in KINDS}

        def read(row: sqlite3.Row) -> tuple[str, str, T]:
            kind = row["kind"]
            if kind not in KINDS:
                raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
            return kind, row["id"], decode(kind, rows.json_object(row, "doc"))

        for kind, ident, value in rows.load(
            self.store,
            "mec_objects",
            ("kind", "id", "doc"),
            read,
            key=("kind", "id"),
            order=("kind", "id"),
        ):
            out[kind][ident] = value
        return out

    def write(self, puts: Sequence[Put] = (), deletes: Sequence[Delete] = ()) -> None:
        """One transaction: ``deletes`` then ``puts``."""
        with self.store.transaction() as conn:
            for kind, object_id in deletes:
                conn.execute("DELETE FROM mec_objects WHERE kind = ? AND id = ?", (kind, object_id))
            for kind, object_id, app, doc in puts:
                conn.execute(
                    "INSERT OR REPLACE INTO mec_objects (kind, id, app, doc) VALUES (?, ?, ?, ?)",
                    (kind, object_id, app, json.dumps(doc)),
                )

    def delete_app(self, app: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM mec_objects WHERE app = ?", (app,))
