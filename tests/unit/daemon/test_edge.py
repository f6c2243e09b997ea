"""The edge's pure pieces: token policy, Allow table, status mapping, OpenAPI rewrite, config
rules for TLS and the token path, the client's endpoint order, and the edge in process."""

from __future__ import annotations

import errno
import json
import sqlite3
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from pydantic import BaseModel
from starlette.responses import Response

from fluidedge.core.auth import Presented, TokenGuard
from fluidedge.core.client import endpoint
from fluidedge.core.config import parse_config
from fluidedge.core.errors import ConfigError
from fluidedge.core.hot import HotRoute, Scope, find
from fluidedge.core.openapi import rewrite
from fluidedge.core.part import DaemonContext
from fluidedge.core.store import Store, StoreError
from fluidedge.daemon.app import create_app
from fluidedge.daemon.audit import AuditLog
from fluidedge.daemon.edge import RouteMethods, error_detail, error_status
from fluidedge.errors import ConflictError, InputError, SystemFailure

TOKEN = "e" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_token_guard_policy() -> None:
    guard = TokenGuard(TOKEN, open_reads=True)
    assert guard.presented(f"Bearer {TOKEN}".encode()) is Presented.TOKEN
    assert guard.presented(f"bearer  {TOKEN}".encode()) is Presented.TOKEN
    assert guard.presented(None) is Presented.NONE
    assert guard.presented(b"Basic abc") is Presented.INVALID
    assert guard.presented(b"Bearer " + b"f" * 32) is Presented.INVALID
    assert not guard.needs_token("GET", "/service")
    assert guard.needs_token("POST", "/service")
    closed = TokenGuard(TOKEN, open_reads=False)
    assert closed.needs_token("GET", "/metrics")
    assert closed.needs_token("OPTIONS", "/docs")
    assert not closed.needs_token("GET", "/healthz")


def test_allow_table_unions_every_route_of_a_path() -> None:
    paths = {"/service": {"get": {}, "post": {}}, "/service/{name}": {"put": {}, "delete": {}}}
    table = RouteMethods(lambda: paths, list)
    assert table.allow("/service") == "GET, HEAD, POST, OPTIONS"
    assert table.allow("/service/a.b") == "PUT, DELETE, OPTIONS"
    assert table.allow("/service/a/b") is None
    assert table.allow("/other") is None


def test_allow_table_takes_the_most_specific_template_of_a_path() -> None:
    """A concrete path before a templated one (OpenAPI's path matching): the collection
    ``/c/pairs`` is not also ``/c/{id}``, whose PUT and DELETE it must not advertise (and the
    middleware answers 405 for them rather than let ``{id}`` = "pairs" be updated)."""
    paths = {
        "/c": {"get": {}, "post": {}},
        "/c/{id}": {"get": {}, "put": {}, "delete": {}},
        "/c/pairs": {"get": {}, "post": {}},
        "/c/pairs/{id}": {"get": {}, "delete": {}},
        "/c/{id}/rules": {"put": {}},
        "/c/pairs/rules": {"get": {}},
    }
    table = RouteMethods(lambda: paths, list)
    assert table.allow("/c/pairs") == "GET, HEAD, POST, OPTIONS"
    assert table.allow("/c/web") == "GET, HEAD, PUT, DELETE, OPTIONS"
    assert table.allow("/c/pairs/p1") == "GET, HEAD, DELETE, OPTIONS"
    assert table.allow("/c/web/rules") == "PUT, OPTIONS"
    assert table.allow("/c/pairs/rules") == "GET, HEAD, OPTIONS"


