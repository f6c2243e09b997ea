"""A tenant on a site of two nodes: its network, template and instances reach every node;
its instance placed on the other node through this one, read and deleted through this one
(relayed: its own only); its quota counts its instances on every node."""

from __future__ import annotations

import contextlib

import pytest

from fluidedge.core.client import Client, ClientError
from tests.fixtures.ovn_nodes import TWO_NODE_SITE, OvnNodes, status_of
from tests.fixtures.wait import wait_until

pytestmark = pytest.mark.root

NODES = {**TWO_NODE_SITE}


def _names(client: Client, kind: str) -> set[str]:
    return {o["name"] for o in client.get(f"/v1/{kind}")}


def test_a_tenant_runs_and_reaches_its_instances_on_every_node(nodes: OvnNodes) -> None:
    a, b = nodes.nodes
    ca, cb = a.client(), b.client()
    ca.post("/v1/tenants", {"name": "acme", "quota": {"instances": 2}})
    ca.post("/v1/tenants", {"name": "beta"})
    acme = Client(a.handle.url, ca.post("/v1/tenants/acme/tokens", {})["token"])
    beta = Client(a.handle.url, ca.post("/v1/tenants/beta/tokens", {})["token"])
    try:
        assert wait_until(lambda: status_of(lambda: cb.get("/v1/tenants/acme")) == 200, timeout=10)
        net = {"name": "acme-net", "bridge": "acme-net", "driver": "ovn", "netns": a.netns,
               "subnet": "10.67.0.0/24"}  # fmt: skip
        acme.post("/v1/networks", net)
        acme.post(
            "/v1/templates",
            {
                "name": "acme-t",
                "command": ["/bin/busybox", "sleep", "2147483647"],
                "interfaces": [{"name": "eth0", "network": "acme-net"}],
                "resources": {"cpus": 0.1, "memory_mb": 32},
            },
        )
        assert wait_until(lambda: "acme-t" in _names(cb, "templates"), timeout=10)
        assert cb.get("/v1/tenants/acme")["owns"]["templates"] == ["acme-t"]

        def run(name: str, node: str, address: str) -> dict[str, object]:
            body = {"name": name, "template": "acme-t", "node": node,
                    "interfaces": {"eth0": {"addresses": [address]}}}  # fmt: skip
            made: dict[str, object] = acme.post("/v1/instances", body)
            return made

        # through a, on b: b runs it as acme's
        assert run("acme-x", b.name, "10.67.0.2/24")["state"] == "running"
        assert "acme-x" in _names(cb, "instances")
        assert cb.get("/v1/tenants/acme")["owns"]["instances"] == ["acme-x"]
        # read through a (relayed to b, once a's view of b's record lists it: a heartbeat);
        # another tenant gets the missing one's 404
        assert wait_until(lambda: status_of(lambda: acme.get("/v1/instances/acme-x")) == 200,
                          timeout=10)  # fmt: skip
        assert acme.get("/v1/instances/acme-x")["name"] == "acme-x"
        assert status_of(lambda: beta.get("/v1/instances/acme-x")) == 404
        # the quota is the site's: one on b and one on a fill 2
        run("acme-y", a.name, "10.67.0.3/24")
        assert wait_until(lambda: ca.get("/v1/tenants/acme")["usage"]["instances"] == 2, timeout=10)
        assert status_of(lambda: run("acme-z", a.name, "10.67.0.4/24")) == 409
        # deleted through a (relayed): gone from b
        acme.delete("/v1/instances/acme-x")
        assert "acme-x" not in _names(cb, "instances")
        assert wait_until(lambda: status_of(lambda: run("acme-z", a.name, "10.67.0.4/24")) == 200,
                          timeout=10)  # fmt: skip
    finally:
        for client in (acme, beta):
            client.close()
        for inst in ("acme-x", "acme-y", "acme-z"):
            with contextlib.suppress(ClientError):
                ca.delete(f"/v1/instances/{inst}")
        for path in ("/v1/templates/acme-t", "/v1/networks/acme-net"):
            with contextlib.suppress(ClientError):
                ca.delete(path)
        for tenant in ("acme", "beta"):
            assert wait_until(
                lambda t=tenant: status_of(lambda: ca.delete(f"/v1/tenants/{t}")) in (200, 404),
                timeout=10,
            )
