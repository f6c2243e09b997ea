"""The admin's security groups are the site's: made through one node, the same on every node;
a remote group admits its members on every node (each node writes its part of the shared
address set); a rule changed through another node reaches the first; a deletion reaches all.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from fluidedge.core.client import Client, ClientError
from tests.e2e.multihost.test_cross_node import create, ping
from tests.fixtures.ovn_nodes import TWO_NODE_SITE, OvnNodes, status_of
from tests.fixtures.wait import wait_until

pytestmark = pytest.mark.root

NODES = {**TWO_NODE_SITE, "secgroups": True}
OUT = {"id": "out", "direction": "egress"}


def _group(client: Client, gid: str, *rules: dict[str, Any]) -> None:
    client.post("/v1/security-groups", {"id": gid, "rules": [OUT, *rules]})


def _rules(client: Client, gid: str) -> set[str] | None:
    try:
        group = client.get(f"/v1/security-groups/{gid}")
    except ClientError:
        return None
    return {r["id"] for r in group["rules"]}


def _refused(pid: int, dst: str) -> bool:
    return not any(ping(pid, dst) for _ in range(3))


def test_site_groups_reach_every_node_and_filter_across_them(nodes: OvnNodes) -> None:
    a, b = nodes.nodes
    ca, cb = a.client(), b.client()
    ping_from_web = {
        "id": "ping",
        "direction": "ingress",
        "protocol": "icmp",
        "remote_group": "web",
    }
    _group(ca, "web")
    _group(ca, "other")
    _group(ca, "db", ping_from_web)
    # made through a, present on b after its pass
    assert wait_until(lambda: _rules(cb, "db") == {"out", "ping"}, timeout=10)
    assert _rules(cb, "web") == {"out"}

    net = f"{nodes.prefix}-g"[-15:]
    nodes.network(net, "10.64.0.0/24")
    for group in ("web", "other", "db"):
        iface = {"name": "eth0", "network": net, "security_groups": [group]}
        nodes.template(f"t-{group}", net, interfaces=[iface])
    web = create(ca, "w", "t-web", "10.64.0.2/24")
    other = create(ca, "o", "t-other", "10.64.0.3/24")
    create(cb, "d", "t-db", "10.64.0.4/24")
    # d (on b) admits pings from web's members, whose only member runs on a
    assert wait_until(lambda: ping(web["pid"], "10.64.0.4"), timeout=20)
    assert _refused(other["pid"], "10.64.0.4")

    # db's rule changed through b: now from other's members. a gets the rule, and adds its
    # member of other to other's shared set without anything done on a
    ping_from_other = {**ping_from_web, "remote_group": "other"}
    cb.put("/v1/security-groups/db", {"rules": [OUT, ping_from_other]})
    assert wait_until(
        lambda: ca.get("/v1/security-groups/db")["rules"][1]["remote_group"] == "other",
        timeout=10,
    )
    assert wait_until(lambda: ping(other["pid"], "10.64.0.4"), timeout=20)
    assert wait_until(lambda: _refused(web["pid"], "10.64.0.4"), timeout=20)

    # deleted through a once nothing uses it: gone from b too
    cb.delete("/v1/instances/d")
    ca.delete("/v1/templates/t-db")
    ca.delete("/v1/security-groups/db")
    assert wait_until(lambda: _rules(cb, "db") is None, timeout=10)
    assert _rules(cb, "web") == {"out"}


def _whoami(url: str, token: str) -> str | int:
    """The tenant a token is on the node at ``url``, or the HTTP status refusing it."""
    client = Client(url, token)
    try:
        return str(client.get("/v1/whoami").get("tenant"))
    except ClientError as exc:
        return exc.status
    finally:
        client.close()


def test_tenants_their_tokens_and_groups_are_the_sites(nodes: OvnNodes) -> None:
    a, b = nodes.nodes
    ca, cb = a.client(), b.client()
    ca.post("/v1/tenants", {"name": "acme"})
    try:
        made = ca.post("/v1/tenants/acme/tokens", {"description": "t"})
        # the token made on a works on b once b's pass has the tenant
        assert wait_until(lambda: _whoami(b.handle.url, made["token"]) == "acme", timeout=10)
        # the tenant makes a group through b: a has it, as acme's
        tenant_b = Client(b.handle.url, made["token"])
        try:
            tenant_b.post("/v1/security-groups", {"id": "acme-web", "rules": [OUT]})
        finally:
            tenant_b.close()
        assert wait_until(lambda: _rules(ca, "acme-web") == {"out"}, timeout=10)
        assert ca.get("/v1/security-groups/acme-web")["tenant"] == "acme"
        assert "acme-web" in ca.get("/v1/tenants/acme")["owns"]["other"]["security group"]
        # revoked through a: refused on b after its pass
        ca.delete(f"/v1/tenants/acme/tokens/{made['id']}")
        # (a revoked token is an anonymous caller's: 401, or with open reads no tenant)
        assert wait_until(lambda: cb.get("/v1/tenants/acme")["tokens"] == 0, timeout=10)
        assert _whoami(b.handle.url, made["token"]) != "acme"
        # the group, then the tenant, deleted through a: gone from b
        ca.delete("/v1/security-groups/acme-web")
        gone = wait_until(lambda: _rules(cb, "acme-web") is None, timeout=10)
        assert gone
    finally:
        with contextlib.suppress(ClientError):
            ca.delete("/v1/security-groups/acme-web")
        ca.delete("/v1/tenants/acme")
    assert wait_until(lambda: status_of(lambda: cb.get("/v1/tenants/acme")) == 404, timeout=10)
