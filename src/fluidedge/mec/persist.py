"""The ME platform's SQLite table: every object by kind and id, with its app instance.

Kinds: ``app`` (the instance record, its token's hash included), ``service`` (ServiceInfo),
``svc_sub`` and ``term_sub`` (the two subscription kinds), ``traffic_rule`` and ``dns_rule``
(id ``<appInstanceId>/<ruleId>``). All restored at start (:meth:`Tables.load`). The store file
is the daemon's (0600 under a 0700 state directory).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fluidedge.core.store import Store

log = logging.getLogger("fluidedge.mec")

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

    def load(self) -> dict[str, dict[str, dict[str, Any]]]:
        """kind -> id -> doc. A row whose doc is not a JSON object (a damaged store) is left
        where it is and named in the log; the rest loads."""
        out: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}
        for row in self.store.query("SELECT kind, id, doc FROM mec_objects ORDER BY kind, id"):
            try:
                doc = json.loads(row["doc"])
            except (TypeError, ValueError):
                doc = None
            if not isinstance(doc, dict):
                log.error(
                    "stored %s %s is not a JSON object, skipped (kept in the store)",
                    row["kind"],
                    row["id"],
                    extra={"part": "mec", "event": "stored_row_unreadable", "ids": row["id"]},
                )
                continue
            out.setdefault(row["kind"], {})[row["id"]] = doc
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
