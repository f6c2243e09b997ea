"""A damaged row of the tenants' tables (valid SQLite, content that does not decode) is set
aside at start and the service starts with the others; what names a tenant that is gone (a
token, an ownership row) is set aside with it, before it (fluidedge.core.rows)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from tests.fixtures.rows import damage, set_aside_keys

from fluidedge.core import rows
from fluidedge.core.store import Store, StoreDamaged
from fluidedge.tenants.models import TenantCreate, TokenCreated
from fluidedge.tenants.service import TenantService


def _record(**change: object) -> str:
    record: dict[str, object] = {
        "name": "beta",
        "description": "",
        "quota": {"instances": 1},
        "created_at": 1.0,
    }
    return json.dumps({**record, **change})


class Made:
    """Two tenants, their tokens and what they own, in a store closed again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        service = TenantService(Store(path))
        service.create(TenantCreate(name="acme"))
        service.create(TenantCreate(name="beta"))
        self.acme: TokenCreated = service.create_token("acme", "one")
        self.acme2: TokenCreated = service.create_token("acme", "two")
        self.beta: TokenCreated = service.create_token("beta")
        service.set_owner("instance", "acme-web", "acme")
        service.set_owner("network", "beta-net", "beta")
        service.tables.store.close()

    def start(self) -> TenantService:
        return TenantService(Store(self.path))

    def names(self, table: str, column: str) -> list[str]:
        with sqlite3.connect(self.path) as conn:
            return sorted(r[0] for r in conn.execute(f"SELECT {column} FROM {table}"))  # noqa: S608 (test constants)


@pytest.fixture
def made(tmp_path: Path) -> Made:
    return Made(tmp_path / "db.sqlite")


@pytest.mark.parametrize(
    "record",
    [
        "{not json",
        json.dumps([_record()]),  # a JSON list, not an object
        _record(quota={"instances": -1}),  # the quota model refuses it
        _record(name="acme"),  # another tenant's record under beta's name
        _record(description=None),
    ],
    ids=["bad-json", "list", "quota-refused", "another-name", "no-description"],
)
def test_a_tenant_row_that_does_not_decode_is_set_aside_with_its_tokens_and_ownership(
    made: Made, record: str
) -> None:
    damage(made.path, "UPDATE tenants SET record = ? WHERE name = 'beta'", record)
    service = made.start()
    assert service.names() == ["acme"]
    assert service.resolve(made.acme.token) == "acme"
    assert service.resolve(made.acme2.token) == "acme"
    assert service.owner("instance", "acme-web") == "acme"
    # beta's token is revoked and what it owned is the admin's, as for a tenant deleted ...
    assert service.resolve(made.beta.token) is None
    assert service.owner("network", "beta-net") is None
    # ... and its rows are kept, named, out of their tables
    assert sorted(set_aside_keys(made.path)) == [
        ("tenant_owners", "network/beta-net"),
        ("tenant_tokens", made.beta.id),
        ("tenants", "beta"),
    ]
    assert rows.count(service.tables.store) == 3
    assert made.names("tenants", "name") == ["acme"]
    assert made.names("tenant_tokens", "id") == sorted([made.acme.id, made.acme2.id])
    assert made.names("tenant_owners", "name") == ["acme-web"]
    with sqlite3.connect(made.path) as conn:
        reasons = {r.key: r.reason for r in rows.listing(conn)}
    assert "whose row was set aside" in reasons[made.beta.id]
    assert "whose row was set aside" in reasons["network/beta-net"]
    # the name is free again: the admin declares the tenant again
    service.create(TenantCreate(name="beta"))
    assert TenantService(Store(made.path)).names() == ["acme", "beta"]


RECORD = "UPDATE tenant_tokens SET record = ? WHERE id = ?"


@pytest.mark.parametrize(
    ("sql", "value"),
    [
        (RECORD, "{not json"),
        (RECORD, "[1, 2]"),
        (RECORD, None),  # filled in below: a record the token model refuses
        ("UPDATE tenant_tokens SET digest = ? WHERE id = ?", "not-a-sha256"),
    ],
    ids=["bad-json", "list", "model-refused", "bad-digest"],
)
def test_a_token_row_that_does_not_decode_is_set_aside(
    made: Made, sql: str, value: str | None
) -> None:
    if value is None:
        value = json.dumps(
            {"id": made.acme2.id, "tenant": "acme", "description": "", "created_at": "soon"}
        )
    damage(made.path, sql, value, made.acme2.id)
    service = made.start()
    assert service.names() == ["acme", "beta"]
    assert service.resolve(made.acme.token) == "acme"
    assert service.resolve(made.beta.token) == "beta"
    assert service.resolve(made.acme2.token) is None
    assert set_aside_keys(made.path) == [("tenant_tokens", made.acme2.id)]
    assert rows.count(service.tables.store) == 1
    assert made.acme2.id not in made.names("tenant_tokens", "id")


@pytest.mark.parametrize(
    ("sql", "key"),
    [
        ("UPDATE tenant_owners SET tenant = 'Not A Tenant' WHERE name = 'acme-web'", "acme-web"),
        ("UPDATE tenant_owners SET kind = '' WHERE name = 'acme-web'", "/acme-web"),
        ("UPDATE tenant_owners SET name = X'00ff' WHERE name = 'acme-web'", None),
    ],
    ids=["tenant-refused", "empty-kind", "blob-name"],
)
def test_an_ownership_row_that_does_not_decode_is_set_aside(
    made: Made, sql: str, key: str | None
) -> None:
    damage(made.path, sql)
    service = made.start()
    assert service.names() == ["acme", "beta"]
    assert service.owner("network", "beta-net") == "beta"
    assert service.owner("instance", "acme-web") is None
    listed = set_aside_keys(made.path)
    assert len(listed) == 1
    assert listed[0][0] == "tenant_owners"
    if key is not None:
        assert listed[0][1].endswith(key)
    assert rows.count(service.tables.store) == 1
    assert made.names("tenant_owners", "name") == ["beta-net"]


def test_a_token_and_an_ownership_row_of_a_tenant_deleted_by_hand_are_set_aside(
    made: Made,
) -> None:
    """``DELETE FROM tenants`` in the sqlite3 shell (no foreign keys there) leaves beta's token
    and ownership row naming a tenant that is not stored: revoked and the admin's, kept."""
    damage(made.path, "DELETE FROM tenants WHERE name = 'beta'")
    service = made.start()
    assert service.names() == ["acme"]
    assert service.resolve(made.beta.token) is None
    assert service.owner("network", "beta-net") is None
    assert sorted(set_aside_keys(made.path)) == [
        ("tenant_owners", "network/beta-net"),
        ("tenant_tokens", made.beta.id),
    ]
    assert rows.count(service.tables.store) == 2
    with sqlite3.connect(made.path) as conn:
        assert all("which is not stored" in r.reason for r in rows.listing(conn))


def test_every_tenant_row_failing_refuses_the_start_and_sets_nothing_aside(made: Made) -> None:
    """Not one tenant readable: a store of another release, not a damaged row. Nothing that
    names a tenant is set aside either."""
    damage(made.path, "UPDATE tenants SET record = '[]'")
    with pytest.raises(StoreDamaged, match="table tenants"):
        made.start()
    assert set_aside_keys(made.path) == []
    assert len(made.names("tenant_tokens", "id")) == 3
    assert made.names("tenant_owners", "name") == ["acme-web", "beta-net"]
