"""Placement against a record a heartbeat late, on the multi-host tier: two daemons in an etcd
of the test's own, beating every 3 s (so a node's view of the other stays old for seconds).

b fills up through its own API; a creation sent to a right after sees b's old record, and
spread picks b, which refuses it for lack of room (409 ``AdmissionRefused``). a leaves b out
and places again: the creation runs on a, and the client never sees the refusal."""

from __future__ import annotations

import pytest

from tests.e2e.multihost.test_cluster import SUBNET, create, runs_on
from tests.fixtures.ovn_nodes import OvnNodes
from tests.fixtures.wait import wait_for

pytestmark = pytest.mark.root

NODES = {
    "count": 2,
    "members": 1,
    "cluster": True,
    "etcd_members": 1,
    "cluster_settings": {"heartbeat": 3.0, "ttl": 10},
}


def test_a_node_full_before_its_record_says_so_is_passed_over(nodes: OvnNodes) -> None:
    a, b = nodes.nodes
    net = f"{nodes.prefix}-r"[-15:]
    nodes.network(net, f"{SUBNET}.0/24")
    nodes.template("sleeper", net)
    create(a.client(), "filler", 2, node=a.name, resources={"memory_mb": 300})
    wait_for(
        lambda: a.client().get(f"/v1/nodes/{a.name}")["memory_committed_mb"] >= 300,
        20,
        "a's committed memory in a's view",
    )
    assert a.client().get(f"/v1/nodes/{b.name}")["memory_committed_mb"] == 0
    create(b.client(), "bigb", 3, node=b.name, resources={"memory_mb": 900})
    # at once: a's view still says b is empty, so spread picks b (1024 MB, 900 now taken)
    create(a.client(), "late", 4, resources={"memory_mb": 200})  # running, or it raised
    assert runs_on(nodes, "late") == [a.name]
    assert runs_on(nodes, "bigb") == [b.name]