def _caused(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


def test_error_status_finds_a_full_disk_underneath() -> None:
    wrapped = _caused(SystemFailure("write failed"), OSError(errno.ENOSPC, "No space left"))
    assert error_status(wrapped) == 507
    assert "no space left" in error_detail(wrapped)
    full = sqlite3.OperationalError("database or disk is full")
    assert error_status(StoreError("commit")) == 500
    assert error_status(_caused(StoreError("store: commit failed"), full)) == 507
    # A client error stays a client error even with a full disk somewhere in its history.
    assert error_status(_caused(InputError("bad"), OSError(errno.ENOSPC, "full"))) == 400
    assert error_status(RuntimeError("x")) == 500
    assert error_detail(RuntimeError("x")) == "internal error: RuntimeError: x"


def test_openapi_rewrite_replaces_422_and_marks_security() -> None:
    validation = {"content": {"application/json": {"schema": {"$ref": "#/x/HTTPValidationError"}}}}
    document = {
        "paths": {
            "/a": {
                "get": {"responses": {"200": {}}},
                "post": {
                    "requestBody": {},
                    "responses": {"200": {}, "422": validation},
                },
            },
            "/w": {"post": {"responses": {"201": {}, "422": {"description": "workload"}}}},
            "/healthz": {"get": {"responses": {"200": {}}}},
        }
    }
    spec = rewrite(document, open_reads=False)
    post = spec["paths"]["/a"]["post"]
    assert "422" not in post["responses"]
    assert {"400", "401", "413", "500", "503", "507"} <= set(post["responses"])
    assert post["security"] == [{"bearer": []}]
    assert spec["paths"]["/a"]["get"]["security"] == [{"bearer": []}]
    assert spec["paths"]["/healthz"]["get"]["security"] == []
    assert spec["paths"]["/w"]["post"]["responses"]["422"] == {"description": "workload"}
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    opened = rewrite({"paths": {"/a": {"get": {"responses": {"200": {}}}}}}, open_reads=True)
    assert opened["paths"]["/a"]["get"]["security"] == []


def test_config_tls_off_loopback_and_token_in_state_dir(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not loopback: set api\.tls_cert"):
        parse_config({"api": {"listen": "192.0.2.1"}})
    with pytest.raises(ConfigError, match="go together"):
        parse_config({"api": {"tls_cert": "/c.pem"}})
    assert parse_config({"api": {"listen": "0.0.0.0", "allow_plain_http": True}}).api.listen
    tls = parse_config({"api": {"listen": "::", "tls_cert": "/c", "tls_key": "/k"}}).api
    assert tls.tls
    assert not tls.loopback
    config = parse_config({"state_dir": str(tmp_path)})
    assert config.api.token_file == tmp_path / "token"
    assert config.socket_path == tmp_path / "api.sock"
    assert parse_config({"state_dir": str(tmp_path), "api": {"socket": ""}}).socket_path is None
    # The default of one config does not leak into another.
    assert parse_config({}).api.token_file == Path("/var/lib/fluidedge/token")


def test_client_endpoint_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FLUIDEDGE_SOCKET", "FLUIDEDGE_URL", "FLUIDEDGE_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLUIDEDGE_STATE_DIR", str(tmp_path))
    assert endpoint() == ("http://127.0.0.1:8181", None)
    import socket

    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "api.sock"))
        assert endpoint() == ("http://fluidedge", tmp_path / "api.sock")
        monkeypatch.setenv("FLUIDEDGE_URL", "http://127.0.0.1:9")
        assert endpoint() == ("http://127.0.0.1:9", None)
        monkeypatch.setenv("FLUIDEDGE_SOCKET", "/run/x.sock")
        assert endpoint() == ("http://fluidedge", Path("/run/x.sock"))
        assert endpoint(url="https://h:1") == ("https://h:1", None)
        assert endpoint(socket="/s") == ("http://fluidedge", Path("/s"))


class _Item(BaseModel):
    name: str


class _Part:
    name = "item"

    def router(self) -> APIRouter:
        router = APIRouter()

        @router.post("/item")
        def create(item: _Item) -> dict[str, str]:
            if item.name == "taken":
                raise ConflictError("taken")
            if item.name == "full":
                raise OSError(errno.ENOSPC, "No space left on device")
            return {"name": item.name}

        @router.get("/item/{name}")
        def read(name: str) -> dict[str, str]:
            return {"name": name}

        return router

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def metrics(self) -> str:
        return "# TYPE item_things gauge\nitem_things 2\n"


