"""Tenant-scoped ``/v1/security-groups``: who sees, changes and may name which group and port.

The routes over a real store and the real service, principals set as the daemon's edge sets
them (admin, tenant ``acme``, tenant ``beta``, anonymous); ports made by the instance hook
for fake instances owned as the tenants part would own them; no data plane (no network bound:
nothing is installed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import typer
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fluidedge.core.auth import STATE_KEY, TENANT_KEY
from fluidedge.core.store import Store
from fluidedge.daemon.edge import error_status
from fluidedge.errors import FluidedgeError
from fluidedge.secgroups import cli
from fluidedge.secgroups.api import build_router
from fluidedge.secgroups.driver import FirewallDriver, NftRenderer
from fluidedge.secgroups.errors import GroupInUse, SecgroupUnprocessable
from fluidedge.secgroups.persist import Tables
from fluidedge.secgroups.scoping import GroupScope, tenant_key, tenant_of
from fluidedge.secgroups.service import SecgroupService
from fluidedge.tenants.errors import Forbidden
from fluidedge.tenants.scope import ADMIN, ANONYMOUS, Principal

TENANTS = {"acme", "beta"}
OWNERS = {"acme-a": "acme", "beta-a": "beta"}  # instance -> tenant; absent: the admin's


class World:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.recorded: dict[str, str | None] = {}
        self.service = self.new_service()

    def new_service(self) -> SecgroupService:
        service = SecgroupService(Tables(Store(self.path)), FirewallDriver(NftRenderer()))
        service.instance_tenant = lambda name: tenant_key(OWNERS.get(name))
        service.record_owner = self.record
        service.load()
        return service

    def record(self, group_id: str, owner: str | None) -> None:
        self.recorded[group_id] = owner

    def client(self) -> TestClient:
        scope = GroupScope(OWNERS.get, TENANTS.__contains__)
        app = FastAPI()
        app.include_router(build_router(self.service, scope))

        @app.middleware("http")
        async def who(request: Request, call_next: Any) -> Any:
            header = request.headers.get("x-who", "")
            state = request.scope.setdefault("state", {})
            if header == "admin":
                state[STATE_KEY] = True
            elif header:
                state[TENANT_KEY] = header
            return await call_next(request)

        @app.exception_handler(FluidedgeError)
        async def error(_request: Request, exc: FluidedgeError) -> JSONResponse:
            return JSONResponse(status_code=error_status(exc), content={"detail": str(exc)})

        return TestClient(app)

    def instance(self, name: str, groups: list[str] | None = None) -> None:
        """An instance with one interface ``eth0`` on network ``n1``, filtered by the hook."""
        number = len(self.service.list_ports()) + 2
        inst = SimpleNamespace(
            name=name,
            interfaces=[
                SimpleNamespace(
                    name="eth0",
                    network="n1",
                    host_ifname=f"fet{number}",
                    addresses=[f"10.9.0.{number}/24"],
                )
            ],
        )
        iface = SimpleNamespace(
            name="eth0", port_security=True, allowed_address_pairs=[], security_groups=groups
        )
        self.service.ports_up(inst, None, SimpleNamespace(interfaces=[iface]))


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path / "db.sqlite")


@pytest.fixture
def api(world: World) -> Iterator[TestClient]:
    with world.client() as client:
        yield client


def _call(api: TestClient, who: str, method: str, path: str, body: Any = None) -> Any:
    headers = {"x-who": who} if who else {}
    return api.request(method, f"/v1/security-groups{path}", json=body, headers=headers)


def _ids(answer: Any) -> list[str]:
    assert answer.status_code == 200, answer.text
    return sorted(g["id"] for g in answer.json())


WEB = {"direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80}


def _make(api: TestClient, who: str, group_id: str, **query: str) -> dict[str, Any]:
    path = "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""
    answer = _call(api, who, "POST", path, {"id": group_id, "rules": [WEB]})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_a_tenant_sees_and_changes_only_its_own_groups(api: TestClient, world: World) -> None:
    assert _make(api, "admin", "adm")["tenant"] == "default"
    assert _make(api, "acme", "acme-web")["tenant"] == "acme"
    assert _make(api, "beta", "beta-web")["tenant"] == "beta"
    assert world.recorded == {"acme-web": "acme", "beta-web": "beta"}

    # lists: each tenant its own (and its default group, made on the way); the admin all;
    # anonymous readers the admin's only
    assert _ids(_call(api, "acme", "GET", "")) == ["acme-default", "acme-web"]
    assert _ids(_call(api, "beta", "GET", "")) == ["beta-default", "beta-web"]
    assert _ids(_call(api, "admin", "GET", "")) == [
        "acme-default", "acme-web", "adm", "beta-default", "beta-web", "default",
    ]  # fmt: skip
    assert _ids(_call(api, "", "GET", "")) == ["adm", "default"]

    # another tenant's group, and the admin's, do not exist for acme: the missing one's 404
    missing = _call(api, "acme", "GET", "/nope").json()["detail"].replace("nope", "X")
    for gid in ("beta-web", "beta-default", "adm", "default"):
        for method, path, body in [
            ("GET", f"/{gid}", None),
            ("PUT", f"/{gid}", {"rules": []}),
            ("DELETE", f"/{gid}", None),
            ("POST", f"/{gid}/rules", {"direction": "egress"}),
            ("DELETE", f"/{gid}/rules/ingress-v4-self", None),
        ]:
            answer = _call(api, "acme", method, path, body)
            assert answer.status_code == 404, (method, path, answer.text)
            assert answer.json()["detail"].replace(gid, "X") == missing
    assert len(world.service.get_group("beta-web").rules) == 1  # nothing changed
    assert world.service.has_group("adm")
    assert _call(api, "", "GET", "/acme-web").status_code == 404

    # its own: read, replace, add and delete a rule, delete
    assert _call(api, "acme", "GET", "/acme-web").json()["tenant"] == "acme"
    assert (
        _call(
            api,
            "acme",
            "PUT",
            "/acme-web",
            {"rules": [WEB, {**WEB, "port_range_min": 81, "port_range_max": 81}]},
        ).status_code
        == 200
    )
    rule = _call(api, "acme", "POST", "/acme-web/rules", {"id": "r9", "direction": "egress"})
    assert rule.status_code == 201, rule.text
    assert _call(api, "acme", "DELETE", "/acme-web/rules/r9").status_code == 204
    assert len(world.service.get_group("acme-web").rules) == 2
    assert _call(api, "acme", "DELETE", "/acme-default").status_code == 409  # its default stays
    assert _call(api, "acme", "DELETE", "/acme-web").status_code == 204
    assert world.recorded["acme-web"] is None
    # the admin sees and changes every tenant's group
    assert _call(api, "admin", "GET", "/beta-web").json()["tenant"] == "beta"
    assert _call(api, "admin", "POST", "/beta-web/rules", {"direction": "egress"}).status_code == (
        201
    )
    assert _call(api, "admin", "DELETE", "/beta-web").status_code == 204


def test_creates_are_owned_by_the_creator_within_its_prefix(api: TestClient) -> None:
    # a tenant creates for itself only, with ids in its prefix (no collision can reveal a name)
    answer = _call(api, "acme", "POST", "", {"id": "web"})
    assert answer.status_code == 403
    assert "'acme-'" in answer.json()["detail"]
    assert _call(api, "acme", "POST", "", {"id": "beta-x"}).status_code == 403
    assert _call(api, "acme", "POST", "?tenant=beta", {"id": "beta-x"}).status_code == 403
    assert _call(api, "acme", "POST", "?tenant=acme", {"id": "acme-x"}).status_code == 201
    # the admin creates for a tenant that exists, in that tenant's prefix
    assert _make(api, "admin", "beta-y", tenant="beta")["tenant"] == "beta"
    assert _call(api, "admin", "POST", "?tenant=zeta", {"id": "zeta-x"}).status_code == 404
    assert _call(api, "admin", "POST", "?tenant=beta", {"id": "web"}).status_code == 403
    assert _ids(_call(api, "beta", "GET", "")) == ["beta-default", "beta-y"]
    # anonymous: no creates (the edge asks a token first; the scope refuses too)
    assert _call(api, "", "POST", "", {"id": "anon"}).status_code == 403


def test_references_never_cross_tenants(api: TestClient, world: World) -> None:
    _make(api, "acme", "acme-web")
    _make(api, "beta", "beta-web")
    _make(api, "admin", "adm")
    # a remote group of another tenant is refused exactly as a missing one (422 naming it)
    refusals = {}
    for gid in ("beta-web", "adm", "default", "acme-nope"):
        rule = {"id": "r1", "direction": "ingress", "remote_group": gid}
        answer = _call(api, "acme", "POST", "/acme-web/rules", rule)
        assert answer.status_code == 422, answer.text
        refusals[gid] = answer.json()["detail"].replace(gid, "X")
    assert len(set(refusals.values())) == 1
    assert "remote_group" in refusals["adm"]
    answer = _call(api, "acme", "PUT", "/acme-web", {"rules": [{**WEB, "remote_group": "adm"}]})
    assert answer.status_code == 422
    ok = {"id": "r2", "direction": "ingress", "remote_group": "acme-web"}
    assert _call(api, "acme", "POST", "/acme-web/rules", ok).status_code == 201
    # even the admin cannot make a tenant's group take another's members
    answer = _call(api, "admin", "POST", "/beta-web/rules", {**ok, "remote_group": "acme-web"})
    assert answer.status_code == 422

    # ports: an instance's interface names only groups of its owner
    world.instance("acme-a", ["acme-web"])
    with pytest.raises(SecgroupUnprocessable, match="no group 'beta-web'"):
        world.instance("acme-b", ["beta-web"])  # acme-b: the admin's instance
    OWNERS["acme-c"] = "acme"
    try:
        with pytest.raises(SecgroupUnprocessable, match="no group 'beta-web'"):
            world.instance("acme-c", ["acme-web", "beta-web"])
    finally:
        del OWNERS["acme-c"]
    world.instance("beta-a")  # no groups named: its tenant's default
    world.instance("adm-a")
    groups = {p.id: list(p.groups) for p in world.service.list_ports()}
    assert groups == {
        "acme-a.eth0": ["acme-web"],
        "beta-a.eth0": ["beta-default"],
        "adm-a.eth0": ["default"],
    }
    with pytest.raises(SecgroupUnprocessable, match=r"interfaces\.eth0\.security_groups: no group"):
        world.service.check_interface_groups("acme", {"eth0": ["beta-web"]})
    world.service.check_interface_groups("acme", {"eth0": ["acme-web", "acme-default"]})


def test_ports_are_scoped_by_their_instance_owner(api: TestClient, world: World) -> None:
    _make(api, "acme", "acme-web")
    _make(api, "beta", "beta-web")
    world.instance("acme-a")
    world.instance("beta-a")
    world.instance("adm-a")

    def ports(who: str) -> list[str]:
        answer = _call(api, who, "GET", "/ports")
        assert answer.status_code == 200, answer.text
        return sorted(p["id"] for p in answer.json())

    assert ports("acme") == ["acme-a.eth0"]
    assert ports("beta") == ["beta-a.eth0"]
    assert ports("") == ["adm-a.eth0"]
    assert ports("admin") == ["acme-a.eth0", "adm-a.eth0", "beta-a.eth0"]

    def put(who: str, instance: str, groups: list[str]) -> Any:
        return api.put(
            f"/v1/instances/{instance}/interfaces/eth0/security-groups",
            json={"security_groups": groups},
            headers={"x-who": who},
        )

    # another tenant's instance has no filtered interface for acme (the missing one's 404)
    missing = put("acme", "gone", ["acme-web"]).json()["detail"].replace("gone", "X")
    for instance in ("beta-a", "adm-a"):
        answer = put("acme", instance, ["acme-web"])
        assert answer.status_code == 404
        assert answer.json()["detail"].replace(instance, "X") == missing
    # its own: its own groups only
    assert put("acme", "acme-a", ["acme-web"]).status_code == 200
    assert put("acme", "acme-a", ["beta-web"]).status_code == 422
    assert put("admin", "beta-a", ["acme-web"]).status_code == 422
    assert put("admin", "beta-a", ["beta-web"]).status_code == 200
    assert world.service.get_port("beta-a", "eth0").groups == ("beta-web",)


def test_ownership_is_restored_by_a_restart(world: World) -> None:
    with world.client() as api:
        _make(api, "acme", "acme-web")
        _make(api, "admin", "beta-y", tenant="beta")
    world.service = world.new_service()  # a new service on the same store: a restart
    with world.client() as api:
        assert _ids(_call(api, "acme", "GET", "")) == ["acme-default", "acme-web"]
        assert _call(api, "beta", "GET", "/acme-web").status_code == 404
        assert _call(api, "beta", "GET", "/beta-y").json()["tenant"] == "beta"
        assert _call(api, "", "GET", "/beta-y").status_code == 404


def test_principals_and_tenant_keys() -> None:
    assert tenant_of(ADMIN) is None
    assert tenant_of(ANONYMOUS) == "default"
    assert tenant_of(Principal("tenant", "acme")) == "acme"
    assert tenant_key(None) == "default"
    assert tenant_key("acme") == "acme"
    # a tenant named "default" would share the admin's groups: refused, never mixed
    with pytest.raises(Forbidden):
        tenant_key("default")
    with pytest.raises(Forbidden):
        tenant_of(Principal("tenant", "default"))


def test_a_default_group_id_squatted_by_another_owner_is_refused(world: World) -> None:
    world.service.create_group({"id": "acme-default"})  # the admin's, before acme existed
    with pytest.raises(GroupInUse, match="not tenant acme's default"):
        world.service.ensure_default_group("acme")
    with pytest.raises(GroupInUse):
        world.instance("acme-a")
    with world.client() as api:
        assert _call(api, "acme", "GET", "/acme-default").status_code == 409


def test_a_deleted_tenants_default_group_may_go(world: World) -> None:
    tenants = {"acme"}
    world.service.tenant_exists = tenants.__contains__
    world.service.ensure_default_group("acme")
    with pytest.raises(GroupInUse, match="default group"):
        world.service.delete_group("acme-default")
    with pytest.raises(GroupInUse, match="default group"):
        world.service.delete_group("default")  # the admin's stays, always
    tenants.clear()  # the tenant is deleted: its default group is left over, the admin's to drop
    world.service.delete_group("acme-default")
    assert not world.service.has_group("acme-default")


def test_the_cli_creates_for_a_tenant_with_the_admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str, Any]] = []
    monkeypatch.setattr(
        cli, "call", lambda method, path, body=None: calls.append((method, path, body))
    )
    app = typer.Typer()
    cli.register(app)
    runner = CliRunner()
    assert runner.invoke(app, ["secgroup", "create", "acme-web", "--tenant", "acme"]).exit_code == 0
    assert runner.invoke(app, ["secgroup", "create", "web"]).exit_code == 0
    assert [(m, p) for m, p, _ in calls] == [
        ("POST", "/v1/security-groups?tenant=acme"),
        ("POST", "/v1/security-groups"),
    ]
