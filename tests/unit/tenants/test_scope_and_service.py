"""Tenants, tokens and ownership kept by the service (SQLite in a temporary file), and the
scoping rules every tenant-scoped route applies."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from pydantic import ValidationError

from fluidedge.core.store import Store
from fluidedge.tenants import tokens
from fluidedge.tenants.errors import Forbidden, TenantExists, TenantInUse, TenantNotFound
from fluidedge.tenants.models import Quota, TenantCreate, TenantUpdate
from fluidedge.tenants.scope import ADMIN, ANONYMOUS, Principal, ResourceNotFound, Scope, can_see
from fluidedge.tenants.service import TenantService

ACME = Principal("tenant", "acme")
BETA = Principal("tenant", "beta")


@pytest.fixture
def service(tmp_path: Path) -> TenantService:
    svc = TenantService(Store(tmp_path / "db.sqlite"))
    svc.create(TenantCreate(name="acme"))
    svc.create(TenantCreate(name="beta", quota=Quota(instances=1)))
    return svc


def test_visibility_rules() -> None:
    assert can_see(ADMIN, "acme")
    assert can_see(ADMIN, None)
    assert can_see(ACME, "acme")
    assert not can_see(ACME, "beta")
    assert not can_see(ACME, None)
    assert can_see(ACME, None, shared=True)
    assert not can_see(ACME, "beta", shared=True)
    assert can_see(ANONYMOUS, None)
    assert not can_see(ANONYMOUS, "acme")


def test_another_tenants_resource_is_a_404_with_the_missing_message(
    service: TenantService,
) -> None:
    scope = Scope(service)
    service.set_owner("instance", "acme-web", "acme")
    scope.require(ACME, "instance", "acme-web")
    scope.require_change(ACME, "instance", "acme-web")
    for who in (BETA, ANONYMOUS):
        with pytest.raises(ResourceNotFound, match=r"^instance 'acme-web' does not exist$"):
            scope.require(who, "instance", "acme-web")
        with pytest.raises(ResourceNotFound):
            scope.require_change(who, "instance", "acme-web")
    assert scope.visible(BETA, "instance", ["acme-web", "x"]) == []
    assert scope.visible(ANONYMOUS, "instance", ["acme-web", "x"]) == ["x"]
    assert scope.visible(ADMIN, "instance", ["acme-web", "x"]) == ["acme-web", "x"]


def test_shared_resources_are_read_only_to_tenants(service: TenantService) -> None:
    scope = Scope(service)
    scope.require(ACME, "template", "idle", shared=True)
    with pytest.raises(Forbidden, match="shared: read-only"):
        scope.require_change(ACME, "template", "idle", shared=True)
    scope.require_change(ADMIN, "template", "idle", shared=True)


def test_create_names_start_with_the_tenant(service: TenantService) -> None:
    scope = Scope(service)
    assert scope.owner_for_create(ACME, "network", "acme-net") == "acme"
    with pytest.raises(Forbidden, match="start with 'acme-'"):
        scope.owner_for_create(ACME, "network", "beta-net")
    with pytest.raises(Forbidden, match="its own tenant only"):
        scope.owner_for_create(ACME, "network", "acme-net", "beta")
    assert scope.owner_for_create(ADMIN, "network", "any") is None
    assert scope.owner_for_create(ADMIN, "network", "beta-n", "beta") == "beta"
    with pytest.raises(TenantNotFound):
        scope.owner_for_create(ADMIN, "network", "gone-n", "gone")
    with pytest.raises(Forbidden):
        scope.owner_for_create(ANONYMOUS, "network", "x")


def test_a_failed_create_gives_the_name_back(service: TenantService) -> None:
    scope = Scope(service)
    seen: list[str | None] = []

    def failing_create() -> None:
        with scope.creating("instance", "acme-a", "acme", exists=False):
            seen.append(service.owner("instance", "acme-a"))  # hidden while being made
            raise RuntimeError("runc failed")

    with pytest.raises(RuntimeError):
        failing_create()
    assert seen == ["acme"]
    assert service.owner("instance", "acme-a") is None
    with scope.creating("instance", "acme-a", "acme", exists=False):
        pass
    assert service.owner("instance", "acme-a") == "acme"


def test_tokens_resolve_and_are_stored_hashed(service: TenantService, tmp_path: Path) -> None:
    created = service.create_token("acme", "ci")
    assert created.token.startswith("fet_" + created.id + ".")
    assert service.resolve(created.token) == "acme"
    assert service.resolve(created.token[:-1] + ("A" if created.token[-1] != "A" else "B")) is None
    assert service.resolve("fet_" + "0" * 12 + "." + "x" * 43) is None
    assert service.resolve("not a token") is None
    secret = created.token.partition(".")[2]
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        stored = conn.execute("SELECT digest, record FROM tenant_tokens").fetchall()
    assert stored[0][0] == tokens.digest(secret)
    assert secret not in stored[0][1]
    assert created.token not in str(stored)
    assert (tmp_path / "db.sqlite").stat().st_mode & 0o077 == 0
    service.delete_token("acme", created.id)
    assert service.resolve(created.token) is None
    with pytest.raises(TenantNotFound):
        service.delete_token("beta", created.id)


def test_restart_restores_tenants_tokens_and_owners(service: TenantService, tmp_path: Path) -> None:
    created = service.create_token("beta")
    service.set_owner("network", "beta-net", "beta")
    service.update("beta", TenantUpdate(description="second", quota=Quota(pids=10)))
    service.tables.store.close()
    again = TenantService(Store(tmp_path / "db.sqlite"))
    assert again.names() == ["acme", "beta"]
    assert again.resolve(created.token) == "beta"
    assert again.owner("network", "beta-net") == "beta"
    assert again.quota("beta").pids == 10
    assert again.record("beta")["description"] == "second"


def test_tenant_lifecycle_errors(service: TenantService) -> None:
    with pytest.raises(TenantExists):
        service.create(TenantCreate(name="acme"))
    token = service.create_token("acme")
    service.set_owner("instance", "acme-a", "acme")
    with pytest.raises(TenantInUse, match="instance: acme-a"):
        service.delete("acme")
    service.set_owner("instance", "acme-a", None)
    service.delete("acme")
    assert service.resolve(token.token) is None
    with pytest.raises(TenantNotFound):
        service.quota("acme")


def test_a_row_whose_resource_is_gone_does_not_hold_up_a_delete(service: TenantService) -> None:
    live = {"beta-a"}
    service.resource_exists["instance"] = live.__contains__
    service.set_owner("instance", "beta-a", "beta")
    service.set_owner("instance", "beta-gone", "beta")
    with pytest.raises(TenantInUse, match=r"instance: beta-a\)"):
        service.delete("beta")
    live.clear()
    service.delete("beta")
    assert service.owner("instance", "beta-a") is None


def test_the_admins_owner_name_is_not_a_tenant_name() -> None:
    """``default`` owns the admin's groups, chains and ME objects: a tenant of that name would
    see and change them, so it is refused at the boundary (and said so in the schema)."""
    with pytest.raises(ValidationError, match="reserved"):
        TenantCreate(name="default")
    schema = TenantCreate.model_json_schema()["properties"]["name"]
    assert schema["not"] == {"const": "default"}
    assert TenantCreate(name="defaults").name == "defaults"


_T = TypeVar("_T")


class RecordingSite:
    """A site that records what the service shares, and owns instances elsewhere."""

    def __init__(self, elsewhere: list[str]) -> None:
        self.changed: list[str] = []
        self.elsewhere = elsewhere

    def tenant_changed(self, name: str) -> None:
        self.changed.append(name)

    def change_shared(self, name: str, change: Callable[[], _T]) -> _T:
        out = change()
        self.tenant_changed(name)
        return out

    def delete_shared(self, kind: str, name: str, delete: object) -> None:
        raise AssertionError("the routes call this, not the service")

    def owned_elsewhere(self, name: str) -> list[str]:
        return list(self.elsewhere)


def test_the_site_copy_makes_the_same_tenant_and_tokens_elsewhere(
    service: TenantService, tmp_path: Path
) -> None:
    service.update("acme", TenantUpdate(quota=Quota(instances=3)))
    made = service.create_token("acme", "t")
    doc = service.site_view("acme")
    assert made.token not in str(doc)  # the site keeps hashes, never a token
    other = TenantService(Store(tmp_path / "other.sqlite"))
    assert other.put_site(doc) is True
    assert other.resolve(made.token) == "acme"
    assert other.quota("acme").instances == 3
    assert other.put_site(doc) is False  # the same version: nothing to do
    service.delete_token("acme", made.id)
    assert other.put_site(service.site_view("acme")) is True
    assert other.resolve(made.token) is None  # revoked there too
    again = TenantService(Store(tmp_path / "other.sqlite"))  # and stored
    assert again.exists("acme")
    assert again.list_tokens("acme") == []


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["record"].update(name="default"),
        lambda d: d["record"].update(quota={"instances": -1}),
        lambda d: d["record"].update(description=7),
        lambda d: d["tokens"].append({"view": {"id": "x", "tenant": "other", "description": "",
                                               "created_at": 0.0}, "digest": "0" * 64}),
        lambda d: d["tokens"].append({"view": {"id": "x", "tenant": "acme", "description": "",
                                               "created_at": 0.0}, "digest": "not-hex"}),
        lambda d: d.pop("tokens"),
    ],
)  # fmt: skip
def test_a_malformed_site_copy_is_refused_whole(
    service: TenantService, tmp_path: Path, change: object
) -> None:
    from fluidedge.tenants.errors import InvalidTenant

    doc = service.site_view("acme")
    change(doc)  # type: ignore[operator]
    other = TenantService(Store(tmp_path / "other.sqlite"))
    with pytest.raises(InvalidTenant, match="malformed"):
        other.put_site(doc)
    assert not other.exists("acme")


def test_a_tenant_running_instances_on_another_node_is_not_deleted(
    service: TenantService,
) -> None:
    service.site = RecordingSite(["acme-x"])
    with pytest.raises(TenantInUse, match="other nodes of the site \\(acme-x\\)"):
        service.delete("acme")
    service.site = RecordingSite([])
    service.delete("acme")
    assert not service.exists("acme")
