"""The tenants' SQLite tables: tenants, their tokens (hashed) and who owns which resource.

Ownership is a table of its own (``kind``, ``name`` -> ``tenant``) rather than a field of each
part's rows: any part's resource can be owned without a migration of its tables, and a
resource with no row belongs to the admin (so a lost row fails closed: the tenant stops seeing
it, nobody else starts to).

At start the three tables are read through :func:`fluidedge.core.rows.load`
(:meth:`Tables.stored`): a row that does not decode is set aside (kept, named) and the part
starts with the others. A token or an ownership row whose tenant does not load (its row set
aside, or deleted by hand) is set aside too, kept for the operator: the token is revoked, as
a deleted tenant's tokens are, and the resource, with no ownership row, is the admin's (fail
closed, as above). That is done *before* the tenant's row is set aside: the store's foreign
keys refuse to delete a tenant's row that ownership rows name, and would drop its tokens with
it, unkept.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from fluidedge.core import rows
from fluidedge.core.store import Store

T = TypeVar("T")
U = TypeVar("U")
V = TypeVar("V")

TENANTS, TOKENS, OWNERS = "tenants", "tenant_tokens", "tenant_owners"
OWNER_KEY = ("kind", "name")

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

    # read back at start: a row that cannot be decoded is set aside (fluidedge.core.rows)
    def stored(
        self,
        tenant: Callable[[dict[str, Any]], T],
        token: Callable[[dict[str, Any], str], U],
        owner: Callable[[str, str, str], V],
    ) -> tuple[list[T], list[U], list[V]]:
        """``tenant(record)`` of every tenant, ``token(record, digest)`` of every token and
        ``owner(kind, name, tenant)`` of every ownership row; a row one of them refuses is
        set aside, and so is a token or ownership row whose tenant is not among the tenants
        that load (see the module docstring)."""

        def stored_tenant(row: sqlite3.Row) -> T:
            return tenant(rows.json_object(row, "record", "name"))

        found = self.store.query(f"SELECT name, record FROM {TENANTS}")  # noqa: S608 (a constant)
        readable: set[str] = set()
        for row in found:
            try:
                stored_tenant(row)
            except rows.DAMAGE:
                continue
            readable.add(row["name"])
        tokens: list[U] = []
        owners: list[V] = []
        # When every tenant's row fails (two or more), that is no damaged row: rows.load
        # below refuses the start, and nothing that names them is set aside first.
        if readable or len(found) < 2:
            refused = {str(row["name"]) for row in found} - readable
            tokens = self._stored_tokens(token, readable, refused)
            owners = self._stored_owners(owner, readable, refused)
        tenants = rows.load(self.store, TENANTS, ("record",), stored_tenant, order=("name",))
        return tenants, tokens, owners

    def _stored_tokens(
        self,
        decode: Callable[[dict[str, Any], str], U],
        tenants: Collection[str],
        refused: Collection[str],
    ) -> list[U]:
        def stored_token(row: sqlite3.Row) -> tuple[str, str, U]:
            record = rows.json_object(row, "record", "id", "tenant")
            if not isinstance(row["digest"], str):
                raise TypeError(f"digest is {type(row['digest']).__name__}, not text")
            return row["id"], row["tenant"], decode(record, row["digest"])

        kept: list[U] = []
        for token_id, tenant, value in rows.load(
            self.store,
            TOKENS,
            ("tenant", "digest", "record"),
            stored_token,
            key=("id",),
            order=("id",),
        ):
            if tenant in tenants:
                kept.append(value)
            else:
                rows.set_aside_by_key(
                    self.store,
                    TOKENS,
                    ("id",),
                    (token_id,),
                    f"token {token_id} of tenant {tenant!r}, {_gone(tenant, refused)}: revoked, "
                    "as a deleted tenant's tokens are",
                )
        return kept

    def _stored_owners(
        self,
        decode: Callable[[str, str, str], V],
        tenants: Collection[str],
        refused: Collection[str],
    ) -> list[V]:
        def stored_owner(row: sqlite3.Row) -> tuple[str, str, str, V]:
            kind, name, tenant = row["kind"], row["name"], row["tenant"]
            for column, value in (("kind", kind), ("name", name), ("tenant", tenant)):
                if not isinstance(value, str):
                    raise TypeError(f"{column} is {type(value).__name__}, not text")
            return kind, name, tenant, decode(kind, name, tenant)

        kept: list[V] = []
        for kind, name, tenant, value in rows.load(
            self.store, OWNERS, ("tenant",), stored_owner, key=OWNER_KEY, order=OWNER_KEY
        ):
            if tenant in tenants:
                kept.append(value)
            else:
                rows.set_aside_by_key(
                    self.store,
                    OWNERS,
                    OWNER_KEY,
                    (kind, name),
                    f"{kind} {name} owned by tenant {tenant!r}, {_gone(tenant, refused)}: the "
                    "admin's, as a resource with no ownership row is",
                )
        return kept

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

    def put_token(self, record: dict[str, Any], digest: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO tenant_tokens (id, tenant, digest, record) VALUES (?, ?, ?, ?)",
                (record["id"], record["tenant"], digest, json.dumps(record)),
            )

    def delete_token(self, token_id: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM tenant_tokens WHERE id = ?", (token_id,))

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


def _gone(tenant: str, refused: Collection[str]) -> str:
    return "whose row was set aside" if tenant in refused else "which is not stored"
