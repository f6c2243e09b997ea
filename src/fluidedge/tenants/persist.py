"""The tenants' SQLite tables: tenants, their tokens (hashed) and who owns which resource.

Ownership is a table of its own (``kind``, ``name`` -> ``tenant``) rather than a field of each
part's rows: any part's resource can be owned without a migration of its tables, and a
resource with no row belongs to the admin (so a lost row fails closed: the tenant stops seeing
it, nobody else starts to).
"""

from __future__ import annotations

import json
from typing import Any

from fluidedge.core.store import Store

MIGRATIONS = [
    """
    CREATE TABLE tenants (name TEXT PRIMARY KEY, record TEXT NOT NULL);
    CREATE TABLE tenant_tokens (id TEXT PRIMARY KEY,
                                tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
                                digest TEXT NOT NULL, record TEXT NOT NULL);
    CREATE TABLE tenant_owners (kind TEXT NOT NULL, name TEXT NOT NULL,
                                tenant TEXT NOT NULL REFERENCES tenants(name),
                                PRIMARY KEY (kind, name))
    """,
]


class Tables:
    """Typed access to the tenants' tables."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate("tenants", MIGRATIONS)

    def tenants(self) -> list[dict[str, Any]]:
        return [json.loads(r["record"]) for r in self.store.query("SELECT record FROM tenants")]

    def put_tenant(self, record: dict[str, Any]) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                # an upsert: REPLACE would delete the row first, cascading to its tokens
                "INSERT INTO tenants (name, record) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET record = excluded.record",
                (record["name"], json.dumps(record)),
            )

    def delete_tenant(self, name: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM tenant_tokens WHERE tenant = ?", (name,))
            conn.execute("DELETE FROM tenants WHERE name = ?", (name,))

    def tokens(self) -> list[tuple[dict[str, Any], str]]:
        rows = self.store.query("SELECT record, digest FROM tenant_tokens")
        return [(json.loads(r["record"]), str(r["digest"])) for r in rows]

    def put_token(self, record: dict[str, Any], digest: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO tenant_tokens (id, tenant, digest, record) VALUES (?, ?, ?, ?)",
                (record["id"], record["tenant"], digest, json.dumps(record)),
            )

    def delete_token(self, token_id: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM tenant_tokens WHERE id = ?", (token_id,))

    def owners(self) -> list[tuple[str, str, str]]:
        rows = self.store.query("SELECT kind, name, tenant FROM tenant_owners")
        return [(str(r["kind"]), str(r["name"]), str(r["tenant"])) for r in rows]

    def set_owner(self, kind: str, name: str, tenant: str | None) -> None:
        with self.store.transaction() as conn:
            if tenant is None:
                conn.execute("DELETE FROM tenant_owners WHERE kind = ? AND name = ?", (kind, name))
            else:
                conn.execute(
                    "INSERT INTO tenant_owners (kind, name, tenant) VALUES (?, ?, ?) "
                    "ON CONFLICT (kind, name) DO UPDATE SET tenant = excluded.tenant",
                    (kind, name, tenant),
                )
