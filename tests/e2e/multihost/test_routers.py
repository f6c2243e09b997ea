"""Logical routers through the daemons' API: made through one node, seen by every node (the
NB is their store), instances on two nodes and two networks routed to each other; a network a
router joins cannot be deleted; a tenant may not make routers; bad bodies are 400s, an address
outside its network's subnet a 422."""

from __future__ import annotations

from typing import Any

import pytest

from fluidedge.core.client import Client
from tests.e2e.multihost.test_cross_node import ping
from tests.fixtures.ovn_nodes import TWO_NODE_SITE, OvnNodes, status_of
from tests.fixtures.wait import wait_until

pytestmark = pytest.mark.root

NODES = {**TWO_NODE_SITE}


def _create(client: Client, name: str, template: str, address: str, gw: str) -> dict[str, Any]:
    body = {
        "name": name,
        "template": template,
        "interfaces": {"eth0": {"addresses": [address], "gateway": gw}},
    }
    made: dict[str, Any] = client.post("/v1/instances", body)
    assert made["state"] == "running", made
    return made


def test_a_router_joins_networks_across_nodes(nodes: OvnNodes) -> None:
    a, b = nodes.nodes
    ca, cb = a.client(), b.client()
    left, right = f"{nodes.prefix}-L"[-15:].lower(), f"{nodes.prefix}-R"[-15:].lower()
    nodes.network(left, "10.65.0.0/24")
    nodes.network(right, "10.66.0.0/24")
    nodes.template("t-left", left)
    nodes.template("t-right", right)
    x = _create(ca, "x", "t-left", "10.65.0.2/24", "10.65.0.1")
    _create(cb, "y", "t-right", "10.66.0.2/24", "10.66.0.1")
    assert not ping(x["pid"], "10.66.0.2")

    body = {
        "name": "edge-r",
        "interfaces": [
            {"network": left, "address": "10.65.0.1/24"},
            {"network": right, "address": "10.66.0.1/24"},
        ],
    }
    made = ca.post("/v1/routers", body)
    assert [i["address"] for i in made["interfaces"]] == ["10.65.0.1/24", "10.66.0.1/24"]
    assert cb.get("/v1/routers/edge-r") == made  # every node reads the same NB
    assert wait_until(lambda: ping(x["pid"], "10.66.0.2"), timeout=20)

    assert status_of(lambda: ca.post("/v1/routers", body)) == 409  # exists
    assert status_of(lambda: ca.delete(f"/v1/networks/{right}")) == 409  # joined by edge-r
    bad = {"name": "r2", "interfaces": [{"network": left, "address": "10.99.0.1/24"}]}
    assert status_of(lambda: ca.post("/v1/routers", bad)) == 422  # not in the subnet
    missing = {"name": "r2", "interfaces": [{"network": "nope", "address": "10.0.0.1/24"}]}
    assert status_of(lambda: ca.post("/v1/routers", missing)) == 404
    assert status_of(lambda: ca.post("/v1/routers", {"name": "R!", "interfaces": []})) == 400

    cb.delete("/v1/routers/edge-r")
    assert ca.get("/v1/routers") == []
    assert status_of(lambda: ca.get("/v1/routers/edge-r")) == 404
    assert wait_until(lambda: not ping(x["pid"], "10.66.0.2"), timeout=10)


def test_a_tenant_may_not_make_routers(nodes: OvnNodes) -> None:
    ca = nodes.nodes[0].client()
    ca.post("/v1/tenants", {"name": "acme"})
    try:
        token = ca.post("/v1/tenants/acme/tokens", {"description": "t"})["token"]
        tenant = Client(ca.url, token)
        try:
            body = {"name": "r3", "interfaces": [{"network": "x", "address": "10.0.0.1/24"}]}
            assert status_of(lambda: tenant.post("/v1/routers", body)) == 403
        finally:
            tenant.close()
    finally:
        ca.delete("/v1/tenants/acme")