def test_edge_in_process(tmp_path: Path) -> None:
    config = parse_config(
        {"state_dir": str(tmp_path), "api": {"token": TOKEN, "max_body_bytes": 1024}}
    )
    context = DaemonContext(config=config, store=Store(tmp_path / "db.sqlite"))
    context.parts["item"] = _Part()
    with TestClient(create_app(context), raise_server_exceptions=False) as client:
        assert client.post("/item", json={"name": "a"}, headers=AUTH).json() == {"name": "a"}
        assert client.post("/item", json={"name": "a"}).status_code == 401
        full = client.post("/item", json={"name": "full"}, headers=AUTH)
        assert full.status_code == 507
        assert "no space left" in full.json()["detail"]
        assert client.post("/item", json={"name": "taken"}, headers=AUTH).status_code == 409
        big = client.post("/item", content=b"{" + b" " * 2000 + b"}", headers=AUTH)
        assert big.status_code == 413
        assert client.options("/item/x").headers["allow"] == "GET, HEAD, OPTIONS"
        assert client.delete("/item/x", headers=AUTH).status_code == 405
        metrics = client.get("/metrics").text
        assert "item_things 2.0" in metrics
        assert 'fluidedge_part_metrics_up{part="item"} 1.0' in metrics


class _HotPart(_Part):
    """``POST /item/{name}/poke`` as a FastAPI route and a hot route: the hot handler answers
    names starting with ``hot``, refuses ``hottaken`` (409) and declines the rest."""

    def router(self) -> APIRouter:
        router = super().router()

        @router.post("/item/{name}/poke")
        def poke(name: str, item: _Item) -> dict[str, str]:
            return {"by": "fastapi", "name": name, "body": item.name}

        return router

    def hot_routes(self) -> list[HotRoute]:
        async def poke(scope: Scope, params: dict[str, str], body: bytes) -> Response | None:
            if not params["name"].startswith("hot"):
                return None
            if params["name"] == "hottaken":
                raise ConflictError("hot: taken")
            data = {"by": "hot", "name": params["name"], "body": json.loads(body)["name"]}
            return Response(json.dumps(data), media_type="application/json")

        return [HotRoute("POST", "/item/{name}/poke", poke)]


def test_hot_route_match() -> None:
    async def nothing(_scope: Scope, _params: dict[str, str], _body: bytes) -> None:
        return None

    routes = [HotRoute("POST", "/v1/x/{name}/pause", nothing), HotRoute("POST", "/v1/x", nothing)]
    assert routes[0].match("POST", "/v1/x/a.b-1/pause") == {"name": "a.b-1"}
    assert routes[0].match("GET", "/v1/x/a/pause") is None
    assert routes[0].match("POST", "/v1/x/a/b/pause") is None
    assert routes[0].match("POST", "/v1/x/a/pause/") is None
    found = find(routes, "POST", "/v1/x")
    assert found == (routes[1], {})
    assert find(routes, "POST", "/v1/y") is None


def test_hot_route_behind_the_edge_rules(tmp_path: Path) -> None:
    config = parse_config(
        {"state_dir": str(tmp_path), "api": {"token": TOKEN, "max_body_bytes": 1024}}
    )
    context = DaemonContext(config=config, store=Store(tmp_path / "db.sqlite"))
    context.parts["item"] = _HotPart()
    audit = AuditLog(tmp_path / "audit.log", max_bytes=1 << 20, backups=1)
    with TestClient(create_app(context, audit=audit), raise_server_exceptions=False) as client:
        hot = client.post("/item/hot1/poke", json={"name": "b1"}, headers=AUTH)
        assert hot.json() == {"by": "hot", "name": "hot1", "body": "b1"}
        # declined: FastAPI's route gets the body the hot handler read
        cold = client.post("/item/cold/poke", json={"name": "b2"}, headers=AUTH)
        assert cold.json() == {"by": "fastapi", "name": "cold", "body": "b2"}
        # the edge's rules come first: token, body limit; the handler's errors map to statuses
        assert client.post("/item/hot1/poke", json={"name": "b"}).status_code == 401
        big = client.post("/item/hot1/poke", content=b"{" + b" " * 2000 + b"}", headers=AUTH)
        assert big.status_code == 413
        taken = client.post("/item/hottaken/poke", json={"name": "b"}, headers=AUTH)
        assert (taken.status_code, taken.json()) == (409, {"detail": "hot: taken"})
        metrics = client.get("/metrics").text
    assert 'route="/item/{name}/poke",status="200"' in metrics
    records = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    pokes = [(r["path"], r.get("name"), r["status"]) for r in records]
    assert ("/item/hot1/poke", "b1", 200) in pokes
    assert ("/item/cold/poke", "b2", 200) in pokes
    assert ("/item/hottaken/poke", "b", 409) in pokes
