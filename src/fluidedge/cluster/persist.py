"""The cluster part's SQLite table: which of the site's objects this node last saw in etcd.

A node deletes here what left the site (a template or ``ovn`` network an admin deleted through
another node). Telling "left the site" from "made here while etcd was out of reach" needs what
the site held before: kept here, so a node that was down when the deletion happened still
learns of it at its first pass after the restart, instead of keeping the object for ever.
"""

from __future__ import annotations

from fluidedge.core.store import Store

MIGRATIONS = [
    """
    CREATE TABLE cluster_seen (kind TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (kind, name))
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
