"""Tenant-scoped views of ``/v1/chains``: who sees, changes and may name what.

The routes over a real store, principals set as the daemon's edge sets them (admin, tenant
``acme``, tenant ``beta``, anonymous); no data plane (no bridge: nothing to install)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from fluidedge.chains.api import build_router
from fluidedge.chains.persist import Tables
from fluidedge.chains.scoping import ChainScope
from fluidedge.chains.service import ChainService
from fluidedge.core.auth import STATE_KEY, TENANT_KEY
from fluidedge.core.store import Store
from fluidedge.daemon.edge import error_status
from fluidedge.errors import FluidedgeError

# switch port -> instance; instance -> tenant (absent: the admin's)
PORTS = {
    "va": "acme-a", "vb": "acme-b", "f0": "acme-fw", "f1": "acme-fw",
    "wa": "beta-a", "wb": "beta-b", "x0": "adm-fn", "x1": "adm-fn",
}  # fmt: skip
OWNERS = {"acme-a": "acme", "acme-b": "acme", "acme-fw": "acme", "beta-a": "beta",
          "beta-b": "beta"}  # fmt: skip


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    service = ChainService(Tables(Store(tmp_path / "db.sqlite")), lambda: [])
    scope = ChainScope(PORTS.get, OWNERS.get)
    app = FastAPI()
    app.include_router(build_router(service, None, None, scope))

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

    with TestClient(app) as client:
        yield client


def _call(api: TestClient, who: str, method: str, path: str, body: Any = None) -> Any:
    headers = {"x-who": who} if who else {}
    return api.request(method, f"/v1/chains{path}", json=body, headers=headers)


def _declare(api: TestClient, who: str, prefix: str, ports: tuple[str, ...]) -> None:
    a, b, f0, f1 = ports
    steps = [
        ("/port-pairs", {"id": f"{prefix}fw", "ingress": f0, "egress": f1}),
        ("/port-pair-groups", {"id": f"{prefix}g", "port_pairs": [f"{prefix}fw"]}),
        ("/flow-classifiers", {"id": f"{prefix}c", "protocol": "udp",
                               "logical_source_port": a, "logical_destination_port": b}),
        ("", {"id": f"{prefix}ch", "port_pair_groups": [f"{prefix}g"],
              "flow_classifiers": [f"{prefix}c"]}),
    ]  # fmt: skip
    for path, body in steps:
        answer = _call(api, who, "POST", path, body)
        assert answer.status_code == 201, answer.text


def test_a_tenant_sees_and_changes_only_its_own(api: TestClient) -> None:
    _declare(api, "acme", "acme-", ("va", "vb", "f0", "f1"))
    _declare(api, "admin", "", ("wa", "wb", "x0", "x1"))  # the admin names any port
    # Each sees its own; the admin sees all; an anonymous reader the admin's only.
    ids = {who: [c["id"] for c in _call(api, who, "GET", "").json()]
           for who in ("acme", "beta", "admin", "")}  # fmt: skip
    assert ids == {"acme": ["acme-ch"], "beta": [], "admin": ["acme-ch", "ch"], "": ["ch"]}
    assert _call(api, "acme", "GET", "/acme-ch").json()["tenant"] == "acme"
    # Another tenant's object does not exist for beta: show, replace, delete, packets: 404.
    for method, path, body in (
        ("GET", "/acme-ch", None),
        ("PUT", "/port-pair-groups/acme-g", {"id": "acme-g", "port_pairs": []}),
        ("DELETE", "/acme-ch", None),
        ("GET", "/port-pairs/acme-fw/packets", None),
    ):
        answer = _call(api, "beta", method, path, body)
        assert answer.status_code == 404, (method, path, answer.text)
    # Nor the admin's for acme.
    assert _call(api, "acme", "GET", "/ch").status_code == 404
    # acme changes its own.
    body = {"id": "acme-g", "port_pairs": ["acme-fw"], "tap_enabled": True}
    assert _call(api, "acme", "PUT", "/port-pair-groups/acme-g", body).status_code == 200


def test_a_tenant_names_only_its_own_instances_ports_and_objects(api: TestClient) -> None:
    refusals = [
        # beta's instance, the admin's instance, a port of no instance: 404 "no port"
        ("/port-pairs", {"id": "acme-p", "ingress": "wa"}, 404),
        ("/port-pairs", {"id": "acme-p", "ingress": "x0", "egress": "x1"}, 404),
        ("/port-pairs", {"id": "acme-p", "ingress": "nosuch"}, 404),
        ("/flow-classifiers", {"id": "acme-c", "logical_source_port": "va",
                               "logical_destination_port": "wb"}, 404),
        # a name outside its prefix; a TOF service: 403
        ("/port-pairs", {"id": "p", "ingress": "f0", "egress": "f1"}, 403),
        ("/flow-classifiers", {"id": "acme-c", "logical_source_port": "va",
                               "logical_destination_port": "vb", "tof_service": "video"}, 403),
    ]  # fmt: skip
    for path, body, status in refusals:
        answer = _call(api, "acme", "POST", path, body)
        assert answer.status_code == status, (path, body, answer.text)
    assert _call(api, "admin", "GET", "/port-pairs").json() == []  # nothing was stored


def test_a_reference_to_another_tenants_object_is_not_found(api: TestClient) -> None:
    pair = {"id": "beta-p", "ingress": "wa"}
    assert _call(api, "beta", "POST", "/port-pairs", pair).status_code == 201
    group = {"id": "acme-g", "port_pairs": ["beta-p"]}
    answer = _call(api, "acme", "POST", "/port-pair-groups", group)
    assert answer.status_code == 404, answer.text
    assert answer.json()["detail"] == "port pair group 'acme-g': no port pair 'beta-p'"


def test_a_tenant_chooses_no_chain_number_and_no_function_template(api: TestClient) -> None:
    _declare(api, "admin", "", ("wa", "wb", "x0", "x1"))
    assert _call(api, "admin", "GET", "/ch").json()["chain_id"] == 1
    for step in (
        ("/port-pairs", {"id": "acme-fw", "ingress": "f0", "egress": "f1"}),
        ("/port-pair-groups", {"id": "acme-g", "port_pairs": ["acme-fw"]}),
    ):
        assert _call(api, "acme", "POST", *step).status_code == 201
    body = {"id": "acme-ch", "port_pair_groups": ["acme-g"], "chain_id": 1}
    made = _call(api, "acme", "POST", "", body)
    assert made.status_code == 201, made.text  # chain 1 is taken: not a 409 that tells so
    assert made.json()["chain_id"] == 2
    template = {"kind": "counter", "name": "acme-ctr", "network": "apps"}
    assert _call(api, "acme", "POST", "/function-templates", template).status_code == 403
    assert _call(api, "acme", "GET", "/firewalls/adm-fn/rules").status_code == 404
